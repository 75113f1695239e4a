import { z } from 'zod';
import { parseDuration } from './duration.js';
import { type ErrorCode, HostError } from './errors.js';
import { DESTINATION_NAME, NOTIFY_STATUSES, type NotifyStatus, PRIORITIES } from './notification.js';
import type { JobContext, ParamsSchema } from './plugin.js';
import { ISOLATIONS, type Isolation } from './plugin-source.js';
import { assertTimezone, cronPattern } from './schedule-syntax.js';

/**
 * The plugin file's schema (and the parts the config file's `jobs.<name>` overrides share):
 * zod at the boundary, so a bad plugin is refused with a code and a message naming its field.
 */

function checked<T>(code: ErrorCode, parse: (value: unknown) => T) {
  return z.unknown().transform((value, ctx): T => {
    try {
      return parse(value);
    } catch (err) {
      const message = err instanceof HostError ? err.message.replace(/^[\w.]+: /, '') : String(err);
      ctx.addIssue({ code: 'custom', message, params: { code: err instanceof HostError ? err.code : code } });
      return z.NEVER;
    }
  });
}

export type ScheduleSpec = { kind: 'cron'; expr: string } | { kind: 'every'; ms: number; label: string };

export const durationSchema = checked('INVALID_DURATION', (v) => parseDuration(v));

export const scheduleSchema = checked('INVALID_CRON', (v): ScheduleSpec => {
  if (typeof v === 'string') {
    cronPattern(v);
    return { kind: 'cron', expr: v.trim() };
  }
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === 'every') {
      const every = (v as { every: unknown }).every;
      const ms = parseDuration(every, 'schedule.every');
      if (ms < 1000) throw new HostError('INVALID_DURATION', 'schedule.every: must be at least 1s');
      return { kind: 'every', ms, label: typeof every === 'string' ? every : `${ms}ms` };
    }
  }
  throw new HostError('INVALID_CRON', `schedule: expected a cron string or { every: '15m' }, got ${JSON.stringify(v)}`);
});

export const timezoneSchema = checked('INVALID_TIMEZONE', (v) => {
  if (typeof v !== 'string') throw new HostError('INVALID_TIMEZONE', `timezone: expected a string`);
  assertTimezone(v);
  return v;
});

export const retrySchema = z.strictObject({
  attempts: z.number().int().min(1).max(100).optional(),
  backoff: z.enum(['fixed', 'exponential']).optional(),
  delay: durationSchema.optional(),
  maxDelay: durationSchema.optional(),
  jitter: z.number().min(0).max(1).optional(),
});

export const notifySchema = z.strictObject({
  title: z.string().max(1000).optional(),
  message: z.string().max(10_000).optional(),
  customTitle: z.boolean().optional(),
  customMessage: z.boolean().optional(),
  priority: z.enum(PRIORITIES).optional(),
  failurePriority: z.enum(PRIORITIES).optional(),
  tags: z.array(z.string().max(100)).max(50).optional(),
  on: z.array(z.enum(NOTIFY_STATUSES)).optional(),
  // `slow`: a run still running this long after it started.
  slowerThan: durationSchema.optional(),
  // `missed`: a schedule fire that started no run within this (default: one period, at most 1h).
  missedAfter: durationSchema.optional(),
  // Failure notifications only from the N-th consecutive failed run on.
  after: z.number().int().min(1, 'expected 1 or more (failure notifications from the N-th consecutive failed run on)').max(1_000_000).optional(),
  // Destinations (notifications.destinations) each notification of the job goes to, besides the routes that match it.
  to: z.array(z.string().regex(DESTINATION_NAME, 'expected a destination name (letters, digits, _ . -)')).max(50).optional(),
});

/** `rateLimit` (SPEC §13): at most `max` starts per window of `per`; `per` is kept in ms. */
export const rateLimitSchema = z.strictObject({
  max: z.number().int().min(1, 'expected 1 or more (starts per window)').max(1_000_000),
  per: durationSchema.refine((ms) => ms >= 1, 'expected a window of 1ms or more'),
});

/** `debounce` (SPEC §13): the quiet time after the last trigger before the merged run starts. */
export const debounceSchema = durationSchema.refine((ms) => ms >= 1, 'expected a window of 1ms or more');

export interface RateLimit {
  readonly max: number;
  readonly perMs: number;
}

export const queueNameSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/i, 'expected a queue name (letters, digits, - and _)');
export const JOB_NAME = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

/** A job name, or a `*` glob of names (`deploy-*`), as event filters take them. */
export const isJobPattern = (value: string): boolean => (value.includes('*') ? /^[a-z0-9*-]{1,100}$/.test(value) : value.length <= 100 && JOB_NAME.test(value));

