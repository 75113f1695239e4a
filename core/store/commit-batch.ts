import type { AuditRecord } from '../contract/audit.js';
import type { Notification } from '../contract/notification.js';
import { isFinal, type Run } from '../contract/run.js';
import type { DamageReport } from '../contract/store-health.js';
import { appendRun } from './encode-run.js';
import type { AppendFile } from './files.js';
import type { RunLogStore } from './run-logs.js';
import { auditLine } from './serialize.js';
import type { JobFlags } from './store-files.js';

/** The dirty records one commit takes from the store. */
export interface Batch {
  runs: Run[];
  jobs: Array<[name: string, flags: JobFlags]>;
  notifications: Notification[];
  damage: DamageReport[];
  audit: AuditRecord[];
}

/** Where a commit writes; no files keeps everything in memory. */
export interface BatchTarget {
  files: { journal: AppendFile; segment: AppendFile; openSegment: number } | null;
  logs: RunLogStore;
}

/** How each file fared: the store keeps dirty exactly what did not reach its file. */
export interface Written {
  finished: Run[];
  journaled: Run[];
  /** Set when the journal write failed: runs not finished, flags, notifications, damage, audit records and these log batches are to be retried. */
  journalFailed?: { reason: unknown; requeue: () => void };
  /** Set when the segment write failed: the finished runs are to be retried. */
  segmentFailed?: { reason: unknown };
  /** Set when the finished runs' log file failed (its lines stay staged in the log store). */
  logsFailed?: { reason: unknown };
}

/**
 * Writes one commit: finished runs to the open segment, everything else to the journal, each
 * file once, in parallel. The files fail apart (one may still have room on a full disk), so each
 * one's failure is reported on its own and a retry never appends a finished run twice.
 */
export async function writeBatch(batch: Batch, to: BatchTarget): Promise<Written> {
  const finished: Run[] = [];
  const journaled: Run[] = [];
  for (const run of batch.runs) {
    const final = isFinal(run.status);
    if (final) finished.push(run);
    else journaled.push(run);
    if (!to.files) continue;
    if (final) appendRun(to.files.segment, run, false);
    else appendRun(to.files.journal, run, true);
  }
  // A finished run's log goes beside its final record, to its segment's logs file.
  to.logs.finish(finished);
  if (!to.files) return { finished, journaled };

  const { journal: journalFile, segment: segmentFile } = to.files;
  const logBatches = to.logs.takeJournal();
  for (const line of logBatches.lines) journalFile.append(line);
  let logsCommit: () => Promise<void>;
  try {
    logsCommit = await to.logs.stage(to.files.openSegment);
  } catch (err) {
    logsCommit = () => Promise.reject(err);
  }
  for (const [j, f] of batch.jobs) journalFile.append(JSON.stringify({ j, f }) + '\n');
  // A notification of a run's end goes with that end: the run's final record is journaled beside it
  // too (the segment has it as well; a load takes the segment's, or puts the journal's in history),
  // so a kill between the two files' writes never keeps the notification of an end it lost (the
  // restart would end the run again, interrupted, and tell it a second time, differently).
  if (batch.notifications.length > 0 && finished.length > 0) {
    const told = new Set(batch.notifications.map((n) => n.runId));
    for (const run of finished) if (told.has(run.id)) appendRun(journalFile, run, true);
  }
  for (const n of batch.notifications) journalFile.append(JSON.stringify({ n }) + '\n');
  for (const d of batch.damage) journalFile.append(JSON.stringify({ d }) + '\n');
  for (const a of batch.audit) journalFile.append(auditLine(a));
  // A child `after` triggered is durable before its parent's end (SPEC §13): a crash between the two
  // writes keeps the child without the end, and the parent's second end finds the child by its id.
  const chained = journaled.some((run) => run.after !== undefined) && finished.length > 0;
  const first = chained ? await Promise.allSettled([journalFile.commit()]) : undefined;
  const [journal, segment, logs] = await Promise.allSettled([first ? settled(first[0]) : journalFile.commit(), segmentFile.commit(), logsCommit()]);
  const written: Written = { finished, journaled };
  if (journal.status === 'rejected') written.journalFailed = { reason: journal.reason, requeue: () => to.logs.requeue(logBatches.batches) };
  if (segment.status === 'rejected') written.segmentFailed = { reason: segment.reason };
  if (logs.status === 'rejected') written.logsFailed = { reason: logs.reason };
  return written;
}

/**
 * What did not reach its file goes back to be written by the next commit: the journal's runs
 * and pending records, or the segment's finished runs. Answers the runs now durable as
 * finished, and the first failure (undefined when everything was written).
 */
export function requeueUnwritten(
  written: Written,
  taken: Omit<Batch, 'runs'>,
  to: { dirtyRuns: Set<Run>; putBack: (taken: Omit<Batch, 'runs'>) => void },
): { finished: Run[]; failure: unknown } {
  let finished = written.finished;
  let failure: unknown;
  if (written.journalFailed) {
    failure = written.journalFailed.reason;
    written.journalFailed.requeue();
    for (const run of written.journaled) to.dirtyRuns.add(run);
    to.putBack(taken);
  }
  if (written.segmentFailed) {
    failure ??= written.segmentFailed.reason;
    for (const run of finished) to.dirtyRuns.add(run);
    finished = [];
  }
  // Finished runs' logs that did not reach their file stay staged for the next commit.
  if (written.logsFailed) failure ??= written.logsFailed.reason;
  return { finished, failure };
}

/** A settled result as a promise again (rejected when it was). */
function settled<T>(result: PromiseSettledResult<T>): Promise<T> {
  return result.status === 'fulfilled' ? Promise.resolve(result.value) : Promise.reject(result.reason);
}
