import { z } from 'zod';
import { TEST_WAIT_MS } from './client-waits.js';

/**
 * A typed client for a running host's HTTP API (README "HTTP API"), for the CLI and for scripts.
 * It knows only the wire contract: every response is checked here with zod and handed on as a
 * plain typed value. The schemas are loose on purpose (unknown fields pass, only what a client
 * reads is required), so a newer host with more fields still works with an older client.
 */

/** Codes of failures on the client's side; server errors keep the server's code (`JOB_NOT_FOUND`, ...). @public */
export type ClientErrorCode = 'UNREACHABLE' | 'REQUEST_TIMEOUT' | 'BAD_RESPONSE' | 'WAIT_TIMEOUT' | 'CONNECTION_LOST';

/** An API error (`code` from the host's error table) or a client-side failure (`ClientErrorCode`). */
export class ClientError extends Error {
  readonly code: string;
  /** The HTTP status, or null when no response came. */
  readonly status: number | null;
  /** Per-field problems (`INVALID_PARAMS`, `INVALID_BODY`). */
  readonly issues: ReadonlyArray<{ path: string; message: string }>;
  /** Why a trigger was refused (`SKIPPED`). */
  readonly reason: string | undefined;

  constructor(
    code: string,
    message: string,
    extra: { status?: number | null; issues?: Array<{ path: string; message: string }>; reason?: string | undefined } = {},
  ) {
    super(message);
    this.name = 'ClientError';
    this.code = code;
    this.status = extra.status ?? null;
    this.issues = extra.issues ?? [];
    this.reason = extra.reason;
  }
}

const iso = z.string();
const runError = z.looseObject({ code: z.string(), message: z.string() });
const runStatus = z.string();

export const jobSchema = z.looseObject({
  name: z.string(),
  description: z.string().default(''),
  schedule: z.string().nullable(),
  enabled: z.boolean(),
  // SPEC §13: which of the job and its queue is paused (a host from before pauses says neither).
  pause: z.looseObject({ job: z.boolean(), queue: z.boolean() }).default({ job: false, queue: false }),
  queue: z.string().default('default'),
  nextRun: iso.nullable(),
  lastRun: z.looseObject({ runId: z.string(), status: runStatus, at: iso }).nullable(),
  counts: z.looseObject({
    succeeded: z.number().default(0),
    failed: z.number().default(0),
    canceled: z.number().default(0),
    queued: z.number().default(0),
    running: z.number().default(0),
  }),
});

export const runSchema = z.looseObject({
  id: z.string(),
  job: z.string(),
  status: runStatus,
  createdAt: iso,
  startedAt: iso.nullable(),
  endedAt: iso.nullable(),
  durationMs: z.number().nullable(),
  progress: z.looseObject({ fraction: z.number(), text: z.string().nullable() }),
  attempts: z.array(z.looseObject({ n: z.number(), error: runError.nullable() })),
  result: z.unknown(),
  error: runError.nullable(),
});

const errorBody = z.looseObject({
  code: z.string(),
  message: z.string(),
  issues: z.array(z.looseObject({ path: z.string(), message: z.string() })).optional(),
  reason: z.string().optional(),
});

const damageReport = z.looseObject({
  id: z.string(),
  file: z.string(),
  lines: z.array(z.number()),
  foundAt: iso,
  acknowledgedAt: iso.nullable(),
  message: z.string().default(''),
});
const destinationView = z.looseObject({ name: z.string(), kind: z.string(), target: z.string() });
const destinationsResponse = z.looseObject({ items: z.array(destinationView), open: z.number() });

const whoamiResponse = z.looseObject({ name: z.string(), role: z.string(), jobs: z.array(z.string()).nullable() });
export const auditRecordSchema = z.looseObject({
  id: z.string(),
  at: z.string(),
  token: z.string(),
  action: z.string(),
  target: z.string(),
  ip: z.string(),
  outcome: z.string(),
  status: z.number().optional(),
  code: z.string().nullable().optional(),
});
const auditPage = z.looseObject({ items: z.array(auditRecordSchema), next: z.string().optional() });
/** `GET /audit`'s filters. */
export type AuditFilter = Partial<Record<'token' | 'action' | 'target' | 'outcome' | 'before', string>> & { limit?: number };
const testResponse = destinationView.extend({
  ok: z.boolean(),
  status: z.number().nullable(),
  body: z.string().nullable(),
  error: z.looseObject({ code: z.string(), message: z.string() }).nullable(),
  durationMs: z.number(),
});

const ackDamageResponse = z.looseObject({ acknowledged: z.array(damageReport), unknown: z.array(z.string()), remaining: z.number() });

