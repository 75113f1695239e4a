import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { ADMIN_TOKEN_NAME, ANONYMOUS, type Role, roleAllows, tokenDigest, unmatchedJobGlobs } from '../contract/access.js';
import type { AuditOutcome, AuditRecord } from '../contract/audit.js';
import type { Config } from '../contract/config.js';
import { HostError } from '../contract/errors.js';
import { matchesAny } from '../contract/glob.js';
import type { Logger } from '../contract/logger.js';
import type { AuditEntry } from '../engine/audit.js';
import type { Host } from '../engine/host.js';
import { isLoopback } from './auth.js';
import { type RouteAccess, routeAccess, type TargetKind, UNSCOPED_TARGETS } from './route-roles.js';

/**
 * Access control (SPEC §7, §14) from one table (`route-roles.ts`): who a request's token is, whether
 * its role may call the route, whether an operator's `jobs` admit the job a change acts on, and an
 * audit record of every change asked, made or refused. Tokens are read from the host's config on
 * each request (an edit applies at once); a socket whose token an edit removed is closed.
 */

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The role a route of an embedder's plugin needs, when the table does not list it. */
    role?: Role | 'public';
  }
  interface FastifyRequest {
    /** Who sent the request, once its token is checked (undefined on public routes and before). */
    principal: Principal | undefined;
    /** The route's line of the table, found once by the token check (the hooks after it reuse it). */
    routeAccess: RouteAccess | undefined;
    /** The id of the request's record when stamped ahead (`auditAhead`): a refusal's record replaces the one carried. */
    auditId: string | undefined;
    /** The change carried its `ok` audit record into its own write (`auditAhead`): `onSend` records none. */
    auditCarried: boolean;
    /** The client's address as the token check saw it: `request.ip` is gone once the client hangs up, and its change is recorded all the same. */
    auditIp: string | undefined;
  }
}

/** Who a request comes from: a token's name, role and, for an operator, the jobs it may act on. */
export interface Principal {
  readonly name: string;
  readonly role: Role;
  /** `*` globs; null: every job. */
  readonly jobs: readonly string[] | null;
}

interface Credential extends Principal {
  readonly digest: Buffer;
}

const ANONYMOUS_ADMIN: Principal = Object.freeze({ name: ANONYMOUS, role: 'admin', jobs: null });
/**
 * What access control needs of an open WebSocket: its close. Structural, so the package's types
 * do not make users install `@types/ws`.
 */
export interface TrackedSocket {
  once(event: 'close', listener: () => void): unknown;
  close(code: number, reason: string): void;
}

/** WebSocket close code for a policy violation: here, a token that no longer admits the socket. */
const CLOSE_POLICY = 1008;

const digestOf = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/** `Authorization: Bearer <token>`'s token; on the WebSocket route also `?token=`. */
function presentedToken(
  request: FastifyRequest,
  header: (value: string | undefined) => string | undefined,
  url = request.routeOptions.url,
): string | undefined {
  const bearer = header(request.headers.authorization);
  if (bearer !== undefined || url !== '/events') return bearer;
  const query = request.query as Record<string, unknown>;
  return typeof query['token'] === 'string' ? query['token'] : undefined;
}

/** A request value as the audit names it: a string, bounded. */
const shown = (value: unknown): string => (typeof value === 'string' ? value : (JSON.stringify(value) ?? '')).slice(0, 200);

export interface AccessOptions {
  host: Host;
  bindHost: string;
  /** An embedder's admin token (`ServerOptions.token`): over `server.token`; null: none. */
  token?: string | null | undefined;
  bearer(header: string | undefined): string | undefined;
  logger: Logger;
}

export class Access {
  readonly #o: AccessOptions;
  #cache: { config: Config; credentials: Credential[] } | undefined;
  /** The table's line of each route, by URL pattern then method (no key string built per request). */
  readonly #routes = new Map<string, Map<string, RouteAccess>>();
  readonly #sockets = new Map<TrackedSocket, Buffer | null>();
  readonly #unsubscribe: () => void;
  /** The bind address is loopback: without tokens, every request is the anonymous admin. */
  readonly #loopback: boolean;

