import type { AfterEnd } from './after.js';
import type { AttemptExecutor, DeliveryAttempt, DeliveryOutcome, ExecutableJob, RunObserver } from './attempt.js';
import type { AuditRecord, AuditStore } from './audit.js';
import type { HostError } from './errors.js';
import type { AnyHostEvent, EventType, SkipReason } from './events.js';
import type { Delivery, Notification, NotifyStatus } from './notification.js';
import type { PauseStore } from './pause.js';
import type { Page, Run, RunQuery, RunStatus } from './run.js';
import type { RunLog } from './run-log.js';
import type { BackendHealth, DamageReport, EventGap } from './store-health.js';
import type { BackendStats, ClusterHost } from './views.js';

/**
 * The one seam between the engine and where runs wait and are recorded. The engine (registry,
 * triggers, scheduler, notifications, views, host lifecycle) talks to a `Backend` and never knows
 * which one it has; a backend decides *when* a run starts and hands each attempt to the engine's
 * `AttemptExecutor`. `store/` holds the `local` backend (in-process queues and a journal on
 * disk); a cluster backend (BullMQ on Redis) implements the same interface.
 *
 * What every backend guarantees:
 * - **Acknowledged means durable.** A promise a backend resolves for a write (`add`, `setJobFlags`,
 *   `addNotification`, `flush`) resolves only once that write survives a crash of this process
 *   (local: written and synced to disk; Redis: accepted by Redis under its fsync policy). A write
 *   that cannot be made durable rejects (`STORE_WRITE_FAILED`) and is retried by the backend;
 *   nothing acknowledged before is lost.
 * - **Admission is atomic with the add.** `add` checks the job's rules and records the run in one
 *   step: no other add, start or finish of the job comes between the check and the record.
 * - **One attempt at a time per run, reported in order.** For each run the observer sees
 *   `queued`, then per attempt `started` (then `progress`...), then `retrying` (back to waiting)
 *   or `finished`, never out of that order and never twice for one transition.
 * - **Ordering of starts.** Within a queue, lower `priority` first, FIFO within a priority; a run
 *   never starts before its `runAt`; queues share the global concurrency by their weights; a
 *   job never has more than its `concurrency` runs running.
 * - **After a crash.** Runs that were waiting keep their `runAt`; runs found running are
 *   recovered at `open`: their attempt ends `INTERRUPTED`, and they wait again while attempts
 *   remain, else end `failed`. A run whose handler finished but whose end was not yet durable
 *   runs again (at least once, not exactly once).
 */
export interface Backend {
  /**
   * Loads what was recorded, merges flags set in memory before (they win), and recovers runs
   * interrupted by a crash (reported through `hooks.observer`). Runs do not start before `start()`.
   * Rejects with a HostError when the backend cannot be reached (`BACKEND_UNAVAILABLE`).
   */
  open(hooks: BackendHooks): Promise<BackendOpened>;
  /** Starts handing runs to the executor: from here on the backend decides when runs start. */
  start(): void;
  /**
   * The host's plugins are in (its services started): ends what recovery found ended but could
   * not end before the jobs were known (a run interrupted with no attempts left: its `failed`
   * notification and `after` children need its job's plugin and theirs). Settles once written.
   */
  recovered?(): Promise<void>;
  /** Holds starts (adds are still accepted and recorded); running attempts go on. Works before `start()`. */
  pause(): void;
  resume(): void;
  readonly paused: boolean;
  /** Global concurrency and queue weights (a config edit); applies to the next start. */
  setLimits(concurrency: number, queues: Readonly<Record<string, number>>): void;
  /** A job was registered, replaced, re-resolved or removed (`hooks.job(name)` is then undefined). */
  jobChanged(name: string): void;

