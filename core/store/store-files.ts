import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Low } from 'lowdb';
import type { AuditRecord } from '../contract/audit.js';
import type { JobState, MissedWatch } from '../contract/backend.js';
import type { Clock } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import type { Notification } from '../contract/notification.js';
import type { Run } from '../contract/run.js';
import type { DamageReport } from '../contract/store-health.js';
import { DurableJsonFile, NdjsonFile } from './files.js';
import type { SegmentInfo } from './history.js';
import { type DamageFound, setCheckpointAside } from './store-damage.js';
import { refuseNewer } from './store-format.js';
import { checkpointDoc, checkWith, journalLine } from './store-records.js';

/**
 * The store's checkpoint (`state.json`, a lowdb document) and journals (`journal-<n>.ndjson`):
 * reading them back on start, and dropping journals a durable checkpoint supersedes.
 */

export interface StateDoc {
  version: 1;
  checkpoint: number;
  openSegment: number;
  /** Where the runs not yet folded into `jobs` start: a segment and a line in it. */
  foldFrom?: { segment: number; line: number };
  /** Runs after `foldFrom` that `jobs` already counts (finished, not yet written at the checkpoint). */
  foldSkip?: string[];
  segments: SegmentInfo[];
  jobs: Record<string, JobState>;
  live: Run[];
  notifications: Notification[];
  /** Damage reports: unacknowledged ones, and acknowledged ones while their file may be read again. */
  damage?: unknown[];
  /** The logs of unfinished runs (see run-logs.ts). */
  logs?: Record<string, unknown>;
  /** The audit trail, as retention keeps it. */
  audit?: AuditRecord[];
}

export type JobFlags = {
  enabled: boolean | null;
  lastFireAt: number | null;
  missedThrough?: number | null;
  missedWatches?: MissedWatch[];
  slowTold?: string[];
};
type JournalRecord = { r: Run } | { j: string; f: JobFlags } | { n: Notification } | { d: DamageReport } | { l: string; log: unknown } | { a: AuditRecord };

const checkJournalLine = checkWith(journalLine);
const JOURNAL = /^journal-(\d+)\.ndjson$/;

/**
 * The checkpoint document of `dir` (empty when there is none). A damaged one (not JSON, or not a
 * checkpoint) is set aside and returned as `lost`; the store rebuilds without it. With no
 * checkpoint, every finished run in the segments is folded into its job's counters.
 */
export async function readCheckpoint(dir: string, fsync: boolean, clock: Clock): Promise<{ db: Low<StateDoc>; lost: DamageFound | undefined }> {
  const file = path.join(dir, 'state.json');
  const empty = (): StateDoc => ({
    version: 1,
    checkpoint: 0,
    openSegment: 1,
    segments: [],
    jobs: {},
    live: [],
    notifications: [],
    foldFrom: { segment: 0, line: 0 },
  });
  const db = new Low<StateDoc>(new DurableJsonFile(file, { fsync }), empty());
  let reason: string | undefined;
  try {
    await db.read();
  } catch (err) {
    reason = (err as Error).message;
  }
  // A checkpoint of a newer format is not damage: refused as it is, never set aside.
  const version: unknown = reason === undefined ? (db.data as { version?: unknown } | null)?.version : undefined;
  if (typeof version === 'number') refuseNewer(dir, version);
  if (reason === undefined) {
    const shape = checkpointDoc.safeParse(db.data);
    if (!shape.success) reason = `not a checkpoint (${shape.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')})`;
  }
  if (reason === undefined) return { db, lost: undefined };
  db.data = empty();
  return { db, lost: await setCheckpointAside(file, clock.now(), reason) };
}

/**
 * Applies every record of the journals from checkpoint `from` on, oldest first, and removes the
 * older ones (left by a crash mid-cleanup). A torn tail is logged and dropped; damage is returned
 * after `lost` (an unreadable checkpoint), to be reported once everything is loaded. Checkpoint
 * `from` is written only once its journal, `journal-<from>`, is created (and its directory entry
 * synced), so that journal gone is damage: deleted from outside, with whatever it held.
 */
export async function readJournals(
  dir: string,
  from: number,
  lost: DamageFound | undefined,
  fsync: boolean,
  logger: Logger,
  into: JournalTarget,
): Promise<DamageFound[]> {
  const damage: DamageFound[] = lost ? [lost] : [];
  const journals = (await readdir(dir))
    .map((f) => JOURNAL.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  if (from > 0 && !journals.includes(from)) {
    damage.push({ kind: 'journal', n: from, file: path.join(dir, `journal-${from}.ndjson`), bad: [], missing: 0, absent: true });
  }
  for (const n of journals) {
    const file = path.join(dir, `journal-${n}.ndjson`);
    if (n < from) {
      await rm(file, { force: true }); // superseded by the checkpoint
      continue;
    }
    const adapter = new NdjsonFile<JournalRecord>(file, { fsync, check: checkJournalLine });
    const records = (await adapter.read()) ?? [];
    const damaged = adapter.last.bad.filter((b) => !b.torn);
    const torn = adapter.last.bad.length - damaged.length;
    if (torn > 0) {
      logger.warn({ code: 'STORE_CORRUPT', file, tornLines: torn }, 'dropped a torn tail (an interrupted write; expected after a crash, never acknowledged)');
    }
    if (damaged.length > 0) damage.push({ kind: 'journal', n, file, bad: damaged, missing: 0 });
    for (const rec of records) applyRecord(rec, into);
  }
  return damage;
}

/** Where journal records are applied: the store's state in memory. */
export interface JournalTarget {
  live: Map<string, Run>;
  job(name: string): JobState;
  notifications: { push(n: Notification): void };
  damage: { apply(report: DamageReport): void };
  logs: { apply(runId: string, log: unknown): void };
  audit: { apply(record: AuditRecord): void };
}

function applyRecord(rec: JournalRecord, into: JournalTarget): void {
  if ('r' in rec) into.live.set(rec.r.id, rec.r);
  else if ('j' in rec) {
    const state = into.job(rec.j);
    if (rec.f.enabled === null) delete state.enabled;
    else state.enabled = rec.f.enabled;
    if (rec.f.lastFireAt === null) delete state.lastFireAt;
    else state.lastFireAt = rec.f.lastFireAt;
    // Absent in records written before the `missed` rule.
    if (typeof rec.f.missedThrough === 'number') state.missedThrough = rec.f.missedThrough;
    if (rec.f.missedWatches) state.missedWatches = rec.f.missedWatches;
    if (rec.f.slowTold) state.slowTold = rec.f.slowTold;
  } else if ('n' in rec) into.notifications.push(rec.n);
  else if ('d' in rec) into.damage.apply(rec.d);
  else if ('l' in rec) into.logs.apply(rec.l, rec.log);
  else if ('a' in rec) into.audit.apply(rec.a);
}

/** The highest journal number in `dir` (0 with none). */
export async function newestJournal(dir: string): Promise<number> {
  let newest = 0;
  for (const f of await readdir(dir)) {
    const m = JOURNAL.exec(f);
    if (m) newest = Math.max(newest, Number(m[1]));
  }
  return newest;
}

/** Removes journals older than `n` (a crash between a checkpoint and its cleanup may leave some). */
export async function removeJournalsBefore(dir: string, n: number): Promise<void> {
  for (const f of await readdir(dir)) {
    const m = JOURNAL.exec(f);
    if (m && Number(m[1]) < n) await rm(path.join(dir, f), { force: true });
  }
}
