/**
 * Where cluster mode keeps things in Redis. BullMQ owns `<prefix>:<job>:*` (one queue per job:
 * its job hashes, wait/prioritized/delayed/active/completed/failed sets, events stream, metrics);
 * jobhost's own keys live under `<prefix>:__jh:*`, which no job name can reach (names are
 * kebab-case), and the cluster stream at `<prefix>:__cluster:events`.
 */
export class ClusterKeys {
  readonly prefix: string;
  /** Entries the cluster stream keeps (`backend.streamLength`; about: XADD's `MAXLEN ~`). */
  readonly streamLength: number;

  constructor(prefix: string, streamLength = CLUSTER_STREAM_MAXLEN) {
    this.prefix = prefix;
    this.streamLength = streamLength;
  }

  /** A key of a job's BullMQ queue (`''` gives the base, `<prefix>:<job>:`). */
  queue(job: string, suffix: string): string {
    return `${this.prefix}:${job}:${suffix}`;
  }

  /** The version of this key layout (`schema.ts`): outside `__jh` and no queue's key, so any version finds it. */
  get schema(): string {
    return `${this.prefix}:schema`;
  }

  /** A job's admission state and flags: enabled, lastFireAt, lastSuccessAt, succeededRun, canceled counts, missedThrough. */
  jobState(job: string): string {
    return `${this.prefix}:__jh:job:${job}`;
  }

  /** What is paused (SPEC §13): fields `job:<name>` and `queue:<name>` (`pause.ts`). */
  get pauses(): string {
    return `${this.prefix}:__jh:pauses`;
  }

  /** Every job some host has loaded (their counts outlive the plugin files). */
  get jobs(): string {
    return `${this.prefix}:__jh:jobs`;
  }

  /** The history index: members `<runId>:<job>`, all scores 0, so run ids order it (newest last). */
  get runs(): string {
    return `${this.prefix}:__jh:runs`;
  }

  runsOf(job: string): string {
    return `${this.prefix}:__jh:runs:${job}`;
  }

  /** The final record of a run canceled while it waited (BullMQ keeps nothing of a removed job). */
  tomb(runId: string): string {
    return `${this.prefix}:__jh:tomb:${runId}`;
  }

  /** Recent notifications: a sorted set of ids (all scores 0), ordered by id (time). Older hosts wrote `<id>\t<json>` members. */
  get notifications(): string {
    return `${this.prefix}:__jh:notifications`;
  }

  /** A notification and the state of each of its deliveries (a hash, see `notification-records.ts`). */
  notification(id: string): string {
    return `${this.prefix}:__jh:notification:${id}`;
  }

  /** The destination names that have a delivery queue (`__deliveries.<name>`): read to find a queue no live host works. */
  get deliveryQueues(): string {
    return `${this.prefix}:__jh:delivery-queues`;
  }

  /** The ids of deliveries waiting for an attempt (pending or retrying), of every host. */
  get openDeliveries(): string {
    return `${this.prefix}:__jh:deliveries:open`;
  }

  /** The `missed` rule's watches of a job's fires (`Backend.keepMissedWatch`): JSON members scored by deadline. */
  missedWatches(job: string): string {
    return `${this.prefix}:__jh:missed:${job}`;
  }

  /** A storm-control window of a key (job and destination): exists while the window is open. */
  stormWindow(key: string): string {
    return `${this.prefix}:__jh:storm:${key}`;
  }

  /** What storm control held back under a key, by status (a hash of counts). */
  stormHeld(key: string): string {
    return `${this.prefix}:__jh:held:${key}`;
  }

  /** The audit trail of every host: members `<id>\t<json>`, all scores 0, ordered by id (time); see `audit-records.ts`. */
  get audit(): string {
    return `${this.prefix}:__jh:audit`;
  }

  /** A run's log lines (a list of JSON, the newest 500) and, beside it, how many were dropped. */
  log(runId: string): string {
    return `${this.prefix}:__jh:log:${runId}`;
  }

  /** A counter each starting host increments: the node part of the ids it mints. */
  get hostSeq(): string {
    return `${this.prefix}:__jh:hostseq`;
  }

  /** Settings every host must share (lock timing), kept alive by live hosts. */
  get settings(): string {
    return `${this.prefix}:__jh:settings`;
  }

  /**
   * The cluster stream: what hosts tell each other (every host's events, a cancel request for a
   * run on another host), laid out like a BullMQ events stream (`event` plus fields), trimmed to
   * about `streamLength` entries.
   */
  get clusterStream(): string {
    return `${this.prefix}:__cluster:events`;
  }

  /** A live host's heartbeat (JSON), expiring unless the host renews it. */
  host(id: string): string {
    return `${this.prefix}:__jh:host:${id}`;
  }

  /** The ids of hosts that have sent a heartbeat (those whose heartbeat expired are dropped by readers). */
  get hosts(): string {
    return `${this.prefix}:__jh:hosts`;
  }

  /**
   * Ends of runs not yet told (`untold.ts`): run ids scored by the time (ms, Redis's clock) the
   * write that ended each one marked it; `untoldEnds` holds what each end left (outcome, streaks, host).
   */
  get untold(): string {
    return `${this.prefix}:__jh:untold`;
  }

  get untoldEnds(): string {
    return `${this.prefix}:__jh:untold:ends`;
  }

  /** Set by the host that ran the last retention sweep, so hosts take turns. */
  get sweep(): string {
    return `${this.prefix}:__jh:sweep`;
  }
}

/**
 * The BullMQ queue of deliveries (one for the cluster, `<prefix>:__deliveries:*`): no job name
 * can be it (names are kebab-case).
 */
export const DELIVERY_QUEUE = '__deliveries';

/** `failedReason` of a run canceled while it ran (BullMQ's deferred failure carries it too). */
export const CANCELED_REASON = 'jobhost:canceled';
/** The reason BullMQ's signal is aborted with when the host shuts down past its grace. */
export const SHUTDOWN_REASON = 'jobhost:shutdown';

/**
 * Entries the cluster stream keeps by default (about: XADD's `MAXLEN ~`). A host whose read falls
 * further behind than this loses the oldest (at 1,000 runs a second, some 4,000 events a second:
 * ~12 s); it finds out and says so (`stream-gaps.ts`).
 */
export const CLUSTER_STREAM_MAXLEN = 50_000;