  /**
   * Admits and records a new run: checks `rules` against the job's state and its waiting and
   * running runs, then records the run, in one atomic step. Resolves with the refusal (and
   * records nothing) or, once the run is durable, with undefined. `observer.queued` is reported
   * when the run is admitted, which may be before the promise resolves. `audit`: the request's
   * record (SPEC §14), kept only when the run is accepted (a `debounced` merge is) and durable
   * when the promise resolves, in the run's own write where the backend can (one fsync for both).
   */
  add(run: Run, rules: AdmissionRules, fire?: ScheduleFire, audit?: AuditRecord): Promise<Refusal | undefined>;
  /**
   * Shared by several hosts (each arms the schedules of its own jobs): a schedule fire is handed
   * to `add` with its time and gets an id derived from it, and `add` admits one run per job and
   * fire time across the hosts (refusing the others with `fired`) while recording `lastFireAt` in
   * the same step; `lastFireAt` only ever grows. A backend alone (false) ignores `fire`.
   */
  readonly shared: boolean;
  /** Adds the runs `after` triggers in the write that records their parent's end (`BackendHooks.after`); else the engine triggers them. */
  readonly chains?: boolean;
  /**
   * An event of this host (not one relayed from another), for the other hosts sharing the
   * backend: each re-emits it with `data.host` (`BackendHooks.relay`). Ignored by a backend alone.
   */
  share(event: AnyHostEvent): void;
  /**
   * The live hosts sharing the backend, this one included, as each last announced itself (a
   * host that stops announcing drops out after a bounded time); null for a backend alone.
   */
  hosts(): readonly ClusterHost[] | null;
  /**
   * Cancels a waiting or running run, on whichever host runs it: a running attempt's signal is
   * aborted with `CANCELED` and the run ends `canceled` at once (a late result is ignored, no
   * retry follows). Resolves with `canceled: true` only once the run's `canceled` end is durable,
   * and the run handed back is that end (never a run still running); a backend whose running run
   * is out of its reach (a cluster host that died or is cut off) rejects after a bounded wait
   * with `CANCEL_PENDING`, the cancel recorded for whoever takes the run over. A finished run is
   * returned unchanged with `canceled: false`; an unknown id gives undefined. With `waitingOnly`, a run that is
   * running (it started meanwhile) is left alone and returned with `canceled: false` too.
   */
  cancel(id: string, reason: string, options?: { waitingOnly?: boolean }): Promise<{ canceled: boolean; run: Run } | undefined>;
  /**
   * Stops starting runs, lets running attempts finish for `graceMs`, then aborts the rest with
   * `SHUTDOWN`: each such run waits again (durably, for the next start) while attempts remain,
   * else ends `failed`. Waiting and delayed runs stay waiting.
   */
  drain(graceMs: number): Promise<void>;
  /**
   * Makes everything durable and releases files, timers and connections, in a bounded time
   * whether or not the backend can be reached. What it could not make durable or hand back by
   * then (a cluster host cut off from Redis: runs whose end was not written, deliveries in flight)
   * is left to recovery (the other hosts' stalled-run checks, or the next start), and from then on
   * `health().writeError` says so: `jobhost start` exits non-zero on it.
   */
  close(): Promise<void>;
  /** Resolves once everything recorded so far is durable. */
  flush(): Promise<void>;

  /** One run (a copy), waiting, running or finished; undefined when unknown. */
  getRun(id: string): Promise<Run | undefined>;
  /** History, newest first by id (ids sort by creation time); `next` is the cursor for `before`. */
  listRuns(query: RunQuery): Promise<Page<Run>>;

  /**
   * Keeps lines a handler logged with its run, bounded as a `LogTail` bounds them (the last 500
   * lines or 256 KiB; `log.dropped` adds to the run's count of cut lines). Not an acknowledged
   * write: the lines become durable with the backend's next write (local: the next group commit),
   * so a crash may lose the lines since then. The engine calls it while the run is unfinished and
   * at the latest in the same turn of the event loop as `observer.finished`; lines for a run
   * that finished before are dropped. Never rejects for a full disk: the lines wait for the next write.
   */
  appendLogs(runId: string, log: RunLog): void;
  /**
   * A run's kept lines, oldest first, with the count of lines the bound dropped; undefined when the
   * backend keeps none for it (no lines, or a run retention removed). Kept as long as the run.
   */
  getLogs(runId: string): Promise<RunLog | undefined>;

  /**
   * The state kept for a job across restarts (a snapshot; empty for a job never seen). Read
   * synchronously: a distributed backend serves it from a local mirror it keeps fresh.
   */
  jobState(name: string): Readonly<JobState>;
  /** Every job with state, registered or not (a job's counts outlive its plugin file). */
  jobStates(): ReadonlyMap<string, Readonly<JobState>>;
  /** Sets (a value) or clears (null) a job's flags; durable when the promise resolves (memory only before `open`). */
  setJobFlags(name: string, flags: JobFlags): Promise<void>;