/** A line a handler logged (`GET /runs/:id/logs`, `run.log` events). */
export const logLineSchema = z.looseObject({
  attempt: z.number(),
  i: z.number(),
  at: iso,
  level: z.string(),
  msg: z.string(),
  fields: z.record(z.string(), z.unknown()).optional(),
});
const runLogResponse = z.looseObject({ runId: z.string(), lines: z.array(logLineSchema), dropped: z.number(), note: z.string().nullable() });

const clusterSchema = z.looseObject({
  backend: z.string(),
  self: z.string(),
  hosts: z.array(
    z.looseObject({
      id: z.string(),
      url: z.string().nullable(),
      startedAt: iso,
      lastSeen: iso,
      running: z.number(),
      jobs: z.array(z.looseObject({ name: z.string(), version: z.string() })),
    }),
  ),
  drift: z.array(z.looseObject({ job: z.string(), hosts: z.array(z.string()) })),
});
/** `GET /cluster`: the live hosts and the jobs whose definition differs between them. */
export type ClusterInfo = z.output<typeof clusterSchema>;

const triggerResponse = z.looseObject({ runId: z.string() });
const healthResponse = z.looseObject({ status: z.string(), state: z.string() });

export type Job = z.output<typeof jobSchema>;
export type Run = z.output<typeof runSchema>;
export type LogLine = z.output<typeof logLineSchema>;
/** Damage found in the host's store files (`GET /store/damage`). */
export type DamageReport = z.output<typeof damageReport>;

/** The body of `POST /jobs/:name/run`. */
export interface TriggerBody {
  params?: unknown;
  /** Milliseconds, or a duration string like `'30s'` (the host parses it). */
  delay?: number | string;
  runAt?: string;
  key?: string;
  priority?: number;
}

export interface ClientOptions {
  /** The host's base URL, e.g. `http://127.0.0.1:3000`. */
  url: string;
  token?: string | undefined;
  /** Bound on each HTTP request (default 30 s). */
  timeoutMs?: number | undefined;
}

export interface Client {
  /** The base URL, without a trailing slash. */
  readonly url: string;
  readonly token: string | undefined;
  health(): Promise<z.output<typeof healthResponse>>;
  jobs(): Promise<Job[]>;
  /** The hosts sharing the backend (one on the local backend) and the jobs that differ between them. */
  cluster(): Promise<ClusterInfo>;
  /** Resolves with the run id once the host has the run on disk (202). */
  trigger(job: string, body?: TriggerBody): Promise<string>;
  run(id: string): Promise<Run>;
  /** The lines the run's handler logged (the last 500 / 256 KiB) and how many earlier ones were cut. */
  runLog(id: string): Promise<z.output<typeof runLogResponse>>;
  /** Damage reports of the host's store, acknowledged or not. */
  damage(): Promise<DamageReport[]>;
  /** Acknowledges damage reports (every unacknowledged one without `ids`). */
  ackDamage(ids?: readonly string[]): Promise<z.output<typeof ackDamageResponse>>;
  /** The notification destinations (no secrets) and how many deliveries wait. */
  destinations(): Promise<z.output<typeof destinationsResponse>>;
  /** Sends a test message to a destination; resolves with the receiver's answer. */
  /** `waitMs`: how long to wait for the host's answer (default TEST_WAIT_MS; the host bounds it by `notifications.timeout`). */
  testDestination(name: string, waitMs?: number): Promise<z.output<typeof testResponse>>;
  /** The token's name, role and jobs. */
  whoami(): Promise<z.output<typeof whoamiResponse>>;
  /** A page of the audit trail, newest first. */
  audit(filter?: AuditFilter): Promise<z.output<typeof auditPage>>;
  /** Pauses (true) or resumes a job or a queue (SPEC §13); answers whether it is paused now. */
  setPaused(kind: 'job' | 'queue', name: string, paused: boolean): Promise<{ paused: boolean }>;
}

export const FINAL_STATUSES: ReadonlySet<string> = new Set(['succeeded', 'failed', 'canceled']);

/** A socket-level failure: the host is not there (refused, reset, unknown name). */
function networkCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && typeof e === 'object' && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
    // `localhost` may resolve to ::1 and 127.0.0.1: both refusals come in an AggregateError.
    const inner: unknown = (e as { errors?: unknown }).errors;
    if (Array.isArray(inner) && inner.length > 0) e = inner[0];
    else e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The message for a host that cannot be reached, shared by HTTP and the WebSocket. */
export function unreachable(url: string, err: unknown): ClientError {
  const code = networkCode(err);
  const message =
    code === 'ECONNREFUSED'
      ? `no jobhost at ${url} (connection refused): start one with \`jobhost start\`, or point --url / JOBHOST_URL at it`
      : `cannot reach jobhost at ${url}: ${code ?? (err instanceof Error ? err.message : String(err))}`;
  return new ClientError('UNREACHABLE', message);
}

