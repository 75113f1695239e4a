/**
 * Every error jobhost reports carries a stable code from this one table. The HTTP layer maps a
 * code to its status here and nowhere else; the README documents every code (a test checks it).
 */
export const ERROR_CODES = {
  // plugins
  PLUGIN_INVALID: { status: 400, text: 'A plugin definition fails the plugin schema; the message names the field.' },
  PLUGIN_IMPORT_FAILED: { status: 400, text: 'A plugin file could not be imported (syntax error, throw at import time).' },
  PLUGIN_IMPORT_TIMEOUT: { status: 400, text: 'A plugin file did not finish importing within the time limit.' },
  PLUGIN_NO_EXPORT: { status: 400, text: 'A plugin file has no default export.' },
  PLUGIN_DUPLICATE: { status: 409, text: 'Two plugin files declare the same job name; the message names both files.' },
  AFTER_CYCLE: {
    status: 400,
    text: '`after` would make a cycle between jobs (a run of each would trigger the next forever); the message names the jobs of the cycle, and the plugin (or config edit) that closes it is refused.',
  },
  INVALID_CRON: { status: 400, text: 'A schedule is not a valid 5- or 6-field cron expression.' },
  INVALID_TIMEZONE: { status: 400, text: 'A timezone is not a valid IANA zone.' },
  INVALID_DURATION: { status: 400, text: "A duration is not a number of ms or a string like '250ms', '30s', '5m', '2h', '1d'." },
  // config
  CONFIG_INVALID: { status: 400, text: 'The config file fails its schema; the message names the path (jobs.x.schedule).' },
  CONFIG_PARSE: { status: 400, text: 'The config file is not valid JSON.' },
  CONFIG_READ: { status: 500, text: 'The config file could not be read.' },
  // triggers and runs
  JOB_NOT_FOUND: { status: 404, text: 'No job with that name is registered.' },
  RUN_NOT_FOUND: { status: 404, text: 'No run with that id is known.' },
  QUEUE_NOT_FOUND: { status: 404, text: 'No queue of that name in the config (`queues`); `POST /queues/:name/pause` and `/resume` take those names.' },
  INVALID_PARAMS: {
    status: 400,
    text: "The params fail the job's params schema (or the schema threw); `issues` lists each problem.",
  },
  INVALID_BODY: { status: 400, text: 'The request body, query or path fails its schema.' },
  SKIPPED: {
    status: 409,
    text: 'The trigger was refused: `reason` is disabled, overlap, cooldown, once or duplicate (queue-full: a schedule fire past limits.maxQueued).',
  },
  RUN_FINISHED: { status: 409, text: 'The run has already finished, so it cannot be canceled.' },
  CANCEL_PENDING: {
    status: 504,
    text: "Cluster mode: the run's cancel is recorded, but the host running it did not end it within 5 s (it stopped, or is cut off from Redis); it ends canceled, without running its handler again, once another host takes it over.",
  },
  RUN_NOT_RETRYABLE: { status: 409, text: 'Only a failed or canceled run can be retried.' },
  RUN_NOT_WAITING: { status: 409, text: 'A bulk cancel left this run alone: it started (or ended) after it was counted.' },
  PARAMS_TOO_LARGE: { status: 413, text: "A trigger's params are larger as JSON than limits.maxParamsBytes (256 KiB by default)." },
  EVENT_TOO_LARGE: {
    status: 413,
    text: "An app event's payload (POST /events/:type, host.publish, ctx.emit) is larger as JSON than limits.maxEventBytes (256 KiB by default).",
  },
  QUEUE_FULL: {
    status: 503,
    text: 'limits.maxQueued runs are already waiting: the trigger is not acknowledged; retry after `Retry-After` seconds. A schedule fire is skipped (`run.skipped`, reason queue-full).',
  },
  EVENTS_OVERFLOW: {
    status: 503,
    text: "An events() iterator's consumer fell behind by more than its bound: the iterator ends with this error (details.seq: the last event it gave); resume with events({ since: seq }).",
  },
  SHUTTING_DOWN: { status: 503, text: 'The host is stopping and refuses new work.' },
  NOT_STARTED: { status: 503, text: 'The host has not started yet.' },
  ALREADY_STARTED: { status: 409, text: '`host.start()` on a host that has been started (running, stopping or stopped): a host starts once; create another.' },
  WAIT_TIMEOUT: { status: 504, text: '`host.wait(runId, { timeout })` gave up: the run did not end in time; it goes on.' },
  STOP_INCOMPLETE: {
    status: 500,
    text: 'A stop ended without closing every part: one failed to close, or the stop passed its deadline (shutdown.grace + shutdown.margin); `details.failed` and `details.overdue` name them. `jobhost start` then exits 1.',
  },
  // handler outcomes (recorded on attempts and runs)
  TIMEOUT: { status: 500, text: "An attempt ran past the job's timeout; its signal was aborted and a late result is ignored." },
  HANDLER_ERROR: {
    status: 500,
    text: 'The handler threw or rejected (a plain Error, or a non-Error value); an Error with its own `code` or class name keeps that instead.',
  },
  UNHANDLED_REJECTION: { status: 500, text: 'The handler left a promise rejection unhandled; the attempt fails.' },
  UNCAUGHT_EXCEPTION: { status: 500, text: 'Code started by the handler threw outside any await (e.g. in a timer); the attempt fails.' },
  RESULT_NOT_SERIALIZABLE: { status: 500, text: "The handler's result cannot be stored as JSON (BigInt, circular reference)." },
  RESULT_TOO_LARGE: { status: 500, text: "The handler's result is larger as JSON than limits.maxResultBytes (1 MiB by default); the attempt fails." },
  CANCELED: { status: 409, text: 'The run was canceled; its signal was aborted.' },
  INTERRUPTED: { status: 500, text: 'The host stopped abruptly (crash, kill -9) while the attempt was running.' },
  SHUTDOWN: { status: 503, text: 'The attempt was aborted because the host shut down past its grace period.' },
  OUT_OF_MEMORY: {
    status: 500,
    text: "The handler's worker thread ran past its memory limit (workers.maxMemoryMb); the worker was replaced and the attempt fails.",
  },
  PARAMS_NOT_TRANSFERABLE: {
    status: 500,
    text: "The run's params hold a value a worker thread cannot receive (a function, from an app event's payload or a params schema's transform): the attempt fails. Pass plain data, or run the job inline.",
  },
  WORKER_EXITED: {
    status: 500,
    text: 'The handler called process.exit(), or its worker thread stopped for another reason; the worker was replaced and the attempt fails.',
  },
  // notifications (SPEC §12); the last four are delivery errors, kept on a delivery's `lastError`
  NOTIFICATION_NOT_FOUND: { status: 404, text: 'No notification with that id is known.' },
  DESTINATION_NOT_FOUND: {
    status: 404,
    text: 'No destination of that name in notifications.destinations; a delivery to it is dead at once, and `jobhost validate` names the plugin and the destination.',
  },
  RECEIVER_UNREACHABLE: { status: 502, text: 'A delivery could not reach its receiver (connection refused or reset, DNS, TLS); it is tried again.' },
  RECEIVER_TIMEOUT: { status: 504, text: 'A receiver did not answer within notifications.timeout (10 s); the delivery is tried again.' },
  RECEIVER_ERROR: {
    status: 502,
    text: 'A receiver answered 5xx, 408 or 429 (or an SMTP 4xx); the delivery is tried again, after its Retry-After when it gives one.',
  },
  RECEIVER_REJECTED: {
    status: 502,
    text: 'A receiver refused a delivery for good (another 4xx, a redirect, an SMTP 5xx): the delivery is dead at once; the message has the status and the start of the answer.',
  },
  DELIVERY_ABORTED: { status: 503, text: 'The host stopped during a delivery attempt; the delivery is made again after the next start.' },
  DELIVERY_FAILED: { status: 500, text: 'A delivery attempt failed inside the host; it is tried again.' },
  // HTTP
  UNAUTHORIZED: { status: 401, text: 'A token is configured and the request did not carry it.' },
  FORBIDDEN: {
    status: 403,
    text: "The token is valid but its role may not do this (or an operator's `jobs` leave the job out); `role` names the role needed. Audited.",
  },
  ORIGIN_NOT_ALLOWED: { status: 403, text: "The request comes from a web page whose origin is neither the host's own nor in server.allowedOrigins." },
  HOST_NOT_ALLOWED: { status: 403, text: 'On a loopback address, the Host header names neither loopback nor an entry of server.allowedHosts (DNS rebinding).' },
  NOT_FOUND: { status: 404, text: 'No such route.' },
  PAYLOAD_TOO_LARGE: { status: 413, text: 'The request body is larger than the limit.' },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    text: 'A POST does not say content-type: application/json (with a body or without one); one that does but whose body is not valid JSON is 400 BAD_REQUEST.',
  },
  METHOD_NOT_ALLOWED: { status: 405, text: 'The route does not accept that method.' },
  BAD_REQUEST: { status: 400, text: 'The request could not be understood (malformed JSON, bad headers).' },
  UPGRADE_REQUIRED: { status: 426, text: 'GET /events is a WebSocket: the request must ask for an upgrade.' },
  INSECURE_BIND: { status: 500, text: 'Refusing to listen on a non-loopback address without a token.' },
  LISTEN_FAILED: {
    status: 500,
    text: 'The HTTP server could not listen on its address: the port is in use or not allowed (`server.port`, `JOBHOST_PORT`; 0 picks a free one).',
  },
  // store
  STORE_CORRUPT: {
    status: 500,
    text: 'A store file has a torn tail (an interrupted write, expected after a crash): it was never acknowledged, and is dropped.',
  },
  STORE_DAMAGED: {
    status: 500,
    text: 'A store file is damaged (changed from outside, not a torn tail from a crash), or state.json is unreadable: every readable line loads, the file is copied aside, and /ready lists it until acknowledged.',
  },
  STORE_WRITE_FAILED: { status: 503, text: 'The store cannot write (a full disk): the trigger is not acknowledged; retry after `Retry-After` seconds.' },
  STORE_OPEN_FAILED: {
    status: 500,
    text: 'The store directory could not be opened at start: a path in it is not what the store keeps there (a directory where a file goes, a file where a directory goes) or may not be used; the host does not start, and the message names the path.',
  },
  STORE_LOCKED: {
    status: 409,
    text: 'Another process (another host, or this one) owns the store directory: the host does not start; the message names the pid and host holding it.',
  },
  STORE_VERSION_UNSUPPORTED: {
    status: 500,
    text: 'The store directory was written by a newer jobhost (its `format` is newer than this version reads): the host does not start, and leaves every file as it was.',
  },
  // cluster mode (backend.kind: redis)
  BACKEND_UNAVAILABLE: {
    status: 503,
    // The answer to a request carries this text: it says nothing of starts (the README's table does).
    text: 'Redis (the cluster backend) cannot be reached: nothing was acknowledged; retry after `Retry-After` seconds.',
  },
  BACKEND_NOT_REPLICATED: {
    status: 503,
    text: 'Redis took the write but fewer replicas than backend.waitReplicas had it within backend.waitTimeout: not acknowledged (a failover may lose it, or it may still take effect); retry after `Retry-After` seconds (a trigger with a `key` is safe to retry).',
  },
  DISPATCH_STALLED: {
    status: 200,
    text: 'A /ready warning and a host alert: runs have waited with free capacity longer than notifications.stallAfter (30 s) and none started; it clears once runs start.',
  },
  SCHEDULER_STALLED: {
    status: 200,
    text: 'A /ready warning and a host alert: an armed schedule is more than one period past its fire time; it clears once it fires.',
  },
  CLUSTER_DRIFT: {
    status: 409,
    text: 'A warning on /ready, not an error: a job is loaded on several live hosts with different definitions (a config or plugin edit not yet on every host).',
  },
  BACKEND_SETTINGS_MISMATCH: {
    status: 500,
    text: "backend.lockDuration or backend.stalledInterval differs from what the cluster's live hosts use; every host must use the same (the host does not start).",
  },
  REDIS_MAXMEMORY_POLICY: {
    status: 200,
    text: "A warning at start (logged) and on /ready, not an error: Redis' maxmemory-policy is not noeviction, so under memory pressure Redis may evict the keys of waiting runs and their locks (BullMQ requires noeviction).",
  },
  BACKEND_SCHEMA_UNSUPPORTED: {
    status: 500,
    text: 'The Redis prefix holds keys of a newer jobhost (`<prefix>:schema` is newer than this version knows): the host does not start, rather than write beside them.',
  },
  DEPENDENCY_UNAVAILABLE: {
    status: 500,
    text: 'A package jobhost loads only when it is needed (BullMQ and ioredis, for backend.kind "redis") could not be loaded: the host does not start; reinstall jobhost.',
  },
  INTERNAL: { status: 500, text: 'An unexpected error inside jobhost.' },
} as const satisfies Record<string, { status: number; text: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * An error answer of the HTTP API, in fastify's shape: `{ statusCode, code, error, message }`
 * plus extra fields, e.g. `issues` (INVALID_PARAMS, INVALID_BODY) and `reason` (SKIPPED).
 */
export interface HttpErrorBody {
  statusCode: number;
  code: ErrorCode;
  error: string;
  message: string;
  /** What was invalid, field by field (INVALID_PARAMS, INVALID_BODY). */
  issues?: Array<{ path: string; message: string }>;
  [extra: string]: unknown;
}

/** The one error type jobhost throws: a stable `code`, a message, and optional structured details. */
export class HostError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: ErrorOptions) {
    super(message, options);
    this.name = 'HostError';
    this.code = code;
    this.details = details;
  }

  get statusCode(): number {
    return ERROR_CODES[this.code].status;
  }
}