  /**
   * Records a notification with its deliveries (each `pending`, see `Delivery`) and queues them;
   * durable when the promise resolves. The backend then hands each delivery to
   * `hooks.deliver` once at a time, on one host of those sharing it, until it is delivered or
   * dead, recording each outcome (durably, before the next attempt) and reporting it to
   * `hooks.deliveryChanged`. Deliveries never hold a run, a trigger or an event: they have
   * their own concurrency (`notifications.concurrency` per host), and a kill or restart resumes
   * the open ones (at least once: an attempt cut short is made again, under the same id).
   */
  addNotification(notification: Notification): Promise<void>;
  /** One notification (a copy) with its deliveries; undefined when unknown. */
  getNotification(id: string): Promise<Notification | undefined>;
  /** Notifications, newest first (the most recent 1,000 at least, and every one with an open delivery). */
  listNotifications(query: NotificationQuery): Promise<Page<Notification>>;
  /**
   * Queues the deliveries of notification `id` again (all of them, or the one to `destination`)
   * as a new series of attempts under the same ids, whatever their state; durable when it
   * resolves. Undefined for an unknown id (or one with no delivery to `destination`).
   */
  redeliver(id: string, destination?: string): Promise<Notification | undefined>;
  /** Deliveries waiting for an attempt (pending or retrying), on every host sharing the backend. */
  openDeliveries(): number;
  /**
   * The notifications of `incident` (`incidentOf`) older than `before` (by id), with a delivery to
   * `destination` still open (pending or retrying), oldest first, at most OPEN_BEFORE_MAX: what a
   * delivery that must keep the order of its incident waits for. `opens`: only those that open
   * it (triggers, true) or resolve it (false).
   */
  openBefore(destination: string, before: string, incident: string, opens?: boolean): Promise<Notification[]>;
  /**
   * The host is stopping, just before `close`: the deliveries of `notifications` (the digests the
   * stop itself recorded) get their first attempt (on a shared backend, by whichever host takes
   * them), and this resolves once they have had it, at once with none, or when `signal` aborts
   * (the stop's bound): what is still in flight then is left to `close` (aborted, made again
   * after the next start or by another host). A retry an attempt asks for waits for later. Never
   * rejects.
   */
  settleDeliveries(notifications: readonly string[], signal: AbortSignal): Promise<void>;
  /**
   * Storm control (`notifications.throttle`): when no window of `key` is open, opens one for
   * `ms` and answers what the windows before it held that no digest took, cleared (send, and say
   * so: usually nothing; a window whose only holder was killed left its counts); else counts
   * `status` as held back in the open window and answers the ms left in it (whoever holds one
   * back can see to its digest: the host that opened the window may be gone). Shared by every
   * host on a shared backend; not a durable write.
   */
  throttle(key: string, ms: number, status: NotifyStatus): Promise<number | HeldCounts>;
  /** What was held back in the window of `key`, cleared, open or not (a recovery, a stop's last digests). */
  takeHeld(key: string): Promise<HeldCounts>;
  /** The same once the window has ended (its digest); while it is open, the ms left in it, and nothing is taken. */
  takeEnded(key: string): Promise<HeldCounts | number>;
  /**
   * The `missed` rule: moves the job's `missedThrough` up to `fireAt` and answers true when
   * this call moved it (the caller sends the alert), false when it was already there (another
   * host, or before a restart, did). Durable when it resolves.
   */
  claimMissed(job: string, fireAt: number): Promise<boolean>;
  /**
   * The `missed` rule: keeps the watch on a fire across a crash or restart (it lives in memory
   * otherwise), dropping the job's watches whose deadline is before `now` (the host that kept
   * them was up to see them due) and all but the latest MISSED_WATCHES_MAX. Durable when it resolves.
   */
  keepMissedWatch(job: string, watch: MissedWatch, now: number): Promise<void>;
  /** The watch's run started in time: it is no longer kept (`watch` as it was kept). */
  dropMissedWatch(job: string, watch: MissedWatch): Promise<void>;
  /** The watches kept for `job` (read at start: those a stop or crash left open), oldest fire first. */
  missedWatches(job: string): Promise<MissedWatch[]>;
  /**
   * The `slow` rule: answers true once per run (the caller sends the alert), false after that: a
   * run whose retry or takeover starts on another host, or that runs again after a restart
   * (its first start long past), is told once. Durable when it resolves.
   */
  claimSlow(job: string, runId: string): Promise<boolean>;
  /**
   * A run's end is told (`done`: its notifications recorded, or none was due) or its telling failed:
   * a backend that writes ends apart from notifications (cluster mode) drops the mark the end's
   * write left, so no other host tells it again, or leaves it to be told later (see `UntoldEnd`).
   * Absent where an end and its notification are one commit.
   */
  told?(runId: string, done: boolean): void;

