import type { JobState } from './backend.js';
import type { Run } from './run.js';

const DURATIONS_KEPT = 200;

/** Folds a finished run into its job's aggregates: counts, last run, last success, recent durations. */
export function foldFinished(record: JobState, run: Run): void {
  if (run.status !== 'succeeded' && run.status !== 'failed' && run.status !== 'canceled') return;
  const counts = (record.counts ??= {});
  counts[run.status] = (counts[run.status] ?? 0) + 1;
  const at = run.endedAt ?? run.createdAt;
  const last = record.lastRun;
  if (!last) record.lastRun = { runId: run.id, status: run.status, at };
  else if (last.at <= at) {
    // In place: this runs once per finished run, and the record is the store's copy too.
    last.runId = run.id;
    last.status = run.status;
    last.at = at;
  }
  if (run.status === 'succeeded' && (record.lastSuccessAt === undefined || record.lastSuccessAt < at)) record.lastSuccessAt = at;
  // Consecutive failures, for `after: N` and `recovered`: a success ends the streak and keeps its length.
  if (run.status === 'failed') record.failStreak = (record.failStreak ?? 0) + 1;
  else if (run.status === 'succeeded') {
    record.endedStreak = record.failStreak ?? 0;
    record.failStreak = 0;
  }
  if (run.durationMs !== null && run.status !== 'canceled') {
    const durations = (record.durations ??= []);
    durations.push(run.durationMs);
    // Trimmed in bulk, not one shift per run: between DURATIONS_KEPT and twice that are kept.
    if (durations.length >= 2 * DURATIONS_KEPT) durations.splice(0, durations.length - DURATIONS_KEPT);
  }
}
