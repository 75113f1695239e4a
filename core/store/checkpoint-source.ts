import type { JobState } from '../contract/backend.js';
import { isFinal, type Run } from '../contract/run.js';
import type { AuditLog } from './audit-log.js';
import type { CheckpointSource } from './checkpoints.js';
import type { History } from './history.js';
import type { LiveRuns } from './live-runs.js';
import type { NotificationLog } from './notification-log.js';
import type { RunLogStore } from './run-logs.js';
import type { DamageLog } from './store-damage.js';

/** The parts of the store a checkpoint reads. */
export interface StoreParts {
  live: LiveRuns;
  dirtyRuns: ReadonlySet<Run>;
  history: History;
  jobs: ReadonlyMap<string, JobState>;
  notifications: NotificationLog;
  damage: DamageLog;
  logs: RunLogStore;
  audit: AuditLog;
}

/**
 * What a checkpoint of the store writes. No commit runs meanwhile (a checkpoint is written from
 * one, or with none left): the live runs only change in memory while their slices are written,
 * and what changed is dirty.
 */
export function checkpointSource(p: StoreParts): CheckpointSource {
  return {
    runs: () => [...p.live.values()],
    finish: (writtenFinal) => {
      // Finished while the slices were written (and folded into `jobs`): written again, final.
      const again = [...p.dirtyRuns].filter((r) => isFinal(r.status) && !writtenFinal.has(r.id) && p.live.get(r.id) === r);
      return {
        again,
        content: {
          openSegment: p.history.position.segment,
          foldFrom: p.history.position,
          // Finished in memory (and folded) but not yet written: do not fold them twice on load.
          foldSkip: [...writtenFinal, ...again.map((r) => r.id)],
          segments: p.history.index(),
          jobs: Object.fromEntries(p.jobs),
          notifications: p.notifications.recent(),
          damage: p.damage.kept(p.history.oldestSegment),
          logs: p.logs.snapshot(),
          audit: p.audit.kept(),
        },
      };
    },
  };
}
