import type { Backend } from '../contract/backend.js';
import { type Clock, isoTime } from '../contract/clock.js';
import { HostError, isHostError } from '../contract/errors.js';
import type { Run, RunQuery, RunStatus } from '../contract/run.js';
import { BULK_MAX, type BulkFilter, type BulkResult } from '../contract/views.js';

/**
 * Bulk actions on history: replay every failed run of a job (or of all jobs) that ended in a time
 * range, and cancel every queued run created in one. A dry run answers with the count and the
 * runs first, and its `to` (now, when not given): a confirmed action sent with the same filter
 * and that `to` touches those runs and no newer one. A failed run that was already replayed (a
 * run with `retryOf` pointing at it exists) is not replayed again, so a second click does not
 * double the work; a queued run that started meanwhile is not canceled.
 */

export interface BulkDeps {
  backend: Backend;
  clock: Clock;
  /** Replays one failed run (`Host.retry`). */
  retry(id: string): Promise<{ runId: string }>;
}

/** Replays at a time: each waits for its durable add, which many share (group commit). */
const CHUNK = 100;

interface Range {
  job: string | null;
  from: string | null;
  to: string;
  allow: ((job: string) => boolean) | undefined;
}

/** An ISO time as history writes them (UTC, ms), so ranges compare as strings. */
function normal(value: string, field: 'from' | 'to'): string {
  const ms = Date.parse(value);
  if (Number.isNaN(ms))
    throw new HostError('INVALID_BODY', `${field}: not a time (${value.slice(0, 50)})`, { issues: [{ path: `body.${field}`, message: 'not a time' }] });
  return isoTime(ms);
}

function rangeOf(filter: BulkFilter, clock: Clock): Range {
  const to = filter.to === undefined ? isoTime(clock.now()) : normal(filter.to, 'to');
  const from = filter.from === undefined ? null : normal(filter.from, 'from');
  if (from !== null && from > to)
    throw new HostError('INVALID_BODY', `from (${from}) is after to (${to})`, { issues: [{ path: 'body.from', message: 'after to' }] });
  return { job: filter.job ?? null, from, to, allow: filter.allow };
}

/** Every run of `query`, newest first, a page at a time, while `more(run)` says go on. */
async function* pages(backend: Backend, query: RunQuery): AsyncGenerator<Run> {
  let before: string | undefined;
  for (;;) {
    const page = await backend.listRuns({ ...query, limit: 1000, ...(before !== undefined && { before }) });
    yield* page.items;
    if (!page.next) return;
    before = page.next;
  }
}

/**
 * Runs of `status` (of the job, or all) whose `time` falls in the range, oldest first, leaving
 * out those `skip` names before counting: `truncated` past BULK_MAX, so a repeat reaches the rest.
 */
async function matching(
  backend: Backend,
  range: Range,
  status: RunStatus,
  time: (run: Run) => string | null,
  skip: ReadonlySet<string> = new Set(),
): Promise<{ runs: Run[]; truncated: boolean; excluded: Map<string, number> }> {
  const runs: Run[] = [];
  const excluded = new Map<string, number>();
  for await (const run of pages(backend, { status, ...(range.job !== null && { job: range.job }) })) {
    const at = time(run);
    if (at === null || at > range.to || (range.from !== null && at < range.from) || skip.has(run.id)) continue;
    if (range.allow && !range.allow(run.job)) {
      excluded.set(run.job, (excluded.get(run.job) ?? 0) + 1);
      continue;
    }
    if (runs.length === BULK_MAX) return { runs: runs.reverse(), truncated: true, excluded };
    runs.push(run);
  }
  return { runs: runs.reverse(), truncated: false, excluded };
}

/** Ids of the runs that a run created since `from` (all runs without one) replays. */
async function replayed(backend: Backend, range: Range): Promise<Set<string>> {
  const found = new Set<string>();
  // A replay is created after the run it replays ended, so after `from`: older runs cannot be one.
  for await (const run of pages(backend, range.job !== null ? { job: range.job } : {})) {
    if (range.from !== null && run.createdAt < range.from) break;
    if (run.retryOf !== null) found.add(run.retryOf);
  }
  return found;
}

function result(action: BulkResult['action'], dryRun: boolean, range: Range, found: Awaited<ReturnType<typeof matching>>): BulkResult {
  const { runs: matched, truncated, excluded } = found;
  const out: BulkResult = {
    action,
    dryRun,
    job: range.job,
    from: range.from,
    to: range.to,
    matched: matched.length,
    touched: 0,
    runs: dryRun ? matched.map((r) => ({ runId: r.id, job: r.job })) : [],
    errors: [],
    truncated,
  };
  if (range.allow) out.excluded = { runs: [...excluded.values()].reduce((a, b) => a + b, 0), jobs: [...excluded.keys()].sort() };
  return out;
}

const failure = (run: Run, err: unknown): BulkResult['errors'][number] => ({
  runId: run.id,
  job: run.job,
  code: isHostError(err) ? err.code : 'INTERNAL',
  message: err instanceof Error ? err.message : String(err),
});

/** Replays every failed run in the range that no run replays yet, oldest first. */
export async function retryFailed(deps: BulkDeps, filter: BulkFilter): Promise<BulkResult> {
  const range = rangeOf(filter, deps.clock);
  const done = await replayed(deps.backend, range);
  const found = await matching(deps.backend, range, 'failed', (r) => r.endedAt, done);
  const runs = found.runs;
  const out = result('retry', filter.dryRun === true, range, found);
  if (out.dryRun) return out;
  for (let i = 0; i < runs.length; i += CHUNK) {
    const chunk = runs.slice(i, i + CHUNK);
    const settled = await Promise.allSettled(chunk.map((run) => deps.retry(run.id)));
    settled.forEach((s, k) => {
      const run = chunk[k]!;
      if (s.status === 'fulfilled') out.runs.push({ runId: run.id, job: run.job, newRunId: s.value.runId });
      else out.errors.push(failure(run, s.reason));
    });
  }
  out.touched = out.runs.length;
  return out;
}

/** Cancels every run created in the range that is still waiting (queued or delayed). */
export async function cancelQueued(deps: BulkDeps, filter: BulkFilter): Promise<BulkResult> {
  const range = rangeOf(filter, deps.clock);
  const found = await matching(deps.backend, range, 'queued', (r) => r.createdAt);
  const out = result('cancel', filter.dryRun === true, range, found);
  if (out.dryRun) return out;
  for (let i = 0; i < found.runs.length; i += CHUNK) {
    const chunk = found.runs.slice(i, i + CHUNK);
    const settled = await Promise.allSettled(chunk.map((run) => deps.backend.cancel(run.id, 'canceled in bulk', { waitingOnly: true })));
    settled.forEach((s, k) => {
      const run = chunk[k]!;
      if (s.status === 'rejected') out.errors.push(failure(run, s.reason));
      else if (s.value?.canceled) out.runs.push({ runId: run.id, job: run.job });
      else {
        const status = s.value?.run.status ?? 'unknown';
        out.errors.push({
          runId: run.id,
          job: run.job,
          code: 'RUN_NOT_WAITING',
          message: `run ${run.id} is ${status} now: it started or ended after it was counted`,
        });
      }
    });
  }
  out.touched = out.runs.length;
  return out;
}