  /** Waiting (queued or delayed) plus running runs of a job, and the running ones alone (a distributed backend: from its mirror). */
  activeRuns(job: string): { active: number; running: number; rateLimited?: number }; // rateLimited: waiting runs its rateLimit holds
  /** Runs by where they wait, for stats and metrics (a distributed backend: from its mirror). */
  depths(): Depths;
  /**
   * Runs waiting (queued or delayed, not running), for `limits.maxQueued`: read on every trigger,
   * so O(1) or close. A distributed backend answers from its mirror: every host's waiting runs as
   * last read, plus this host's adds since.
   */
  waiting(): number;
  stats(): BackendStats;
  /**
   * Why new work cannot be acknowledged now, as the error to refuse it with (503 with a time to
   * retry: `STORE_WRITE_FAILED` on a full disk, `BACKEND_UNAVAILABLE` while Redis is out of
   * reach), or null. Cleared by the backend itself when it recovers. Cheap: read on every trigger.
   */
  unavailable(): HostError | null;
  /** Its reachability, write errors and damage found in its records, for `/ready` and `/metrics`. */
  health(): BackendHealth;
  /** Acknowledges damage reports (every unacknowledged one without `ids`); durable when it resolves. */
  ackDamage(ids?: readonly string[]): Promise<{ acknowledged: DamageReport[]; unknown: string[] }>;
  /** The audit trail (SPEC §14): an append is durable when it resolves, like an add; shared by every host sharing the backend. */
  readonly audit: AuditStore;
  /** What is paused (SPEC §13): held runs wait, recorded as ever; kept across restarts, shared by every host sharing the backend. */
  readonly pauses: PauseStore;
}

/** What a backend tells the engine once it is open. */
export interface BackendOpened {
  /**
   * The node part of ids minted on this host (run and notification ids), when the backend is
   * shared with other hosts: unique among them, so two hosts never mint the same id.
   */
  idNode?: string;
  /**
   * When this host began to hear other hosts' run events (epoch ms), when the backend is shared:
   * runs that ended before it are only in history (the run charts read them back up to it).
   */
  eventsSince?: number;
}

/** What a backend may call back into: the engine's side of the seam, handed over at `open`. */
export interface BackendHooks {
  /** The definition to run `name` with now, or undefined while no plugin here provides it (its runs wait). */
  job(name: string): ExecutableJob | undefined;
  /** Runs one attempt; the backend aborts it for cancel, timeout and shutdown. */
  readonly executor: AttemptExecutor;
  /** Every state change of a run, in order; the engine turns them into events and notifications. */
  readonly observer: RunObserver;
  /** A job's flags (`enabled`) were changed by another host: the engine resolves the job again. */
  flagsChanged(name: string): void;
  /** This host as the other hosts see it (its id, running count and last-seen time are the backend's to fill in). */
  describe(): Pick<ClusterHost, 'url' | 'startedAt' | 'jobs' | 'destinations'>;
  /**
   * Makes one attempt of a delivery and says what became of it; never rejects. `signal` is
   * aborted when the backend closes (the attempt is then made again after the next start).
   * The records handed over may be the backend's own: the engine reads them and keeps nothing
   * (likewise in `deliveryChanged`).
   */
  deliver(attempt: DeliveryAttempt, signal: AbortSignal): Promise<DeliveryOutcome>;
  /** A delivery's new state is recorded (after each attempt, or a redeliver): the engine emits and counts it. */
  deliveryChanged(notification: Notification, delivery: Delivery): void;
  /** An event another host shared (`data.host` names it): the engine emits it on this host's bus. */
  relay(type: Exclude<EventType, 'run.log'>, at: string, data: AnyHostEvent['data'] & { host: string }): void;
  /** For a backend that `chains`: builds the runs an end triggers (ids, checked params), and hears how their add went. */
  readonly after?: {
    build(end: AfterEnd): Promise<Array<{ run: Run; rules: AdmissionRules }>>;
    added(run: Run, refused: Refusal | undefined): void;
    /** An end recorded outside the chaining write (a waiting run canceled): the engine triggers its children itself (settles once they are added, or refused). */
    ended(run: Run): Promise<void>;
  };
  /** Shared events this host never received (it fell behind the cluster stream): the engine emits `events.gap`. */
  eventsLost?(gap: EventGap): void;
}