/** Why `value` is no job filter (see `isJobPattern`). */
export const notAJobPattern = (value: string): string =>
  `"${value.slice(0, 100)}" is not a job name (kebab-case, such as cleanup-temp-files) or a glob of one (deploy-*)`;
export const eventNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9][\w.:-]*$/, 'expected an event name like shipment.created')
  .max(200);

/** The end statuses an `after` entry waits for: `finished` is any of the three (SPEC §13). */
export const AFTER_STATUSES = ['succeeded', 'failed', 'canceled', 'finished'] as const;
export type AfterStatus = (typeof AFTER_STATUSES)[number];

/** `after: [{ job, status }]` (a job name alone waits for `succeeded`); also `jobs.<name>.after`. */
export const afterSchema = z
  .array(
    z.union([
      z.string().regex(JOB_NAME, 'expected a job name'),
      z.strictObject({ job: z.string().max(100).regex(JOB_NAME, 'expected a kebab-case job name'), status: z.enum(AFTER_STATUSES).optional() }),
    ]),
  )
  .max(100)
  .transform((list) =>
    list.map((a): { job: string; status: AfterStatus } =>
      typeof a === 'string' ? { job: a, status: 'succeeded' } : { job: a.job, status: a.status ?? 'succeeded' },
    ),
  );

export type AfterSpec = z.output<typeof afterSchema>;

function isParamsSchema(v: unknown): v is ParamsSchema {
  if (typeof v !== 'object' || v === null) return false;
  const std = (v as { '~standard'?: { validate?: unknown } })['~standard'];
  return typeof std === 'object' && std !== null && typeof std.validate === 'function';
}

const pluginSchema = z.strictObject({
  name: z.string().max(100).regex(JOB_NAME, 'expected a kebab-case name like cleanup-temp-files'),
  description: z.string().max(2000).optional(),
  schedule: scheduleSchema.optional(),
  timezone: timezoneSchema.optional(),
  params: z.custom<ParamsSchema>(isParamsSchema, 'expected a zod schema (or any Standard Schema)').optional(),
  on: z.array(z.union([eventNameSchema, z.strictObject({ event: eventNameSchema, delay: durationSchema.optional() })])).optional(),
  retry: retrySchema.optional(),
  timeout: durationSchema.optional(),
  cooldown: durationSchema.optional(),
  once: z.boolean().optional(),
  overlap: z.enum(['skip', 'queue', 'allow']).optional(),
  concurrency: z.number().int().min(1).max(10_000).optional(),
  queue: queueNameSchema.optional(),
  catchUp: z.boolean().optional(),
  after: afterSchema.optional(),
  enabled: z.boolean().optional(),
  isolation: z.enum(ISOLATIONS).optional(),
  notify: notifySchema.optional(),
  rateLimit: rateLimitSchema.optional(),
  debounce: debounceSchema.optional(),
  handler: z.custom<(ctx: JobContext<never>) => unknown>((v) => typeof v === 'function', 'expected a function'),
});

export type NotifySpec = z.output<typeof notifySchema>;

const DEFAULT_ON: readonly NotifyStatus[] = ['succeeded', 'failed'];

/** Whether the job's `notify.on` asks for `status`. */
export function wants(spec: NotifySpec, status: NotifyStatus): boolean {
  return (spec.on ?? DEFAULT_ON).includes(status);
}

/**
 * Whether a run's end with `outcome` may be told under `spec` (SPEC §12): `always`, or only when
 * a success ends a failure streak of `after` or more (`recovery`: `recovered` is all it can tell), or `never`. In
 * cluster mode an end that may be told is marked in the write that ends it, until it is told.
 */
export function tellsEnd(spec: NotifySpec | null | undefined, outcome: 'succeeded' | 'failed' | 'canceled'): 'always' | 'recovery' | 'never' {
  if (!spec) return 'never';
  if (wants(spec, outcome)) return 'always';
  return outcome === 'succeeded' && wants(spec, 'failed') && wants(spec, 'recovered') ? 'recovery' : 'never';
}

