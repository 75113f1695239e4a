import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { checkTokens, sendableToken, tokenEntrySchema } from './access.js';
import { type ErrorCode, HostError } from './errors.js';
import { notificationsSchema } from './notify-config.js';
import {
  afterSchema,
  debounceSchema,
  describeIssues,
  durationSchema,
  JOB_NAME,
  notifySchema,
  queueNameSchema,
  rateLimitSchema,
  retrySchema,
  scheduleSchema,
  timezoneSchema,
} from './plugin-schema.js';
import { ISOLATIONS } from './plugin-source.js';

/** `jobs.<name>`: what the config file may override of a plugin's declaration (SPEC §3). */
export const jobOverrideSchema = z.strictObject({
  schedule: z.union([z.null(), scheduleSchema]).optional(),
  timezone: timezoneSchema.optional(),
  enabled: z.boolean().optional(),
  params: z.record(z.string(), z.unknown()).optional(),
  retry: retrySchema.optional(),
  timeout: durationSchema.optional(),
  cooldown: durationSchema.optional(),
  queue: queueNameSchema.optional(),
  isolation: z.enum(ISOLATIONS).optional(),
  notify: notifySchema.optional(),
  after: afterSchema.optional(),
  // null turns the plugin's own off.
  rateLimit: z.union([z.null(), rateLimitSchema]).optional(),
  debounce: z.union([z.null(), debounceSchema]).optional(),
});

export type JobOverride = z.output<typeof jobOverrideSchema>;

const port = z.number().int().min(0).max(65_535);

/** A size limit in bytes (of JSON text, UTF-8): 1 KiB to 1 GiB. */
const bytes = z
  .number()
  .int()
  .min(1024)
  .max(1024 * 1024 * 1024);

// A Host header or an allowedHosts entry: a name or an IPv4 address, or an IPv6 one in brackets,
// and an optional port. Underscores appear in container and compose service names.
const HOST_PATTERN = /^(\[[0-9a-f:.]+\]|[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?)(?::(\d{1,5}))?$/i;

/** `name[:port]` split and lowercased; null when the value is not a host. */
export function parseHost(value: string): { name: string; port: string | null } | null {
  const match = HOST_PATTERN.exec(value.trim());
  if (!match || Number(match[2] ?? 0) > 65_535) return null;
  return { name: match[1]!.toLowerCase(), port: match[2] ?? null };
}

/** The origin (`https://jobs.example.com`) an allowedOrigins entry names, or null when it names none. */
export function canonicalOrigin(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  // An origin is scheme, host and port: a path, query or credentials mean the entry is something else.
  if (url.username || url.password || url.search || url.hash || url.pathname !== '/') return null;
  return url.origin;
}

/** `server.allowedOrigins` entry, kept in the form browsers send: `https://jobs.example.com`. */
const originEntry = z.string().transform((value, ctx) => {
  const origin = canonicalOrigin(value);
  if (origin === null) {
    ctx.addIssue({
      code: 'custom',
      message: `expected an origin such as https://jobs.example.com (scheme, host, optional port; no path), got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return origin;
});

/** `server.allowedHosts` entry: a name (any port) or `name:port`, lowercased. */
const hostEntry = z.string().transform((value, ctx) => {
  const parsed = parseHost(value);
  if (parsed === null) {
    ctx.addIssue({ code: 'custom', message: `expected a host name such as jobs.example.com, optionally with :port, got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return parsed.port === null ? parsed.name : `${parsed.name}:${Number(parsed.port)}`;
});

/** `backend.url`: a redis:// or rediss:// URL (credentials allowed: they are never logged or shown). */
const redisUrl = z.string().refine(
  (value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== '' && (url.pathname === '' || /^\/\d{0,2}$/.test(url.pathname));
    } catch {
      return false;
    }
  },
  { message: 'expected a Redis URL such as redis://127.0.0.1:6379 (or rediss:// for TLS; a database number as the path: redis://host:6379/2)' },
);

/**
 * `backend`: where runs wait and are recorded (SPEC §11). `local` is the JSON store of `store`;
 * `redis` is cluster mode, runs as BullMQ jobs on one Redis shared by every host.
 */
export const backendSchema = z
  .discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('local') }),
    z.strictObject({
      kind: z.literal('redis'),
      url: redisUrl.default('redis://127.0.0.1:6379'),
      // Every key jobhost and BullMQ write starts with it: several clusters can share one Redis.
      prefix: z
        .string()
        .regex(/^[A-Za-z0-9_.{}-]{1,64}$/, 'expected 1 to 64 letters, digits, _ . - { }')
        .default('jobhost'),
      // How long a running run's lock lives without renewal: a host killed mid-run gives its runs
      // up after at most this (plus one stalledInterval). The same on every host (checked at start).
      lockDuration: durationSchema.default(30_000),
      stalledInterval: durationSchema.default(30_000),
      // Entries the cluster event stream keeps (about): a host cut off or stalled for longer than
      // the other hosts take to write this many loses the oldest of their events (events.gap).
      streamLength: z.number().int().min(10).max(10_000_000).default(50_000),
      // A request's Redis command that gets no answer within this fails (503), and a connection
      // that hears nothing back for about this long is dropped and made again (a black-holed network).
      commandTimeout: durationSchema.refine((ms) => ms > 0, 'expected more than 0').default(10_000),
      // High availability: the master is found through Redis Sentinel (`url` then gives only the
      // scheme, credentials and database; its host and port are not used).
      sentinels: z
        .array(z.strictObject({ host: z.string().min(1), port: port.min(1) }))
        .min(1)
        .optional(),
      name: z.string().min(1).optional(),
      // Credentials of the Sentinels themselves (`requirepass` / an ACL user in their conf).
      sentinelUsername: z.string().min(1).optional(),
      sentinelPassword: z.string().min(1).optional(),
      // rediss:// only: files read at start (a private CA; a client certificate and its key).
      tls: z
        .strictObject({ ca: z.string().min(1).optional(), cert: z.string().min(1).optional(), key: z.string().min(1).optional() })
        .refine((tls) => (tls.cert === undefined) === (tls.key === undefined), { message: 'cert and key go together' })
        .optional(),
      // An acknowledgement (202 and the like) waits until this many replicas have the write (Redis WAIT).
      waitReplicas: z.number().int().min(0).max(32).default(0),
      waitTimeout: durationSchema.default(1000),
    }),
  ])
  .superRefine((backend, ctx) => {
    if (backend.kind !== 'redis') return;
    if ((backend.sentinels === undefined) !== (backend.name === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [backend.name === undefined ? 'name' : 'sentinels'],
        message: 'sentinels and name (the master name Sentinel monitors) go together',
      });
    }
    if (backend.tls !== undefined && !backend.url.startsWith('rediss:')) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'TLS needs a rediss:// url' });
    }
  })
  .default({ kind: 'local' });

