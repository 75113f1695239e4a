import { z } from 'zod';
import { ERROR_CODES } from '../contract/errors.js';
import { isEventPattern } from '../contract/events.js';
import { isJobPattern, notAJobPattern } from '../contract/plugin-schema.js';
import { RUN_SOURCES } from '../contract/run.js';
import { damageReport } from '../contract/store-health.js';

/**
 * The zod schemas of the HTTP API (SPEC §6): each one validates a request (through the type
 * provider), types the handler, and becomes the route's part of `GET /openapi.json`.
 * Responses are documented and typed here; they are written with JSON.stringify (see server.ts).
 */

const runStatus = z.enum(['queued', 'running', 'succeeded', 'failed', 'canceled']);
const runSource = z.enum(RUN_SOURCES);
const skipReason = z.enum(['disabled', 'overlap', 'cooldown', 'once', 'duplicate', 'queue-full', 'invalid-params']);
export const iso = z.string().describe('ISO 8601 time');
const runError = z.object({ code: z.string(), message: z.string() });

/** A path segment: bounded, and never used as a file path (SPEC §7). */
export const segment = z.string().min(1).max(200);

export const jobParams = z.strictObject({ name: segment.describe('job name') });
export const runParams = z.strictObject({ id: segment.describe('run id') });
export const eventParams = z.strictObject({ type: segment.describe('app event name, e.g. shipment.created') });

/**
 * What a route that declares no body or query string checks (server.ts adds them): unknown keys
 * are refused there as on every other route. No body, an empty JSON body or `null` is no body.
 */
export const noBody = z.strictObject({}).nullish();
export const noQuery = z.strictObject({});

export const triggerBody = z
  .strictObject({
    params: z.unknown().optional().describe("the job's params, checked against its schema"),
    delay: z
      .union([z.number().int().min(0), z.string().max(50)])
      .optional()
      .describe("ms, or a duration like '30s'"),
    runAt: z
      .union([z.string().max(100), z.number().min(0)])
      .optional()
      .describe('an ISO 8601 time (2026-01-05T12:00:00Z), or ms since the epoch'),
    key: z.string().min(1).max(500).optional().describe('dedup key: refused while a run holds the same key'),
    priority: z.number().int().min(-1_000_000).max(1_000_000).optional().describe('lower runs first (default 0)'),
  })
  .nullish();

/**
 * A whole number in a query string: decimal digits, given once (`0x10`, `1e2` or a repeated key
 * are refused, with a message that says so, rather than read as a number or as NaN).
 */
export const queryInt = (min: number, max: number) =>
  z
    .string({ error: (issue) => (Array.isArray(issue.input) ? 'given more than once' : undefined) })
    .regex(/^\d{1,15}$/, 'expected a whole number in decimal digits')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const limit = (max: number): z.ZodType<number | undefined, string | undefined> => queryInt(1, max).optional();

export const runsQuery = z.strictObject({
  job: segment.optional(),
  status: runStatus.optional(),
  limit: limit(1000).describe('page size (default 50)'),
  before: segment.optional().describe('cursor: the `next` of the previous page'),
});

export const notificationsQuery = z.strictObject({
  job: segment.optional(),
  limit: limit(1000).describe('page size (default 50)'),
  before: segment.optional().describe('cursor: the `next` of the previous page'),
});

/** `?job=a&job=b`: one value or many, always an array inside. */
const repeatable = z
  .union([z.string().max(200), z.array(z.string().max(200)).max(100)])
  .optional()
  .transform((v) => (v === undefined ? undefined : Array.isArray(v) ? v : [v]));

export const eventsQuery = z.strictObject({
  job: repeatable
    .superRefine((jobs, ctx) => {
      for (const j of jobs ?? []) {
        if (!isJobPattern(j)) ctx.addIssue({ code: 'custom', message: notAJobPattern(j) });
      }
    })
    .describe('only events of these jobs; `deploy-*` globs (repeatable)'),
  run: repeatable
    .superRefine((runs, ctx) => {
      for (const r of runs ?? []) if (r === '' || r.length > 100) ctx.addIssue({ code: 'custom', message: 'expected a run id' });
    })
    .describe('only events of these runs (repeatable)'),
  type: repeatable
    .superRefine((types, ctx) => {
      for (const t of types ?? []) {
        if (!isEventPattern(t))
          ctx.addIssue({ code: 'custom', message: `unknown event type "${t}" (an event type such as run.failed, or a glob such as run.*)` });
      }
    })
    .describe('only these event types; `run.*` globs (repeatable)'),
  logs: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => v === 'true' || v === '1')
    .describe('also `run.log` events (log lines), which are left out unless asked for (here, or `type=run.log`)'),
  since: queryInt(0, Number.MAX_SAFE_INTEGER).optional().describe('replay buffered events after this seq first'),
  boot: z
    .string()
    .regex(/^[0-9a-f]{1,64}$/, 'expected the `boot` of an earlier hello')
    .optional()
    .describe('the `boot` of the hello `since` counts in: after a restart (another boot) everything buffered is replayed, with `gap: true`'),
  token: z.string().max(1000).optional().describe('the API token, for clients that cannot set headers'),
});