/** A job's rules for new runs, handed to `add` so the check and the add are one step. */
export interface AdmissionRules {
  readonly enabled: boolean;
  /**
   * `enabled` as the plugin and the config say, without a run-time flag: a backend that keeps
   * the flags elsewhere (Redis) checks its own copy of the flag and falls back to this.
   */
  readonly configEnabled: boolean;
  /** May succeed once ever; refused while a run is waiting or running, or after a success. */
  readonly once: boolean;
  /** After a success, refused for this long. */
  readonly cooldownMs: number;
  /** `skip`: refused while a run of the job is waiting or running. */
  readonly overlap: 'skip' | 'queue' | 'allow';
  readonly debounceMs?: number; // SPEC §13: > 0 merges a trigger into the waiting run of its key (Refusal `debounced`)
}

/** A schedule fire, as `add` takes it on a shared backend. */
export interface ScheduleFire {
  /** The fire time (ms): admitted only while the job's `lastFireAt` is before it. */
  readonly at: number;
  /** What `lastFireAt` becomes when admitted (the fire time; for a catch-up, or a fire that came a period late, the time it came). */
  readonly record: number;
}

export interface Refusal {
  /** `fired`: another host already ran this fire (no `run.skipped`: nothing was refused to anyone); `debounced`: merged into `runId` (accepted). */
  reason: SkipReason | 'fired' | 'debounced';
  detail: string;
  /** The run that stands in the way, when there is one. */
  runId?: string;
}

/**
 * What a backend keeps per job across restarts: flags (`enabled`, `lastFireAt`), set by the
 * engine, and aggregates of finished runs (the rest), kept by the backend as runs finish.
 */
export interface JobState {
  /** Set by enable/disable at run time; absent means "as the plugin and config say". */
  enabled?: boolean;
  /** The last schedule fire (ms), for catch-up. */
  lastFireAt?: number;
  lastSuccessAt?: string;
  lastRun?: { runId: string; status: RunStatus; at: string };
  counts?: Partial<Record<RunStatus, number>>;
  /** Durations (ms) of the most recent finished runs, for p50/p95. */
  durations?: number[];
  /** Failed runs since the last success (canceled ones do not count either way). */
  failStreak?: number;
  /** The failStreak the last success ended (0 when it followed a success): `recovered` reads it. */
  endedStreak?: number;
  /** Schedule fires up to this time (ms) are accounted for by the `missed` rule (see `claimMissed`). */
  missedThrough?: number;
  /** The `missed` rule's watches a restart takes up again (see `keepMissedWatch`); the local backend's. */
  missedWatches?: MissedWatch[];
  /** Runs of the job the `slow` rule has told, while they may run again after a restart (see `claimSlow`); the local backend's. */
  slowTold?: string[];
}

/** A schedule fire the `missed` rule watches (`Backend.keepMissedWatch`). */
export interface MissedWatch {
  /** The fire time (ms). */
  fireAt: number;
  /** When the fire is missed unless its run has started (ms): `fireAt` plus its `missedAfter`. */
  deadline: number;
  /** The fire's run; null when it made none (then `reason` says why). */
  runId: string | null;
  reason: string;
}

/**
 * Watches a backend keeps per job (`keepMissedWatch`), the newest: a watch goes once its run
 * starts (`dropMissedWatch`) or its deadline passes, so only a job whose fires stay unstarted has
 * many at once (an hour of every-minute fires). Each keep rewrites the job's list (on the local
 * store, a line of the job's flags): a thousand made every fire of such a job write ~100 KB.
 */
export const MISSED_WATCHES_MAX = 60;

/**
 * Runs a backend keeps the `slow` mark of per job, the newest (`claimSlow`): a mark goes once its
 * run has ended, so only a job with this many slow runs live at once (running or waiting to run
 * again) loses the oldest mark, and that run may be told slow again after a restart.
 */
export const SLOW_TOLD_MAX = 100;

/** A watch as a backend keeps it: the same text for the same watch, so a drop names what a keep wrote. */
export function missedWatchText(w: MissedWatch): string {
  return JSON.stringify({ fireAt: w.fireAt, deadline: w.deadline, runId: w.runId, reason: w.reason });
}

/** Flags to set (a value), clear (null) or leave alone (absent). */
export interface JobFlags {
  enabled?: boolean | null;
  lastFireAt?: number | null;
}

/** Held back in a storm-control window, by status. */
export type HeldCounts = Partial<Record<NotifyStatus, number>>;

export interface NotificationQuery {
  limit?: number | undefined;
  before?: string | undefined;
  job?: string | undefined;
}

export interface Depths {
  /** Runs ready to start (or held by their job's limit), per queue. */
  queues: Record<string, number>;
  /** Waiting for their `runAt`. */
  delayed: number;
  ready: number;
  running: number;
  /** Ready, but held back by their job's concurrency (or a job no plugin provides now). */
  parked: number;
}