/** A non-2xx answer as a ClientError with the host's code and message. */
export function errorFromBody(status: number, text: string): ClientError {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const parsed = errorBody.safeParse(body);
  if (!parsed.success) return new ClientError('BAD_RESPONSE', `HTTP ${status}: ${text.slice(0, 200) || '(empty body)'}`, { status });
  const { code, message, issues, reason } = parsed.data;
  return new ClientError(code, message, { status, issues: issues ?? [], reason });
}

/** Strips trailing slashes, reads `127.0.0.1:3000` as `http://127.0.0.1:3000`; refuses what is not an http(s) URL. */
export function normalizeUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(/^[a-z][a-z\d+.-]*:\/\//i.test(url) ? url : `http://${url}`);
  } catch {
    throw new ClientError('BAD_URL', `not a URL: ${JSON.stringify(url)} (expected e.g. http://127.0.0.1:3000)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ClientError('BAD_URL', `not an http(s) URL: ${url}`);
  }
  return parsed.href.replace(/\/+$/, '');
}

export function createClient(options: ClientOptions): Client {
  const url = normalizeUrl(options.url);
  const token = options.token || undefined;
  const timeoutMs = options.timeoutMs ?? 30_000;

  /** `waitMs`: this request's own bound instead of the client's. */
  async function request<T extends z.ZodType>(
    method: 'GET' | 'POST',
    path: string,
    schema: T,
    body?: unknown,
    waitMs: number = timeoutMs,
  ): Promise<z.output<T>> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token) headers['authorization'] = `Bearer ${token}`;
    // The host takes a POST only when it says JSON, body or not (what a cross-site form cannot say).
    if (method === 'POST') headers['content-type'] = 'application/json';
    let res: Response;
    let text: string;
    try {
      res = await fetch(url + path, {
        method,
        headers,
        ...(body !== undefined && { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(waitMs),
      });
      text = await res.text();
    } catch (err) {
      if (err instanceof Error && err.name === 'TimeoutError') {
        throw new ClientError('REQUEST_TIMEOUT', `no answer from jobhost at ${url} within ${waitMs} ms (${method} ${path})`);
      }
      throw unreachable(url, err);
    }
    if (!res.ok) throw errorFromBody(res.status, text);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ClientError('BAD_RESPONSE', `${method} ${path}: the answer is not JSON: ${text.slice(0, 200)}`, { status: res.status });
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new ClientError('BAD_RESPONSE', `${method} ${path}: unexpected answer: ${z.prettifyError(parsed.error)}`, { status: res.status });
    }
    return parsed.data;
  }

  const seg = encodeURIComponent;
  return {
    url,
    token,
    health: () => request('GET', '/health', healthResponse),
    jobs: async () => (await request('GET', '/jobs', z.looseObject({ items: z.array(jobSchema) }))).items,
    cluster: () => request('GET', '/cluster', clusterSchema),
    trigger: async (job, body = {}) => (await request('POST', `/jobs/${seg(job)}/run`, triggerResponse, body)).runId,
    run: (id) => request('GET', `/runs/${seg(id)}`, runSchema),
    runLog: (id) => request('GET', `/runs/${seg(id)}/logs`, runLogResponse),
    damage: async () => (await request('GET', '/store/damage', z.looseObject({ items: z.array(damageReport) }))).items,
    ackDamage: (ids) => request('POST', '/store/damage/ack', ackDamageResponse, ids === undefined ? {} : { ids }),
    destinations: () => request('GET', '/notifications/destinations', destinationsResponse),
    // The host waits for the receiver up to `notifications.timeout`: the command waits for the host that long and more (up to
    // TEST_WAIT_MS, where Node's fetch gives up on an answer's headers anyway), unless told otherwise.
    testDestination: (name, waitMs = TEST_WAIT_MS) => request('POST', `/notifications/destinations/${seg(name)}/test`, testResponse, undefined, waitMs),
    whoami: () => request('GET', '/whoami', whoamiResponse),
    audit: (filter = {}) => {
      const query = new URLSearchParams(
        Object.entries(filter).flatMap(([k, v]): Array<[string, string]> => (v === undefined ? [] : [[k, String(v)]])),
      ).toString();
      return request('GET', `/audit${query ? `?${query}` : ''}`, auditPage);
    },
    setPaused: (kind, name, paused) =>
      request('POST', `/${kind === 'job' ? 'jobs' : 'queues'}/${seg(name)}/${paused ? 'pause' : 'resume'}`, z.looseObject({ paused: z.boolean() })),
  };
}
