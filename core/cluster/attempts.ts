import type { Job } from 'bullmq';
import type { AttemptHandle, AttemptReporter, AttemptTask } from '../contract/attempt.js';
import type { BackendHooks } from '../contract/backend.js';
import { type Clock, isoTime } from '../contract/clock.js';
import { Deadlines, type HeapItem } from '../contract/deadlines.js';
import { HostError, type RunError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import type { NotifyStatus } from '../contract/notification.js';
import type { ProgressThrottle } from '../contract/progress.js';
import { retryDelay } from '../contract/retry.js';
import type { Run, RunStatus } from '../contract/run.js';
import { AttemptFailure, type JobQueue, type Processor } from './job-queues.js';
import { CANCELED_REASON, type ClusterKeys, SHUTDOWN_REASON } from './keys.js';
import type { Mirror } from './mirror.js';
import { lockKey, RunProgress } from './run-progress.js';
import { type AttemptRecord, attemptsOf, encodeAttempt, runFromJob } from './run-records.js';
import type { ScriptedRedis } from './scripts.js';

/**
 * Runs this host's attempts: BullMQ's `processJob` around jobhost's processor, which hands the
 * attempt to the engine's executor, enforces the per-attempt timeout, throttles progress, turns a
 * cancel or a shutdown into the attempt's end, and records a success first when `once` or
 * `cooldown` read it. The processor takes no signal from BullMQ (one AbortController per run, a
 * measurable share of a no-op run): this class knows its attempts by run id and ends them itself. Once BullMQ has written the run's end, the engine hears of it
 * (`started`, `retrying`, `finished`, ...), so an event never announces what Redis does not hold.
 */

/** A cancel request that found no attempt here is kept this long, for a run fetched but not yet started. */
const PENDING_CANCEL_MS = 60_000;

type Ending = 'failed' | 'canceled' | 'shutdown' | 'interrupted' | 'timeout';

interface Live extends AttemptTask, HeapItem, ProgressThrottle {
  jq: JobQueue;
  bullJob: Job;
  /** BullMQ's lock token this host holds the run with: writes outside BullMQ's scripts check it (`owned-writes.ts`). */
  token: string;
  run: Run;
  /** The processor took the run (false: BullMQ ended it without calling it, e.g. a deferred cancel). */
  processed: boolean;
  /** Its attempt reached the engine's executor (`run.started` was reported). */
  started: boolean;
  startedMs: number;
  /** When the run's first attempt started (ms), once it has. */
  firstStartMs: number | null;
  outcome: { ok: true; result: unknown } | { ok: false; ending: Ending; record: Omit<AttemptRecord, 'jh'> } | undefined;
  handle: AttemptHandle | undefined;
  /** Ends the processor's promise (once). */
  end: ((result: unknown, failure: AttemptFailure | null) => void) | undefined;
  /** Its lock was tracked again after an older attempt's end (see `run`): untracked at its own end. */
  retracked?: boolean;
}

export interface AttemptsOptions {
  hostId: string;
  keys: ClusterKeys;
  /** The patient connection: a success record must land, even after an outage. */
  commands: ScriptedRedis;
  clock: Clock;
  random: () => number;
  logger: Logger;
  hooks(): BackendHooks;
  mirror: Mirror;
  /** BullMQ refused an end made here: another host holds the run now (`late-finishes.ts`). */
  late(run: Run, attempt: number, code: number): void;
  /**
   * An attempt of `runId` begins here: a run this host added whose add has not answered yet (its
   * worker may take the run first) has its run.queued emitted now, before anything else of it.
   */
  beginning(runId: string): void;
  /** The write that ended `runId` here marked it untold (`untold.ts`): the engine tells it, then the mark goes. */
  marked(runId: string): void;
}

/**
 * Attempts started but never ended, not yet recorded: BullMQ counts starts (\`ats\`) and ends
 * (\`atm\`). Each recording of an interruption is itself a start and an end (it takes the run, then
 * fails it INTERRUPTED), so starts = ended + interrupted + recordings + the current one.
 */
function unrecordedInterruptions(job: Job): number {
  const recorded = attemptsOf(job.stacktrace).filter((r) => r.c === 'INTERRUPTED').length;
  return job.attemptsStarted - 1 - job.attemptsMade - recorded;
}

export class Attempts {
  readonly #o: AttemptsOptions;
  readonly #live = new Map<string, Live>();
  readonly #pendingCancels = new Map<string, { at: number; message: string }>();
  readonly #cancelMessages = new Map<string, string>();
  readonly #reporter: AttemptReporter<Live>;
  /** BullMQ's processor for every job queue of this host. */
  readonly processor: Processor;
  /** Deadlines of running attempts: one timer for the earliest, not a timer per attempt. */
  readonly #deadlines: Deadlines<Live>;
  readonly #progress: RunProgress;

  constructor(options: AttemptsOptions) {
    this.#o = options;
    this.#reporter = {
      settled: (live, result, error) => this.#settled(live, result, error),
      progress: (live, fraction, text) => this.#progress.report(live, fraction, text),
    };
    this.processor = (job) => this.#process(job);
    this.#progress = new RunProgress({ ...options, observer: () => options.hooks().observer });
    this.#deadlines = new Deadlines(options.clock, (live) => {
      const err = new HostError('TIMEOUT', `attempt ${live.attempt} timed out after ${live.job.timeoutMs}ms`);
      live.handle?.abort(err);
      this.#fail(live, 'timeout', err.code, err.message);
    });
  }

  /** Runs currently in an attempt here. */
  get size(): number {
    return this.#live.size;
  }

  /** A fetched run, in its slot: BullMQ processes it with `processor`, then the engine hears how it ended. */
  async run(jq: JobQueue, bullJob: Job, token: string, fetchNext: () => boolean): Promise<Job | undefined> {
    const id = bullJob.id ?? '';
    const live: Live = {
      jq,
      bullJob,
      token,
      job: jq.def,
      attempt: bullJob.attemptsMade + 1,
      run: runFromJob(bullJob, 'queued'),
      processed: false,
      started: false,
      startedMs: bullJob.processedOn ?? this.#o.clock.now(),
      firstStartMs: null,
      outcome: undefined,
      handle: undefined,
      heapKey: 0,
      heapIndex: -1,
      progressAt: 0,
      progressTimer: undefined,
      end: undefined,
    };
    this.#live.set(id, live);
    jq.running.add(id);
    const made = bullJob.attemptsMade;
    const deferred = bullJob.deferredFailure;
    let next: Job | undefined;
    try {
      next = (await jq.worker.processJob(bullJob, token, fetchNext)) || undefined;
    } catch (err) {
      this.#o.logger.error({ err, job: jq.name, runId: id }, 'BullMQ could not process the run');
    } finally {
      const current = this.#live.get(id);
      if (current === live) {
        this.#live.delete(id);
        jq.running.delete(id);
        // Re-tracked by an older attempt's end, maybe after BullMQ's own untrack of this one: not renewed for ever.
        if (live.retracked) jq.worker.untrack(id);
      } else if (current) {
        // Taken over here while it ran (its lock lapsed while Redis was away): a newer attempt of
        // the run runs now, and BullMQ's end of this one (refused, a late finish) untracked the
        // run's lock, which BullMQ keys by run id. Unrenewed, the newer attempt would be found
        // stalled and interrupted with Redis up; its lock is renewed again, its entries kept.
        jq.worker.retrack(id, current.token, current.bullJob.processedOn);
        current.retracked = true;
      }
      live.progressTimer?.cancel();
    }
    const lost = jq.lost.get(id);
    jq.lost.delete(id);
    this.#report(live, made, deferred, lost);
    return next;
  }

  // ---------------------------------------------------------------- the processor

  async #process(bullJob: Job): Promise<unknown> {
    const id = bullJob.id ?? '';
    const live = this.#live.get(id);
    if (!live) throw new Error(`run ${id} was not fetched by this host`);
    live.processed = true;
    this.#o.beginning(id);
    const now = this.#o.clock.now();
    const n = live.attempt;
    const base = { n, s: live.startedMs, e: now, h: this.#o.hostId, d: 0 };
    const run = live.run;
    // A new attempt starts from zero, in Redis too (every host reads it there), before it is
    // announced; the last attempt's progress stayed visible until now.
    if (n > 1 && (run.progress.fraction !== 0 || run.progress.text !== null)) {
      run.progress = { fraction: 0, text: null };
      await bullJob.updateProgress(run.progress).catch((err: unknown) => this.#o.logger.debug({ err, runId: id }, 'could not write progress'));
    }
    const pending = this.#pendingCancels.get(id);
    if (pending) {
      this.#pendingCancels.delete(id);
      throw this.#failure(live, 'canceled', { ...base, c: 'CANCELED', m: pending.message });
    }
    // Started more often than ended: an earlier attempt's host died (or lost its lock) mid-run.
    // That attempt counts (SPEC §4): it ends INTERRUPTED, and BullMQ retries while attempts remain.
    if (unrecordedInterruptions(bullJob) > 0) {
      const data = bullJob.data as { source?: string };
      if (data.source !== 'recovery') {
        await bullJob.updateData({ ...bullJob.data, origin: data.source, source: 'recovery' }).catch(() => undefined);
        live.run.origin = live.run.source;
        live.run.source = 'recovery';
      }
      throw this.#failure(live, 'interrupted', { ...base, c: 'INTERRUPTED', m: 'the host running the attempt stopped (crash, kill -9) or lost its lock' });
    }
    run.status = 'running';
    run.host = this.#o.hostId;
    run.attempts.push({ n, startedAt: isoTime(live.startedMs), endedAt: null, error: null });
    run.startedAt ??= isoTime(live.startedMs);
    live.firstStartMs = run.attempts.length > 1 ? Date.parse(run.attempts[0]!.startedAt) : live.startedMs;
    const hooks = this.#o.hooks();
    live.started = true;
    this.#o.mirror.started(run.job);
    hooks.observer.started(run);
    return new Promise<unknown>((resolve, reject) => {
      live.end = (result, failure) => {
        live.end = undefined;
        this.#deadlines.delete(live);
        if (failure) reject(failure);
        else resolve(result);
      };
      if (live.job.timeoutMs > 0) this.#deadlines.set(live, this.#o.clock.now() + live.job.timeoutMs);
      // A handler that settles synchronously has ended the attempt before its handle comes back:
      // aborting that handle later is a no-op (the ends above check \`live.end\`).
      live.handle = hooks.executor.execute(live, this.#reporter);
    });
  }

  /** Stops the deadline timer (the host is closing). */
  close(): void {
    this.#deadlines.close();
  }

  /** A cancel request reached this host, or the shutdown grace ran out. */
  #aborted(live: Live, reason: typeof CANCELED_REASON | typeof SHUTDOWN_REASON): void {
    if (!live.end) return;
    if (reason === SHUTDOWN_REASON) {
      const message = 'the host shut down before the attempt finished';
      live.handle?.abort(new HostError('SHUTDOWN', message));
      return this.#fail(live, 'shutdown', 'SHUTDOWN', message);
    }
    const id = live.run.id;
    const message = this.#cancelMessages.get(id) ?? 'canceled by request';
    this.#cancelMessages.delete(id);
    live.handle?.abort(new HostError('CANCELED', message));
    this.#fail(live, 'canceled', 'CANCELED', message);
  }

  #settled(live: Live, result: unknown, error: RunError | null): void {
    if (!live.end) return;
    this.#progress.flush(live);
    if (error) return this.#fail(live, 'failed', error.code, error.message);
    live.outcome = { ok: true, result };
    const end = live.end;
    live.end = undefined;
    const def = live.job;
    if (!def.once && def.cooldownMs <= 0) return end(result, null);
    // Written before BullMQ marks the run completed (and releases its dedup key): a trigger that
    // comes between sees the success, so `once` and `cooldown` hold across hosts. Only while this
    // host holds the run: a late success (the run taken over meanwhile) records nothing.
    this.#o.commands.jhOwnedSuccess(this.#o.keys.jobState(live.run.job), lockKey(this.#o.keys, live.run.job, live.run.id), live.run.id, live.token).then(
      () => end(result, null),
      (err: unknown) => {
        this.#o.logger.error({ err, job: live.run.job, runId: live.run.id }, 'could not record the success');
        end(result, null);
      },
    );
  }

  #fail(live: Live, ending: Ending, code: string, message: string): void {
    const end = live.end;
    if (!end) return;
    this.#progress.flush(live);
    const now = this.#o.clock.now();
    const retryable = ending === 'failed' || ending === 'timeout';
    const left = live.attempt < live.run.maxAttempts;
    const d = retryable && left ? retryDelay(live.job.retry, live.attempt, this.#o.random) : 0;
    end(null, this.#failure(live, ending, { n: live.attempt, s: live.startedMs, e: now, c: code, m: message, h: this.#o.hostId, d }));
  }

  #failure(live: Live, ending: Ending, record: Omit<AttemptRecord, 'jh'>): AttemptFailure {
    live.outcome = { ok: false, ending, record };
    return new AttemptFailure(record, encodeAttempt(record), ending === 'canceled');
  }

  // ---------------------------------------------------------------- cancel requests

  /** A cancel request for `runId` reached this host: abort its attempt here, or remember it for a run fetched but not started. */
  cancel(jq: JobQueue | undefined, runId: string, message: string): void {
    const live = this.#live.get(runId);
    if (live?.end) {
      this.#cancelMessages.set(runId, message);
      return this.#aborted(live, CANCELED_REASON);
    }
    const now = this.#o.clock.now();
    for (const [id, p] of this.#pendingCancels) if (now - p.at > PENDING_CANCEL_MS) this.#pendingCancels.delete(id);
    if (jq) this.#pendingCancels.set(runId, { at: now, message });
  }

  /**
   * After a gap in the cluster stream (`stream-gaps.ts`): cancel requests for runs running here may
   * be among the lost entries. BullMQ's deferred-failure mark on each run's job says which were canceled.
   */
  async recheckCancels(): Promise<void> {
    for (const live of [...this.#live.values()]) {
      if (!live.end) continue;
      const mark = await this.#o.commands.hget(live.jq.queue.toKey(live.run.id), 'defa').catch(() => null);
      if (mark === CANCELED_REASON) this.cancel(live.jq, live.run.id, 'canceled by request');
    }
  }

  /** Shutdown past the grace: every attempt here is aborted (back to waiting while attempts remain). */
  abortAll(): void {
    for (const live of this.#live.values()) this.#aborted(live, SHUTDOWN_REASON);
  }

  // ---------------------------------------------------------------- reports

  /** What BullMQ wrote, told to the engine (and this host's mirror). */
  #report(live: Live, madeBefore: number, deferred: string | undefined, lost: number | undefined): void {
    const { bullJob, run } = live;
    const observer = this.#o.hooks().observer;
    // The streaks the write that ended the run left (none when no end was written here): the
    // mirror shows them before the engine hears of the end, so the alert rules count this run.
    const fold = live.jq.folds.get(run.id);
    live.jq.folds.delete(run.id);
    if (fold) {
      this.#o.mirror.folded(run.job, fold);
      if (fold.marked) this.#o.marked(run.id);
    }
    if (!live.processed) {
      // BullMQ ended it without the processor: a cancel that reached it while no host ran it.
      if (!bullJob.finishedOn) return;
      const ended = runFromJob(bullJob, deferred === CANCELED_REASON ? 'canceled' : 'failed');
      return this.#finished(ended, false);
    }
    if (bullJob.attemptsMade === madeBefore) {
      // The end was not written: BullMQ refused it (the lock lapsed, another host took the run
      // over as stalled: a late finish), or the worker closed before writing it.
      if (lost !== undefined) this.#o.late(run, live.attempt, lost);
      else this.#o.logger.warn({ job: run.job, runId: run.id, host: this.#o.hostId }, 'the end of the attempt was not written (the host closed first)');
      return;
    }
    const outcome = live.outcome;
    const last = run.attempts.at(-1);
    const ms = bullJob.finishedOn ?? this.#o.clock.now();
    if (outcome?.ok) {
      if (last) last.endedAt = isoTime(ms);
      run.result = outcome.result;
      return this.#finished(this.#ended(run, 'succeeded', ms, live.firstStartMs), live.started, fold?.folds);
    }
    if (!outcome) return;
    const { record, ending } = outcome;
    const error: RunError = { code: record.c, message: record.m };
    if (live.started && last) {
      last.endedAt = isoTime(record.e);
      last.error = error;
    } else {
      run.attempts.push({ n: record.n, startedAt: isoTime(record.s), endedAt: isoTime(record.e), error });
    }
    if (bullJob.finishedOn) {
      run.error = error;
      // A cancel's count is written after this end (`#countCanceled`), so its fold does not say the count has it.
      const canceled = ending === 'canceled';
      return this.#finished(
        this.#ended(run, canceled ? 'canceled' : 'failed', ms, live.firstStartMs ?? record.s),
        live.started,
        canceled ? undefined : fold?.folds,
      );
    }
    run.status = 'queued';
    if (live.started) this.#o.mirror.finished({ ...run, status: 'queued' }, true);
    if (ending === 'shutdown' || ending === 'interrupted') {
      // Back to waiting, for any host: as after a restart, the run is queued again.
      run.runAt = isoTime(record.e);
      observer.queued(run, false);
      return;
    }
    run.runAt = isoTime(record.e + record.d);
    observer.retrying(run, record.n, record.d, error);
    this.#settle(run, 'retrying');
  }

  #ended(run: Run, status: RunStatus, ms: number, firstStartMs: number | null): Run {
    run.status = status;
    run.endedAt = isoTime(ms);
    run.durationMs = firstStartMs === null ? null : Math.max(0, ms - firstStartMs);
    if (status !== 'succeeded') run.result = null;
    return run;
  }

  #finished(run: Run, wasRunning: boolean, folds?: number): void {
    const counted = run.status === 'canceled' ? this.#countCanceled(run) : undefined;
    this.#o.mirror.finished(run, wasRunning, folds, counted);
    this.#o.hooks().observer.finished(run);
    this.#settle(run, run.status as NotifyStatus);
  }

  #settle(run: Run, outcome: NotifyStatus): void {
    this.#o.hooks().observer.settled(run, outcome);
  }

  /** BullMQ counts a run canceled while running among its failures: kept apart so counts say canceled. Rejects when the count is not written. */
  #countCanceled(run: Run): Promise<unknown> {
    const key = this.#o.keys.jobState(run.job);
    const written = this.#o.commands
      .multi()
      .hincrby(key, 'canceled', 1)
      .hincrby(key, 'canceledRunning', 1)
      .hset(key, 'lastCanceledRun', run.id, 'lastCanceledAt', String(Date.parse(run.endedAt ?? run.createdAt)))
      .exec();
    written.catch((err: unknown) => this.#o.logger.error({ err, runId: run.id }, 'could not count the canceled run'));
    // Settles when the count is in Redis (the mirror counts the run on top of its reads until then).
    return written;
  }
}
