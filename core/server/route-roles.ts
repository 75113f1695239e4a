import { type Role, roleAllows } from '../contract/access.js';

/**
 * The one table of who may call what (SPEC §14): every route of the server, the role it needs,
 * and for a change the action the audit records and what it acts on. A route missing here (and
 * declaring no `config.role` of its own, as an embedder's plugin may) fails at registration, so a
 * new route cannot ship without a role.
 */

/**
 * What a change acts on, named in the audit (`job:<name>`, `run:<id>`, ...). Changes of jobs
 * (`job`, `run`, `notification`, `event`, `runs`) are limited by an operator's `jobs` globs.
 */
export type TargetKind = 'job' | 'run' | 'notification' | 'event' | 'runs' | 'destination' | 'store' | 'queue';

export interface RouteAccess {
  /** `public`: served without a token (nothing of the host's data). */
  readonly role: Role | 'public';
  /** A change: the action the audit records (every non-GET route has one). */
  readonly action?: string;
  readonly target?: TargetKind;
}

/**
 * What a token limited by `jobs` globs may never act on, whatever its globs: a queue holds jobs
 * beyond them. `access.ts` refuses such a change (403) and `GET /whoami` leaves its actions out,
 * so the dashboard draws no button for it.
 */
export const UNSCOPED_TARGETS: ReadonlySet<TargetKind> = new Set<TargetKind>(['queue']);

const viewer: RouteAccess = { role: 'viewer' };
const change = (role: Role, action: string, target: TargetKind): RouteAccess => ({ role, action, target });

/** `METHOD /url` as fastify declares it → what it needs. HEAD routes follow their GET. */
export const ROUTE_ACCESS: Readonly<Record<string, RouteAccess>> = {
  // The dashboard's page shell and assets (dashboard.ts) say `config: { public: true }` themselves.
  'GET /health': { role: 'public' },

  'GET /ready': viewer,
  'GET /metrics': viewer,
  'GET /openapi.json': viewer,
  'GET /cluster': viewer,
  'GET /stats': viewer,
  'GET /stats/series': viewer,
  'GET /jobs': viewer,
  'GET /jobs/:name': viewer,
  'GET /runs': viewer,
  'GET /runs/:id': viewer,
  'GET /runs/:id/logs': viewer,
  'GET /notifications': viewer,
  'GET /notifications/:id': viewer,
  'GET /notifications/destinations': viewer,
  'GET /store/damage': viewer,
  'GET /events': viewer,
  'GET /audit': viewer,
  'GET /whoami': viewer,

  'POST /jobs/:name/run': change('operator', 'job.run', 'job'),
  'POST /jobs/:name/enable': change('operator', 'job.enable', 'job'),
  'POST /jobs/:name/disable': change('operator', 'job.disable', 'job'),
  'POST /jobs/:name/pause': change('operator', 'job.pause', 'job'),
  'POST /jobs/:name/resume': change('operator', 'job.resume', 'job'),
  // A queue holds jobs beyond any `jobs` globs: an operator limited to some jobs may not pause one (access.ts).
  'POST /queues/:name/pause': change('operator', 'queue.pause', 'queue'),
  'POST /queues/:name/resume': change('operator', 'queue.resume', 'queue'),
  'POST /events/:type': change('operator', 'event.publish', 'event'),
  'POST /runs/:id/cancel': change('operator', 'run.cancel', 'run'),
  'POST /runs/:id/retry': change('operator', 'run.retry', 'run'),
  'POST /runs/retry': change('operator', 'runs.retry', 'runs'),
  'POST /runs/cancel': change('operator', 'runs.cancel', 'runs'),
  'POST /notifications/:id/redeliver': change('operator', 'notification.redeliver', 'notification'),
  'POST /notifications/destinations/:name/test': change('operator', 'destination.test', 'destination'),

  'POST /store/damage/ack': change('admin', 'store.damage.ack', 'store'),
};

/** The table's entry for a route (HEAD as its GET), or undefined. */
export function routeAccess(method: string, url: string): RouteAccess | undefined {
  return ROUTE_ACCESS[`${method === 'HEAD' ? 'GET' : method} ${url}`];
}

/** The audit actions a token of `role`, limited to `jobs` (null: every job), may ask: what `GET /whoami` lists. */
export function actionsOf(role: Role, jobs: readonly string[] | null): string[] {
  const scoped = (a: RouteAccess): boolean => jobs === null || a.target === undefined || !UNSCOPED_TARGETS.has(a.target);
  const actions = Object.values(ROUTE_ACCESS).flatMap((a) => (a.action && a.role !== 'public' && roleAllows(role, a.role) && scoped(a) ? [a.action] : []));
  return [...new Set(actions)];
}

/** An OpenAPI operation (what @fastify/swagger's transform returns) with the role it needs at the end of its description. */
export function describeRole<T extends { schema: unknown }>(out: T, method: string | string[], url: string): T {
  const access = routeAccess([method].flat()[0] ?? 'GET', url);
  const schema = out.schema as { description?: string; security?: unknown[] } | undefined;
  if (!access || !schema) return out;
  const note = access.role === 'public' ? 'Needs no token.' : `Needs the \`${access.role}\` role${access.action ? ` (audited as \`${access.action}\`)` : ''}.`;
  const described = {
    ...schema,
    description: schema.description ? `${schema.description}\n\n${note}` : note,
    ...(access.role === 'public' && { security: [] }),
  };
  return { ...out, schema: described };
}