export const errorResponse = z
  .looseObject({
    statusCode: z.number().int(),
    code: z.enum(Object.keys(ERROR_CODES) as [keyof typeof ERROR_CODES, ...Array<keyof typeof ERROR_CODES>]),
    error: z.string(),
    message: z.string(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    reason: skipReason.optional(),
  })
  .describe('An error: a stable code from the table in the README');

export const runSchema = z.object({
  id: z.string(),
  job: z.string(),
  status: runStatus,
  source: runSource,
  params: z.unknown(),
  priority: z.number(),
  key: z.string().nullable(),
  queue: z.string(),
  createdAt: iso,
  runAt: iso,
  startedAt: iso.nullable(),
  endedAt: iso.nullable(),
  durationMs: z.number().nullable(),
  progress: z.object({ fraction: z.number(), text: z.string().nullable() }),
  attempts: z.array(z.object({ n: z.number(), startedAt: iso, endedAt: iso.nullable(), error: runError.nullable() })),
  maxAttempts: z.number(),
  result: z.unknown(),
  error: runError.nullable(),
  retryOf: z.string().nullable(),
  event: z.string().nullable(),
  after: z
    .object({ runId: z.string(), job: z.string() })
    .optional()
    .describe("for a run created by the end of another (source `after`): that run's id and job"),
  origin: runSource.optional(),
  host: z.string().nullable().optional().describe('the id of the host that ran (or runs) it; null before it started'),
  traceId: z.string().optional().describe('the trace the run belongs to, when tracing is set up (OpenTelemetry)'),
  traceparent: z.string().optional().describe("the W3C traceparent of the run's span; each attempt's span is its child"),
});

const lastRun = z.object({ runId: z.string(), status: runStatus, at: iso }).nullable();

export const jobSchema = z.object({
  name: z.string(),
  description: z.string(),
  schedule: z.string().nullable(),
  scheduleText: z.string().nullable().describe('the schedule in words, e.g. "At 07:00" or "Every 15 minutes"'),
  timezone: z.string(),
  enabled: z.boolean(),
  paused: z.boolean().describe('its runs are held (SPEC §13): the job or its queue is paused; triggers are still recorded and wait'),
  pause: z.object({ job: z.boolean().describe('the job itself is paused'), queue: z.boolean().describe('its queue is paused') }),
  file: z.string().nullable(),
  nextRun: iso.nullable(),
  lastRun,
  lastSuccessAt: iso.nullable(),
  counts: z.object({ succeeded: z.number(), failed: z.number(), canceled: z.number(), queued: z.number(), running: z.number() }),
  paramsSchema: z.unknown().describe('JSON Schema of the params (zod params only), or null'),
  paramDefaults: z.record(z.string(), z.unknown()),
  queue: z.string(),
  concurrency: z.number(),
  overlap: z.enum(['skip', 'queue', 'allow']),
  retry: z.object({ attempts: z.number(), backoff: z.string(), delayMs: z.number(), maxDelayMs: z.number(), jitter: z.number() }),
  timeoutMs: z.number(),
  cooldownMs: z.number(),
  once: z.boolean(),
  catchUp: z.boolean(),
  isolation: z.enum(['worker', 'inline']).describe("where the handler runs: a worker thread, or the host's main thread"),
  on: z.array(z.object({ event: z.string(), delayMs: z.number() })),
  notify: z.unknown(),
  rateLimit: z
    .object({ max: z.number(), perMs: z.number(), waiting: z.number().describe('waiting runs the limit holds back now') })
    .nullable()
    .describe('at most max starts per window of perMs (SPEC §13); null: none'),
  debounceMs: z.number().nullable().describe('triggers within this quiet time become one run; null: none'),
  after: z
    .array(z.object({ job: z.string(), status: z.enum(['succeeded', 'failed', 'canceled', 'finished']) }))
    .describe('a run of this job is triggered when a run of `job` ends with `status` (SPEC §13)'),
  alert: z
    .object({
      failStreak: z.number().describe('failed runs since the last success'),
      open: z.boolean().describe('a notified failure streak not yet recovered'),
      lastRecoveredStreak: z.number(),
      missedThrough: iso.nullable().describe('the latest schedule fire the missed rule accounted for'),
    })
    .describe('where its alert rules stand'),
});

/** `{ items, next? }`: `next` is the cursor for `before`. */
export const page = <T extends z.ZodType>(item: T): z.ZodObject<{ items: z.ZodArray<T>; next: z.ZodOptional<z.ZodString> }> =>
  z.object({ items: z.array(item), next: z.string().optional() });

export const triggerResponse = z.object({ runId: z.string() });

export const publishResponse = z.object({
  enqueued: z.array(z.string()).describe('ids of the runs created'),
  skipped: z.array(z.object({ job: z.string(), reason: skipReason })),
  errors: z.array(z.object({ job: z.string(), code: z.string(), message: z.string() })),
  excluded: z.array(z.string()).optional().describe("jobs listening to the event that the token's `jobs` leave out: not triggered"),
});

const hostState = z.enum(['created', 'starting', 'running', 'stopping', 'stopped']);

export const healthResponse = z.object({ status: z.literal('ok'), state: hostState, uptimeMs: z.number() });

export const readyResponse = z.object({
  ready: z.boolean(),
  status: z.enum(['ready', 'starting', 'stopping', 'degraded']),
  state: hostState,
  scheduler: z.object({ running: z.boolean(), scheduledJobs: z.number() }),
  jobs: z.object({ total: z.number(), enabled: z.number(), running: z.number() }),
  stale: z.array(z.object({ job: z.string(), schedule: z.string(), periodMs: z.number(), lastSuccessAt: iso.nullable() })),
  paused: z
    .object({ jobs: z.array(z.string()), queues: z.array(z.string()) })
    .describe('jobs and queues paused (SPEC §13): their runs wait; not a reason for 503'),
  store: z.object({
    writable: z.boolean().describe('false while the store cannot write (a full disk): triggers get 503 and /ready is 503'),
    error: z.object({ code: z.string(), message: z.string(), since: iso, retryAfter: z.number() }).nullable(),
  }),
  eventLoop: z
    .object({
      p50Ms: z.number(),
      p99Ms: z.number(),
      maxMs: z.number(),
      maxDelayMs: z.number().describe('the bound (config eventLoop.maxDelay; 0 = none)'),
      slow: z.boolean().describe("true while the main thread's event-loop delay p99 has stayed above the bound: the host is degraded"),
    })
    .describe("the main thread's event-loop delay over the last window (1 s)"),
  backend: z
    .object({
      kind: z.enum(['local', 'redis']),
      available: z.boolean(),
      target: z.string().nullable().describe('redis://host:port (never with credentials); null for the local backend'),
      error: z.string().nullable(),
      since: iso.nullable(),
    })
    .describe('whether the backend can be reached: Redis down means 503 here and for triggers'),
  warnings: z
    .array(
      z.union([
        damageReport.extend({ code: z.literal('STORE_DAMAGED'), message: z.string() }),
        z.object({ code: z.literal('CLUSTER_DRIFT'), message: z.string(), job: z.string(), hosts: z.array(z.string()) }),
        z.object({ code: z.enum(['DISPATCH_STALLED', 'SCHEDULER_STALLED', 'EVENTS_LOST', 'REDIS_MAXMEMORY_POLICY']), message: z.string() }),
      ]),
    )
    .describe(
      'store damage found and not yet acknowledged (`jobhost store ack-damage`), jobs whose definition differs between live hosts (cluster mode), the stall watchdog: runs waiting with free capacity past notifications.stallAfter, or a schedule more than one period overdue, events of other hosts lost in the last 10 minutes (cluster mode: this host fell behind the cluster stream), and (cluster mode) a Redis whose maxmemory-policy is not noeviction; none is a reason for 503',
    ),
});

const clusterHost = z.object({
  id: z.string(),
  url: z.string().nullable(),
  startedAt: iso,
  lastSeen: iso.describe('when the host last announced itself (every second; it drops out after 5 s of silence)'),
  running: z.number().describe('runs running on it now'),
  jobs: z.array(z.object({ name: z.string(), version: z.string().describe('a hash of its definition there') })),
  destinations: z
    .array(z.string())
    .optional()
    .describe('the notification destinations its config names: a delivery is made by a host that has its destination'),
});

export const clusterResponse = z.object({
  backend: z.enum(['local', 'redis']),
  self: z.string().describe("this host's id"),
  hosts: z.array(clusterHost),
  drift: z
    .array(z.object({ job: z.string(), hosts: z.array(z.string()), versions: z.record(z.string(), z.string()) }))
    .describe('jobs loaded on several live hosts with different definitions'),
});

export const damageList = z.object({
  items: z.array(damageReport.extend({ message: z.string().describe('the file, the lines, what was lost, where the copy is') })),
});

export const ackDamageBody = z
  .strictObject({ ids: z.array(z.string().min(1).max(100)).max(1000).optional().describe('the reports to acknowledge; all when absent') })
  .nullish();

export const ackDamageResponse = z.object({
  acknowledged: z.array(damageReport),
  unknown: z.array(z.string()).describe('ids given that name no report'),
  remaining: z.number().describe('reports still unacknowledged'),
});

const perJob = z.object({
  count: z.number(),
  succeeded: z.number(),
  failed: z.number(),
  canceled: z.number(),
  successRate: z.number().nullable(),
  p50Ms: z.number().nullable(),
  p95Ms: z.number().nullable(),
  lastRun,
});

export const statsResponse = z.object({
  state: hostState,
  totals: z.object({
    runs: z.number(),
    succeeded: z.number(),
    failed: z.number(),
    canceled: z.number(),
    queued: z.number(),
    delayed: z.number(),
    running: z.number(),
  }),
  successRate: z.number().nullable(),
  jobs: z.object({ total: z.number(), enabled: z.number(), running: z.number(), scheduled: z.number() }),
  perJob: z.record(z.string(), perJob),
  queues: z.record(z.string(), z.number()),
  store: z.object({ liveRuns: z.number(), historyRuns: z.number(), segments: z.number(), commits: z.number() }),
  events: z.object({ seq: z.number() }),
});

/** The errors a route may answer with, for the OpenAPI document. */
export function errors(...statuses: number[]): Record<number, typeof errorResponse> {
  return Object.fromEntries(statuses.map((s) => [s, errorResponse]));
}

export const seriesQuery = z.strictObject({
  window: z.enum(['1h', '24h', '7d']).default('1h').describe('1h: 1-minute buckets; 24h: 15-minute buckets; 7d: 2-hour buckets'),
  job: segment.optional().describe('one job; the whole host without it'),
});

export const seriesResponse = z.object({
  window: z.enum(['1h', '24h', '7d']),
  job: z.string().nullable(),
  bucketMs: z.number(),
  from: iso,
  to: iso,
  watchingSince: iso.describe('buckets before this come from history read back at start, without the backlog'),
  buckets: z.array(
    z.object({
      start: iso,
      succeeded: z.number(),
      failed: z.number(),
      canceled: z.number(),
      p50Ms: z.number().nullable().describe('duration of succeeded and failed runs, within 2%'),
      p95Ms: z.number().nullable(),
      queued: z.number().nullable().describe('runs waiting (queued or delayed) at the end of the bucket'),
    }),
  ),
});

const logLine = z.object({
  attempt: z.number(),
  i: z.number().describe('1-based within the attempt'),
  at: iso,
  level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']),
  msg: z.string(),
  fields: z.record(z.string(), z.unknown()).optional(),
});

export const runLogResponse = z.object({
  runId: z.string(),
  job: z.string(),
  status: runStatus,
  traceId: z.string().nullable().describe("the run's trace (SPEC §15): every line was written inside it; null when nothing traces"),
  lines: z.array(logLine).describe('oldest first: the last 500 lines or 256 KiB, whichever is smaller'),
  dropped: z.number().describe('earlier lines cut by that bound'),
  note: z.string().nullable().describe('says so when lines were cut'),
});

const time = z.iso.datetime({ offset: true }).describe('ISO 8601 time');

export const bulkBody = z
  .strictObject({
    job: segment.optional().describe('one job; every job without it'),
    from: time.optional().describe('retry: runs that ended at or after this; cancel: runs created at or after this'),
    to: time.optional().describe('the same, at or before (default now; the answer says which it used)'),
    dryRun: z.boolean().optional().describe('count and list the runs, touch nothing'),
  })
  .refine((b) => b.from === undefined || b.to === undefined || Date.parse(b.from) <= Date.parse(b.to), { message: 'from is after to', path: ['from'] })
  .nullish();

export const bulkResponse = z.object({
  action: z.enum(['retry', 'cancel']),
  dryRun: z.boolean(),
  job: z.string().nullable(),
  from: iso.nullable(),
  to: iso,
  matched: z.number().describe('runs the filter matched (at most 10,000)'),
  touched: z.number().describe('runs retried or canceled'),
  runs: z.array(z.object({ runId: z.string(), job: z.string(), newRunId: z.string().optional() })),
  errors: z.array(z.object({ runId: z.string(), job: z.string(), code: z.string(), message: z.string() })),
  truncated: z.boolean().describe('more runs matched than one action takes'),
  excluded: z
    .object({ runs: z.number(), jobs: z.array(z.string()) })
    .optional()
    .describe("runs the filter matched that the token's `jobs` leave out, and their jobs: not touched"),
});