export type BackendConfig = z.output<typeof backendSchema>;
export type RedisBackendConfig = Extract<BackendConfig, { kind: 'redis' }>;

/** The config file's schema. Every key has a default, so `{}` is a valid config. */
export const configSchema = z.strictObject({
  server: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: port.default(3000),
      token: z
        .string()
        .min(8, 'a token needs at least 8 characters')
        .refine(...sendableToken)
        .nullable()
        .default(null),
      // Named tokens with roles (SPEC §14), beside or instead of `token` (which is `admin`).
      tokens: z.array(tokenEntrySchema).max(1000).default([]),
      bodyLimit: z
        .number()
        .int()
        .min(1024)
        .max(100 * 1024 * 1024)
        .default(1024 * 1024),
      // Web pages allowed to use the API besides the host's own origin (a reverse proxy's public origin).
      allowedOrigins: z.array(originEntry).default([]),
      // Host names served on a loopback bind besides loopback ones (a reverse proxy that keeps Host).
      allowedHosts: z.array(hostEntry).default([]),
      // Where people reach this host (a reverse proxy's URL): notifications link to their run under it.
      publicUrl: z
        .url({ protocol: /^https?$/, message: 'expected an http:// or https:// URL' })
        .transform((v) => v.replace(/\/+$/, ''))
        .nullable()
        .default(null),
    })
    .superRefine((server, ctx) => {
      for (const issue of checkTokens(server.token, server.tokens)) ctx.addIssue({ code: 'custom', ...issue });
    })
    .prefault({}),
  store: z
    .strictObject({
      dir: z.string().min(1).default('data'),
      keepRuns: z.number().int().min(1).default(1000),
      keepDays: z.number().min(0).default(30),
      fsync: z.boolean().default(true),
    })
    .prefault({}),
  plugins: z
    .strictObject({
      dir: z.string().min(1).default('plugins'),
      watch: z.boolean().default(true),
      importTimeout: durationSchema.default(10_000),
    })
    .prefault({}),
  defaults: z
    .strictObject({
      timezone: timezoneSchema.default('UTC'),
      timeout: durationSchema.default(5 * 60_000),
      isolation: z.enum(ISOLATIONS).default('worker'),
    })
    .prefault({}),
  // The pool of worker threads handlers run in (isolation: 'worker').
  workers: z
    .strictObject({
      size: z
        .number()
        .int()
        .min(1)
        .max(256)
        .default(() => availableParallelism()),
      // Threads at most, when every thread is held by a handler on the CPU (null: twice size).
      max: z.number().int().min(1).max(512).nullable().default(null),
      // After a handler's signal is aborted (timeout, cancel, shutdown), how long it may take to settle before its worker is terminated.
      grace: durationSchema.default(5_000),
      // Old-generation heap limit of each worker (resourceLimits.maxOldGenerationSizeMb); past it the attempt fails with OUT_OF_MEMORY.
      maxMemoryMb: z.number().int().min(16).max(1_048_576).default(1024),
      // Scheduling priority of the threads (Linux nice, 0–19): handlers yield the CPU to the API and the scheduler.
      nice: z.number().int().min(0).max(19).default(10),
    })
    .prefault({}),
  // The main thread's event loop: /ready is degraded while its delay stays above maxDelay (0 = never).
  eventLoop: z.strictObject({ maxDelay: durationSchema.default(500) }).prefault({}),
  concurrency: z.number().int().min(1).max(100_000).default(8),
  queues: z.record(queueNameSchema, z.number().int().min(1).max(1000)).default({ critical: 6, default: 2, low: 1 }),
  // A stop ends grace + margin after it began, whatever part still hangs (engine/shutdown.ts).
  shutdown: z.strictObject({ grace: durationSchema.default(30_000), margin: durationSchema.default(30_000) }).prefault({}),
  events: z
    .strictObject({
      buffer: z.number().int().min(100).max(1_000_000).default(10_000),
      // The replay buffer's bound in bytes (an estimate of the events' JSON size): results make events large.
      bufferBytes: z
        .number()
        .int()
        .min(64 * 1024)
        .max(4 * 1024 * 1024 * 1024)
        .default(16 * 1024 * 1024),
    })
    .prefault({}),
  // What a client or a plugin may hand the host (SPEC §3): nothing it sends grows memory without bound.
  limits: z
    .strictObject({
      maxParamsBytes: bytes.default(256 * 1024),
      maxResultBytes: bytes.default(1024 * 1024),
      maxEventBytes: bytes.default(256 * 1024),
      maxQueued: z.number().int().min(1).max(100_000_000).default(100_000),
    })
    .prefault({}),
  backend: backendSchema,
  notifications: notificationsSchema,
  // `cluster.id` names this host in runs (`host`) and in the cluster; default `<hostname>:<pid>`.
  cluster: z.strictObject({ id: z.string().min(1).max(200).optional() }).prefault({}),
  jobs: z.record(z.string().regex(JOB_NAME, 'expected a kebab-case job name'), jobOverrideSchema).default({}),
});

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