/** A plugin after validation: durations in ms, schedule parsed; what the host registers. */
export interface JobSpec {
  readonly name: string;
  readonly description: string;
  readonly schedule: ScheduleSpec | null;
  readonly timezone: string | undefined;
  readonly params: ParamsSchema | null;
  readonly on: ReadonlyArray<{ event: string; delayMs: number }>;
  readonly retry: Partial<z.output<typeof retrySchema>>;
  readonly timeoutMs: number | undefined;
  readonly cooldownMs: number;
  readonly once: boolean;
  readonly overlap: 'skip' | 'queue' | 'allow';
  readonly concurrency: number;
  readonly queue: string;
  readonly catchUp: boolean;
  /** The runs whose end triggers this job (SPEC §13); empty for none. */
  readonly after: AfterSpec;
  readonly enabled: boolean;
  /** As declared; undefined leaves it to the config (default `worker`). */
  readonly isolation: Isolation | undefined;
  readonly notify: NotifySpec | null;
  readonly rateLimit: RateLimit | undefined;
  /** 0: no debounce. */
  readonly debounceMs: number;
  readonly handler: (ctx: JobContext<never>) => unknown;
}

/** `field: message` for the first issue of a zod error, with the path joined by dots. */
function describeIssue(err: z.ZodError, prefix = ''): { path: string; message: string; code: ErrorCode | undefined } {
  const first = err.issues[0];
  return first ? describeOne(first, prefix) : { path: prefix, message: 'invalid', code: undefined };
}

/** `describeIssue` for every issue of the error, in zod's order. */
export function describeIssues(err: z.ZodError, prefix = ''): Array<{ path: string; message: string; code: ErrorCode | undefined }> {
  return err.issues.map((issue) => describeOne(issue, prefix));
}

function describeOne(first: z.core.$ZodIssue, prefix: string): { path: string; message: string; code: ErrorCode | undefined } {
  let issue = first;
  let segments = issue.path.map(String);
  // A union reports every branch; the telling one is the branch that got furthest (a custom
  // check, or a nested path), not "expected null" from a branch that never applied.
  while (issue.code === 'invalid_union' && issue.errors.length > 0) {
    const score = (branch: z.core.$ZodIssue[]): number =>
      (branch[0]?.code === 'custom' ? 100 : 0) + (branch[0]?.path.length ?? 0) + (branch[0]?.code === 'invalid_type' && branch[0].path.length === 0 ? -10 : 0);
    const best: z.core.$ZodIssue[] = [...issue.errors].sort((a, b) => score(b) - score(a))[0]!;
    const inner: z.core.$ZodIssue | undefined = best[0];
    if (!inner) break;
    segments = [...segments, ...inner.path.map(String)];
    issue = inner;
  }
  // A record's key refused ("Invalid key in record"): the key's own check says why; the path ends at the key.
  if (issue.code === 'invalid_key' && issue.issues[0]) issue = issue.issues[0];
  const path = [prefix, ...segments].filter((p) => p !== '').join('.');
  const code = (issue as { params?: { code?: ErrorCode } }).params?.code;
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
  return { path: path || '(root)', message, code };
}

/** Validates a plugin object; throws a HostError naming the field (`schedule: invalid cron "61 * * * *" ...`). */
export function parsePlugin(input: unknown): JobSpec {
  if (typeof input !== 'object' || input === null) {
    throw new HostError('PLUGIN_INVALID', `plugin: expected an object (definePlugin({...})), got ${input === null ? 'null' : typeof input}`);
  }
  const parsed = pluginSchema.safeParse(input);
  if (!parsed.success) {
    const { path, message, code } = describeIssue(parsed.error);
    const name = (input as { name?: unknown }).name;
    throw new HostError(code ?? 'PLUGIN_INVALID', `${path}: ${message}`, { field: path, job: typeof name === 'string' ? name : null });
  }
  const p = parsed.data;
  return Object.freeze({
    name: p.name,
    description: p.description ?? '',
    schedule: p.schedule ?? null,
    timezone: p.timezone,
    params: p.params ?? null,
    on: Object.freeze((p.on ?? []).map((o) => (typeof o === 'string' ? { event: o, delayMs: 0 } : { event: o.event, delayMs: o.delay ?? 0 }))),
    retry: Object.freeze({ ...p.retry }),
    timeoutMs: p.timeout,
    cooldownMs: p.cooldown ?? 0,
    once: p.once ?? false,
    overlap: p.overlap ?? 'allow',
    concurrency: p.concurrency ?? 1,
    queue: p.queue ?? 'default',
    catchUp: p.catchUp ?? false,
    after: p.after ?? [],
    enabled: p.enabled ?? true,
    isolation: p.isolation,
    notify: p.notify ? Object.freeze({ ...p.notify }) : null,
    rateLimit: p.rateLimit && Object.freeze({ max: p.rateLimit.max, perMs: p.rateLimit.per }),
    debounceMs: p.debounce ?? 0,
    handler: p.handler,
  });
}
