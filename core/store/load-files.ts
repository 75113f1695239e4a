import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { JobState } from '../contract/backend.js';
import type { Clock } from '../contract/clock.js';
import { foldFinished } from '../contract/job-state.js';
import type { Logger } from '../contract/logger.js';
import { isFinal, type Run } from '../contract/run.js';
import type { StoreParts } from './checkpoint-source.js';
import type { Checkpoints } from './checkpoints.js';
import type { DamageFound } from './store-damage.js';
import { readJournals } from './store-files.js';

/** What a store's load fills, and how it reports damage. */
export interface LoadTarget extends StoreParts {
  jobs: Map<string, JobState>;
  dirtyRuns: Set<Run>;
  checkpoints: Checkpoints;
  clock: Clock;
  fsync: boolean;
  logger: Logger;
  job(name: string): JobState;
  damaged(found: DamageFound, loadedElsewhere: (runId: string) => boolean): Promise<void>;
}

/**
 * Reads a store directory into memory: the checkpoint, the journals after it, then the
 * segments. A run the journal has as finished but no segment holds is left dirty, so that its
 * final state goes to history with the next commit.
 */
export async function loadFiles(dir: string, t: LoadTarget): Promise<void> {
  await mkdir(path.join(dir, 'segments'), { recursive: true });
  const { doc, lost } = await t.checkpoints.read(t.clock);
  for (const [name, record] of Object.entries(doc.jobs)) t.jobs.set(name, record);
  for (const run of doc.live) t.live.set(run.id, run);
  t.notifications.reset(doc.notifications);
  t.damage.restore(doc.damage ?? []);
  t.logs.restore(doc.logs);
  t.audit.restore(doc.audit ?? []);

  // Damage is reported once everything is loaded (to tell whether another record of each run
  // loaded), and before the checkpoint that follows the load deletes the journal.
  const journalDamage = await readJournals(dir, doc.checkpoint, lost, t.fsync, t.logger, {
    live: t.live,
    job: t.job,
    notifications: t.notifications,
    damage: t.damage,
    logs: t.logs,
    audit: t.audit,
  });
  const finishedIds = new Set<string>();

  // Segments: indexed ones come from the checkpoint; newer files are read.
  const folded = new Set(doc.foldSkip);
  await t.history.load(doc.segments, doc.foldFrom, (run, afterMark) => {
    if (journalDamage.length > 0) finishedIds.add(run.id);
    t.live.delete(run.id); // the finished record wins over a journaled queued/running one
    // Finished after the checkpoint: its job's aggregates do not include it yet.
    if (afterMark && !folded.has(run.id)) foldFinished(t.job(run.job), run);
  });
  for (const found of journalDamage) await t.damaged(found, (id) => t.live.has(id) || finishedIds.has(id));
  t.logs.keepOnly((id) => t.live.has(id));
  for (const run of [...t.live.values()]) {
    if (isFinal(run.status)) t.dirtyRuns.add(run);
  }
}
