import type { RunError } from './errors.js';
import type { DeliveryError, Notification } from './notification.js';
import type { Run, RunSource } from './run.js';
import type { LogLine } from './run-log.js';

/**
 * Why a trigger was refused; a refused trigger creates no run. `queue-full`: a schedule fire past
 * `limits.maxQueued`; `invalid-params`: a schedule fire whose params (`jobs.<name>.params`, the
 * defaults) the job's params schema refuses (a trigger with a caller gets 400 INVALID_PARAMS instead).
 */
export type SkipReason = 'disabled' | 'overlap' | 'cooldown' | 'once' | 'duplicate' | 'queue-full' | 'invalid-params';

/** Cluster mode: an event another host emitted carries that host's id (SPEC §11); this host's own carry none. */
interface Origin {
  host?: string;
}
interface HostData extends Origin {
  job: null;
}
interface JobData extends Origin {
  job: string;
}
interface RunData extends Origin {
  job: string;
  runId: string;
  /** The run's trace (SPEC §15), when tracing is set up. */
  traceId?: string;
}

/** The `data` of every event type the host emits (SPEC §5). Every payload carries `job`. */
export interface EventDataMap {
  'host.started': HostData & { pid: number; jobs: number };
  'host.stopping': HostData & { reason: string; graceMs: number };
  'host.stopped': HostData & { reason: string };
  'job.registered': JobData & { file: string | null; schedule: string | null; enabled: boolean };
  'job.updated': JobData & { file: string | null; schedule: string | null; enabled: boolean; changed: string[] };
  'job.removed': JobData & { file: string | null };
  'job.enabled': JobData;
  'job.disabled': JobData;
  /** SPEC §13: the job starts no run until resumed (triggers are still recorded). */
  'job.paused': JobData;
  'job.resumed': JobData;
  /** SPEC §13: no run of a job in the queue starts until resumed. */
  'queue.paused': HostData & { queue: string };
  'queue.resumed': HostData & { queue: string };
  'run.queued': RunData & { source: RunSource; queue: string; priority: number; key: string | null; runAt: string; delayed: boolean };
  'run.started': RunData & { attempt: number };
  'run.progress': RunData & { fraction: number; text: string | null };
  'run.retrying': RunData & { attempt: number; nextAttempt: number; runAt: string; delayMs: number; error: RunError };
  'run.succeeded': RunData & { attempt: number; durationMs: number; result: unknown };
  'run.failed': RunData & { attempt: number; durationMs: number | null; error: RunError };
  'run.canceled': RunData & { reason: string };
  /**
   * Lines a handler wrote through `ctx.log`, batched (one event per run per ~50 ms at most).
   * Sent only to listeners that ask for it, not numbered (its `seq` is the last numbered event's)
   * and not replayed: `GET /runs/:id/logs` has every kept line. `dropped`: lines of this batch
   * cut by the per-run bound before they were sent.
   */
  'run.log': RunData & { lines: LogLine[]; dropped: number };
  'run.skipped': JobData & { reason: SkipReason; source: RunSource; detail: string; runId?: string };
  /** The notification as recorded (its deliveries pending); `host` is the host alert's host when `rule` is `host`. */
  notification: RunData & Notification;
  /** A delivery reached its receiver. */
  'notification.delivered': RunData & { id: string; destination: string; deliveryId: string; attempts: number };
  /** A delivery is dead: no attempt left, or an answer that retrying cannot change. */
  'notification.failed': RunData & { id: string; destination: string; deliveryId: string; attempts: number; error: DeliveryError };
  'plugin.error': Origin & { job: string | null; file: string; code: string; message: string };
  'config.reloaded': HostData & { file: string | null; changed: string[]; restartRequired: string[] };
  'config.error': HostData & { file: string | null; code: string; path: string | null; message: string };
  /**
   * Cluster mode: events of other hosts this host never received (it fell behind the cluster
   * stream by more than `backend.streamLength`, e.g. cut off from Redis): what a client shows may
   * be stale, reload it. `lost`: stream entries (each one event or more of one host); null when
   * Redis cannot count them. `from`/`to`: the last entry read and the oldest one left. Every
   * filter lets it through; it is never shared with other hosts.
   */
  'events.gap': HostData & { lost: number | null; from: string; to: string };
}

export type EventType = keyof EventDataMap;

export const EVENT_TYPES: readonly EventType[] = [
  'host.started',
  'host.stopping',
  'host.stopped',
  'job.registered',
  'job.updated',
  'job.removed',
  'job.enabled',
  'job.disabled',
  'job.paused',
  'job.resumed',
  'queue.paused',
  'queue.resumed',
  'run.queued',
  'run.started',
  'run.progress',
  'run.retrying',
  'run.succeeded',
  'run.failed',
  'run.canceled',
  'run.skipped',
  'run.log',
  'notification',
  'notification.delivered',
  'notification.failed',
  'plugin.error',
  'config.reloaded',
  'config.error',
  'events.gap',
];

/** A `type` filter's value: an event type, `*`, or a glob `<prefix>.*` that some event type matches. */
export function isEventPattern(t: string): boolean {
  if (t === '*') return true;
  if (t.endsWith('.*')) return EVENT_TYPES.some((e) => e.startsWith(t.slice(0, -1)));
  return (EVENT_TYPES as readonly string[]).includes(t);
}

/** One event as the bus, the WebSocket and `jobhost tail` carry it. */
export interface HostEvent<T extends EventType = EventType> {
  seq: number;
  type: T;
  at: string;
  data: EventDataMap[T];
}

/** Any event, discriminated by `type`. */
export type AnyHostEvent = { [T in EventType]: HostEvent<T> }[EventType];

/** The first message on every `GET /events` connection (SPEC §6): where the stream starts. */
export interface HelloMessage {
  type: 'hello';
  /** The seq of the newest event at connect time: live events follow it. */
  seq: number;
  since: number | null;
  /** True when events after `since` had already left the replay buffer (the replay is incomplete), or `since` counted in another boot. */
  gap: boolean;
  /** The host's event numbering (a new one at every start): a reconnect passes it back as `boot`. */
  boot: string;
}

/** A message of the event stream: the hello, then events. */
export type StreamMessage = HelloMessage | AnyHostEvent;

/** The id of the host an event came from, when another host emitted it (cluster mode); undefined for this host's own. */
export function eventHost(event: AnyHostEvent): string | undefined {
  return event.data.host;
}

/** `run.queued` for a run entering the queue: new, or back from an interrupted attempt. */
export function queuedData(run: Run, delayed: boolean): EventDataMap['run.queued'] {
  const data: EventDataMap['run.queued'] = {
    job: run.job,
    runId: run.id,
    source: run.source,
    queue: run.queue,
    priority: run.priority,
    key: run.key,
    runAt: run.runAt,
    delayed,
  };
  if (run.traceId !== undefined) data.traceId = run.traceId;
  return data;
}