  constructor(options: AccessOptions) {
    this.#o = options;
    this.#loopback = isLoopback(options.bindHost);
    this.#unsubscribe = options.host.bus.on('config.reloaded', () => {
      this.closeRevoked();
      this.warnUnmatched();
    });
  }

  /** The tokens of the config in force (cached per config: an edit makes a new config object). */
  #credentials(): Credential[] {
    const config = this.#o.host.config;
    if (this.#cache?.config === config) return this.#cache.credentials;
    const credentials: Credential[] = [];
    const admin = this.#o.token === undefined ? config.server.token : this.#o.token;
    // Read as `server.tokens` entries are (and as config validation reads it): `sha256:<hex>` is a stored digest.
    if (admin) credentials.push({ name: ADMIN_TOKEN_NAME, role: 'admin', jobs: null, digest: tokenDigest(admin) });
    for (const t of config.server.tokens) credentials.push({ name: t.name, role: t.role, jobs: t.jobs ?? null, digest: tokenDigest(t.token) });
    this.#cache = { config, credentials };
    return credentials;
  }

  /**
   * Who holds the token of this digest (null: no token presented): the anonymous admin when no
   * token is configured on a loopback bind; null when refused. Every credential is compared, in
   * constant time each, so the answer's timing says nothing of which one matched.
   */
  #identify(digest: Buffer | null): Principal | null {
    const credentials = this.#credentials();
    if (credentials.length === 0) return this.#loopback ? ANONYMOUS_ADMIN : null;
    if (digest === null) return null;
    let found: Credential | undefined;
    for (const c of credentials) if (timingSafeEqual(c.digest, digest) && found === undefined) found = c;
    return found ? { name: found.name, role: found.role, jobs: found.jobs } : null;
  }

  /** `onRoute`: every route must have a role (the table's, or its own `config.role`/`public`); a change must have an action. */
  onRoute(route: RouteOptions): void {
    const own = route.config?.role ?? (route.config?.public === true ? 'public' : undefined);
    for (const method of [route.method].flat()) {
      const access = routeAccess(method, route.url) ?? (own === undefined ? undefined : { role: own });
      if (!access) throw new Error(`${method} ${route.url} declares no role: add it to core/server/route-roles.ts (or set config.role)`);
      if (method !== 'GET' && method !== 'HEAD' && access.role !== 'public' && access.action === undefined) {
        throw new Error(`${method} ${route.url} changes something but names no audit action in core/server/route-roles.ts`);
      }
      let byMethod = this.#routes.get(route.url);
      if (!byMethod) this.#routes.set(route.url, (byMethod = new Map()));
      byMethod.set(method, access);
    }
  }

  /**
   * The route's line of the table. Looked up once, by the token check (fastify's `routeOptions`
   * builds a new object on each read), and kept on the request for the scope check and the audit.
   */
  #access(request: FastifyRequest, url = request.routeOptions.url): RouteAccess | undefined {
    return url === undefined ? undefined : this.#routes.get(url)?.get(request.method);
  }

  /**
   * `onRequest`: the token (an unknown route too: its 404 is for token holders), then the role.
   * Synchronous (it throws): the hot path pays no promise for it.
   */
  check(request: FastifyRequest): void {
    const url = request.routeOptions.url;
    const access = this.#access(request, url);
    request.routeAccess = access;
    if (access?.role === 'public') return;
    const presented = presentedToken(request, this.#o.bearer, url);
    const who = this.#identify(presented === undefined ? null : digestOf(presented));
    if (!who) {
      if (this.#credentials().length === 0)
        throw new HostError('UNAUTHORIZED', 'no token is configured for a host bound to a public address: every request is refused');
      throw new HostError('UNAUTHORIZED', presented === undefined ? 'this host needs a token: Authorization: Bearer <token>' : 'the token is not valid');
    }
    request.principal = who;
    if (access?.action) request.auditIp = request.ip;
    if (access && !roleAllows(who.role, access.role as Role)) {
      throw new HostError('FORBIDDEN', `${request.method} ${request.routeOptions.url} needs the ${access.role} role; token "${who.name}" is ${who.role}`, {
        role: access.role,
        token: who.name,
      });
    }
  }

  /**
   * An operator's `jobs` must admit the job a change acts on: checked in `onRequest` (`body`
   * false) when the path names it, so a malformed or foreign body cannot turn the 403 into a 400
   * or 415, and in `preValidation` (`body` true: parsed, not yet validated) when the body names
   * it (a bulk action's `job`). Undefined when there is nothing to check (every token but an
   * operator's with `jobs`, or the other phase's target), else the check's promise.
   */
  checkScope(request: FastifyRequest, body: boolean): Promise<void> | undefined {
    const access = request.routeAccess;
    const jobs = request.principal?.jobs;
    if (!access?.target || !jobs || (access.target === 'runs') !== body) return undefined;
    return this.#checkJobs(request, access.target, jobs);
  }

  async #checkJobs(request: FastifyRequest, target: TargetKind, jobs: readonly string[]): Promise<void> {
    if (UNSCOPED_TARGETS.has(target)) {
      throw new HostError('FORBIDDEN', `token "${request.principal!.name}" may act on jobs ${jobs.join(', ')} only; a queue holds others too`, {
        role: 'operator',
        token: request.principal!.name,
      });
    }
    const job = await this.#jobOf(target, request);
    if (job !== undefined && !matchesAny(jobs, job)) {
      throw new HostError('FORBIDDEN', `token "${request.principal!.name}" may act on jobs ${jobs.join(', ')} only; not on "${job}"`, {
        role: 'operator',
        token: request.principal!.name,
        job,
      });
    }
  }

  /**
   * The one job a change names (a bulk action or an event names none: they are filtered by
   * `allowedJobs`). Read before validation: a bulk body's `job` that is not a string names none,
   * and validation refuses it.
   */
  async #jobOf(kind: TargetKind, request: FastifyRequest): Promise<string | undefined> {
    const params = request.params as Record<string, string>;
    if (kind === 'job') return params['name'];
    if (kind === 'runs') {
      const job = (request.body as { job?: unknown } | null | undefined)?.job;
      return typeof job === 'string' ? job : undefined;
    }
    if (kind === 'run') return (await this.#o.host.run(params['id']!))?.job;
    if (kind === 'notification') return (await this.#o.host.deliveries.get(params['id']!).catch(() => undefined))?.job;
    return undefined;
  }

  /**
   * `onSend`: a change's audit record, durable before the answer goes out: the promise to wait
   * for, or undefined when there is none (a read, a public route, a refused token).
   */
  audit(request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<void> | undefined {
    if (request.auditCarried || request.principal === undefined) return undefined;
    const status = reply.statusCode;
    // A bulk action's dry run changes nothing (the dashboard sends one before every bulk action):
    // no record, unless it was refused (a forbidden try is one, SPEC §14).
    if (status < 400 && BULK.has(request.routeOptions.url ?? '') && (request.body as { dryRun?: unknown } | undefined)?.dryRun === true) return undefined;
    const entry = auditEntry(request, status, status >= 400 ? errorCode(payload) : null);
    if (!entry) return undefined;
    const health = this.#o.host.storeHealth();
    const written = this.#o.host.audit.record(entry, request.auditId).then(
      () => undefined,
      (err: unknown) => {
        // Not lost silently: the log keeps it (the store retries the write itself on a full disk).
        request.log.error({ err, audit: entry }, 'could not record the audit entry');
      },
    );
    // While the backend cannot write (Redis out of reach, a full disk) the answer, most likely a 503,
    // does not wait for the record: it follows once the backend can write again.
    return health.backend.available && health.writeError === null ? written : undefined;
  }

  /**
   * For a request fastify refused before routing it (a bad URL): the 401 to answer when its token
   * does not admit it, as every route would, so the refusal says nothing of which paths exist.
   */
  unauthorized(request: FastifyRequest): HostError | undefined {
    const presented = presentedToken(request, this.#o.bearer, '');
    if (this.#identify(presented === undefined ? null : digestOf(presented))) return undefined;
    if (this.#credentials().length === 0)
      return new HostError('UNAUTHORIZED', 'no token is configured for a host bound to a public address: every request is refused');
    return new HostError('UNAUTHORIZED', presented === undefined ? 'this host needs a token: Authorization: Bearer <token>' : 'the token is not valid');
  }

  /** A WebSocket just opened: closed later if a config edit removes its token. */
  track(socket: TrackedSocket, request: FastifyRequest): void {
    const presented = presentedToken(request, this.#o.bearer);
    this.#sockets.set(socket, presented === undefined ? null : digestOf(presented));
    socket.once('close', () => this.#sockets.delete(socket));
  }

  /** Closes (1008) every socket whose token no longer admits it. */
  closeRevoked(): void {
    for (const [socket, digest] of this.#sockets) {
      if (this.#identify(digest) !== null) continue;
      this.#sockets.delete(socket);
      socket.close(CLOSE_POLICY, 'the token of this connection was removed');
    }
  }

  /** Logs each `server.tokens[i].jobs` glob that matches no registered job (a typo, or a job not loaded yet). */
  warnUnmatched(): void {
    const names = this.#o.host.jobs().map((j) => j.name);
    for (const { message, ...where } of unmatchedJobGlobs(this.#o.host.config.server.tokens, names)) this.#o.logger.warn(where, message);
  }

  close(): void {
    this.#unsubscribe();
  }
}

/** The jobs a request's token may act on, as a filter for bulk actions and events; undefined: all. */
export function allowedJobs(request: FastifyRequest): ((job: string) => boolean) | undefined {
  const jobs = request.principal?.jobs;
  return jobs ? (job) => matchesAny(jobs, job) : undefined;
}

/** The error code of a refusal's JSON body (`ERROR` when it names none; null for a body not yet text). */
function errorCode(payload: unknown): string | null {
  if (typeof payload !== 'string') return null;
  try {
    return String((JSON.parse(payload) as { code?: unknown }).code ?? 'ERROR');
  } catch {
    return 'ERROR';
  }
}

/** The bulk actions, whose `dryRun` changes nothing (any other body's `dryRun` key is only data: an app event's payload). */
const BULK = new Set(['/runs/retry', '/runs/cancel']);

/** What the audit records of a change answered `status` (`code`: its error's), or undefined when it records nothing. */
function auditEntry(request: FastifyRequest, status: number, code: string | null): AuditEntry | undefined {
  const access = request.routeAccess;
  const who = request.principal;
  if (!access?.action || !access.target || !who) return undefined;
  const outcome: AuditOutcome = status < 400 ? 'ok' : code === 'FORBIDDEN' ? 'forbidden' : 'error';
  return {
    token: who.name,
    action: access.action,
    target: targetOf(access.target, request),
    ip: request.auditIp ?? request.ip ?? 'unknown',
    outcome,
    status,
    code,
  };
}

/**
 * The record of a change that will be answered `status` (< 400), stamped now, for the change to
 * carry into its own write (a trigger: one commit makes the run and its record durable). The
 * route sets `request.auditCarried` once the change is made; a change refused or failed is
 * recorded by `onSend` as ever, under the same id (it replaces the record a failed write may
 * still have kept). Undefined when the request is not audited.
 */
export function auditAhead(request: FastifyRequest, host: Host, status: number): AuditRecord | undefined {
  const entry = auditEntry(request, status, null);
  if (!entry) return undefined;
  const record = host.audit.stamp(entry);
  request.auditId = record.id;
  return record;
}

/** What a change acts on, as the audit names it. */
function targetOf(kind: TargetKind, request: FastifyRequest): string {
  const params = request.params as Record<string, unknown>;
  switch (kind) {
    case 'job':
      return `job:${shown(params['name'])}`;
    case 'run':
      return `run:${shown(params['id'])}`;
    case 'notification':
      return `notification:${shown(params['id'])}`;
    case 'event':
      return `event:${shown(params['type'])}`;
    case 'destination':
      return `destination:${shown(params['name'])}`;
    case 'runs': {
      const job = (request.body as { job?: unknown } | undefined)?.job;
      return job === undefined ? 'runs' : `job:${shown(job)}`;
    }
    case 'store':
      return 'store';
    case 'queue':
      return `queue:${shown(params['name'])}`;
  }
}