const PARSED = Symbol('jobhost.config');

interface ConfigIssue {
  path: string;
  message: string;
  code: ErrorCode | undefined;
}

/**
 * The error for a config with problems: its message and code are the first one's (`jobs.x.schedule:
 * ...`), `details.issues` lists every one, so `jobhost validate` reports them all at once.
 */
function configError(problems: ConfigIssue[]): HostError {
  const [first] = problems as [ConfigIssue];
  const issues = problems.map((p) => ({ path: p.path, code: p.code ?? 'CONFIG_INVALID', message: p.message }));
  return new HostError(first.code ?? 'CONFIG_INVALID', `${first.path}: ${first.message}`, { path: first.path, issues });
}

/**
 * Validates a config object into a frozen, fully defaulted Config (a Config passes through;
 * `undefined`, no config given, is the defaults).
 * Throws CONFIG_INVALID (or the field's own code) with a message naming the path: `jobs.x.schedule: ...`.
 */
export function parseConfig(input: unknown): Config {
  if (typeof input === 'object' && input !== null && PARSED in input) return input as unknown as Config;
  // Only undefined: `null` is what a file says (JSON has no undefined), and is no object, as `[]` is not.
  const parsed = configSchema.safeParse(input === undefined ? {} : input);
  if (!parsed.success) throw configError(describeIssues(parsed.error));
  const config = parsed.data;
  // The default queue always exists: plugins that name no queue land there.
  if (config.queues['default'] === undefined) config.queues['default'] = 1;
  const problems: ConfigIssue[] = [];
  for (const [name, job] of Object.entries(config.jobs)) {
    // An override naming a queue the same file does not define is a typo, not a fallback.
    if (job.queue !== undefined && config.queues[job.queue] === undefined) {
      problems.push({
        path: `jobs.${name}.queue`,
        message: `unknown queue "${job.queue}" (queues: ${Object.keys(config.queues).join(', ')})`,
        code: undefined,
      });
    }
    // A job's notifications naming a destination the same file does not define: a typo, caught here.
    for (const [i, to] of (job.notify?.to ?? []).entries()) {
      if (!Object.hasOwn(config.notifications.destinations, to)) {
        problems.push({ path: `jobs.${name}.notify.to.${i}`, message: `no destination "${to}" in notifications.destinations`, code: undefined });
      }
    }
  }
  if (problems.length > 0) throw configError(problems);
  Object.defineProperty(config, PARSED, { value: true });
  return deepFreeze(config);
}