export function isHostError(err: unknown): err is HostError {
  // `instanceof` asks a Proxy's getPrototypeOf trap, which may throw: a handler may throw anything.
  try {
    return err instanceof HostError;
  } catch {
    return false;
  }
}

/** `{ code, message }` as stored on runs and attempts, from anything a handler may throw. */
export interface RunError {
  code: string;
  message: string;
}

/** A run error's message at most (characters): a handler's error is kept on every attempt, its run, its notification. */
export const RUN_ERROR_MESSAGE_MAX = 8192;
/** A run error's code at most (characters). */
const RUN_ERROR_CODE_MAX = 100;

/**
 * `{ code, message }` of whatever a handler threw, never throwing itself (a message getter that
 * throws, a null-prototype object, a Proxy) and bounded (a 20 MB message is kept as its start).
 */
export function toRunError(err: unknown, fallback: ErrorCode = 'HANDLER_ERROR'): RunError {
  let error: RunError;
  // (`describe` may meet a Proxy whose every trap throws: its failure is the fallback below.)
  try {
    error = describe(err, fallback);
  } catch {
    error = { code: fallback, message: 'non-Error thrown: a value that cannot be described' };
  }
  const { code, message } = error;
  return {
    code: code.length > RUN_ERROR_CODE_MAX ? code.slice(0, RUN_ERROR_CODE_MAX) : code,
    message:
      message.length > RUN_ERROR_MESSAGE_MAX
        ? `${message.slice(0, RUN_ERROR_MESSAGE_MAX)}… (${message.length - RUN_ERROR_MESSAGE_MAX} more characters)`
        : message,
  };
}

function describe(err: unknown, fallback: ErrorCode): RunError {
  if (isHostError(err)) return { code: err.code, message: err.message };
  if (err instanceof Error) {
    const message = String(err.message);
    // An error's own string code (ECONNREFUSED) or class name (TypeError, or a class of the plugin's own) says more than a generic code.
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return { code, message };
    // The class's own name only when it reads as one (QuotaError): not a minifier's `e`, nor an esbuild rename (QuotaError2).
    const ctor = err.constructor?.name;
    const name = err.name && err.name !== 'Error' ? err.name : typeof ctor === 'string' && /^[A-Za-z_$][\w$]*Error$/.test(ctor) ? ctor : undefined;
    return { code: typeof name === 'string' && name !== '' && name !== 'Error' ? name : 'HANDLER_ERROR', message };
  }
  let message: string;
  try {
    message = typeof err === 'string' ? err : (JSON.stringify(err) ?? String(err));
  } catch {
    message = String(err);
  }
  return { code: fallback, message: `non-Error thrown: ${message}` };
}
