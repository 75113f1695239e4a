import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance, RawServerDefault } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { HostError } from '../contract/errors.js';
import { describeReport } from '../contract/store-health.js';
import { inCallerContext } from '../contract/tracing.js';
import type { Host } from '../engine/host.js';
import { allowedJobs, auditAhead } from './access.js';
import type { EventLoopWatch } from './event-loop.js';
import { clientMessage } from './http-errors.js';
import {
  ackDamageBody,
  ackDamageResponse,
  clusterResponse,
  damageList,
  errors,
  eventParams,
  healthResponse,
  jobParams,
  jobSchema,
  notificationsQuery,
  page,
  publishResponse,
  readyResponse,
  runParams,
  runSchema,
  runsQuery,
  statsResponse,
  triggerBody,
  triggerResponse,
} from './http-schemas.js';
import { notificationSchema } from './notification-schemas.js';

/** The fastify instance jobhost serves with: zod schemas through the type provider. */
export type JobhostApp = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, ZodTypeProvider>;

type Readiness = z.output<typeof readyResponse>;

/** Host conditions `/ready` lists as warnings (not a reason for 503): the stall watchdog, and events lost in cluster mode. */
const WATCHED = { 'dispatch-stalled': 'DISPATCH_STALLED', 'scheduler-stalled': 'SCHEDULER_STALLED', 'events-lost': 'EVENTS_LOST' } as const;

/**
 * `GET /ready`: ready when started, every schedule armed, the store able to write, the backend
 * (Redis, in cluster mode) within reach and the main thread's event loop not staying slow; stale
 * jobs and store damage are reported, not fatal (taking the host out of service would fix neither).
 */
export function readiness(host: Host, loop: EventLoopWatch): Readiness {
  const state = host.state;
  const jobs = host.jobs();
  let enabled = 0;
  let running = 0;
  let scheduled = 0;
  let unarmed = 0;
  for (const job of jobs) {
    running += job.counts.running;
    if (!job.enabled) continue;
    enabled++;
    if (job.schedule === null) continue;
    scheduled++;
    if (job.nextRun === null) unarmed++;
  }
  const schedulerRunning = host.schedulerRunning;
  const store = host.storeHealth();
  const maxDelayMs = host.config.eventLoop.maxDelay;
  const slow = loop.slow(maxDelayMs);
  const status: Readiness['status'] =
    state === 'created' || state === 'starting'
      ? 'starting'
      : state === 'stopping' || state === 'stopped'
        ? 'stopping'
        : !schedulerRunning || unarmed > 0 || store.writeError !== null || !store.backend.available || slow
          ? 'degraded'
          : 'ready';
  return {
    ready: status === 'ready',
    status,
    state,
    scheduler: { running: schedulerRunning, scheduledJobs: scheduled },
    jobs: { total: jobs.length, enabled, running },
    stale: state === 'running' ? host.staleJobs() : [],
    paused: host.pauses.list(),
    store: { writable: store.writeError === null, error: store.writeError },
    eventLoop: { ...loop.delay(), maxDelayMs, slow },
    backend: store.backend,
    warnings: [
      ...store.damage.filter((r) => r.acknowledgedAt === null).map((r) => ({ code: 'STORE_DAMAGED' as const, message: describeReport(r), ...r })),
      ...host.cluster().drift.map((d) => ({
        code: 'CLUSTER_DRIFT' as const,
        message: `job ${d.job} differs between hosts: ${d.hosts.map((h) => `${h} (${d.versions[h]})`).join(', ')}`,
        job: d.job,
        hosts: d.hosts,
      })),
      ...(store.warnings ?? []),
      // The stall watchdog (SPEC §12): work that silently stopped; clears itself when work flows again.
      ...host.conditions.active().flatMap((c) => (c.id in WATCHED ? [{ code: WATCHED[c.id as keyof typeof WATCHED], message: c.message }] : [])),
    ],
  };
}

function notFoundJob(name: string): HostError {
  return new HostError('JOB_NOT_FOUND', `no job named "${name}"`, { job: name });
}

/**
 * The host names a bad option by its own name (`runAt`, `event`); over HTTP an INVALID_BODY's
 * issues say where in the request it was (`body.runAt`, `params.type`), as a route schema's do.
 */
async function locatedIn<T>(where: (path: string) => string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    const issues = err instanceof HostError && err.code === 'INVALID_BODY' ? err.details?.['issues'] : undefined;
    if (!Array.isArray(issues) || issues.length === 0) throw err;
    const first = issues[0] as { path: string };
    const moved = (issues as Array<{ path: string; message: string }>).map((i) => ({ ...i, path: where(i.path) }));
    const message = (err as HostError).message.startsWith(`${first.path}: `)
      ? `${where(first.path)}${(err as HostError).message.slice(first.path.length)}`
      : (err as HostError).message;
    throw new HostError('INVALID_BODY', message, { ...(err as HostError).details, issues: moved });
  }
}

/** The REST routes of SPEC §6 (the WebSocket, metrics and OpenAPI routes live beside the server). */
export function registerRoutes(app: JobhostApp, host: Host, loop: EventLoopWatch): void {
  const startedAt = Date.now();

  app.get('/health', {
    schema: { summary: 'Liveness: 200 while the process serves', tags: ['host'], response: { 200: healthResponse } },
    handler: async () => ({ status: 'ok' as const, state: host.state, uptimeMs: Date.now() - startedAt }),
  });

  app.get('/ready', {
    schema: {
      summary: 'Readiness: 200 when started with every schedule armed; 503 while starting, stopping or degraded',
      tags: ['host'],
      response: { 200: readyResponse, 503: readyResponse, ...errors(401) },
    },
    handler: async (_request, reply) => {
      const body = readiness(host, loop);
      return reply.code(body.ready ? 200 : 503).send(body);
    },
  });

  app.get('/store/damage', {
    schema: {
      summary: 'Damage found in the store files: unacknowledged reports, and acknowledged ones still kept',
      tags: ['host'],
      response: { 200: damageList, ...errors(401) },
    },
    handler: async () => ({ items: host.storeHealth().damage.map((r) => ({ ...r, message: describeReport(r) })) }),
  });

  app.post('/store/damage/ack', {
    schema: {
      summary: 'Acknowledge store damage reports (all unacknowledged ones without `ids`): /ready stops listing them',
      tags: ['host'],
      body: ackDamageBody,
      response: { 200: ackDamageResponse, ...errors(400, 401, 413, 415, 503) },
    },
    handler: async (request) => {
      const { acknowledged, unknown } = await host.ackStoreDamage(request.body?.ids);
      const remaining = host.storeHealth().damage.filter((r) => r.acknowledgedAt === null).length;
      return { acknowledged, unknown, remaining };
    },
  });

  app.get('/jobs', {
    schema: { summary: 'Every registered job', tags: ['jobs'], response: { 200: page(jobSchema), ...errors(401) } },
    handler: async () => ({ items: host.jobs() }),
  });

  app.get('/jobs/:name', {
    schema: { summary: 'One job', tags: ['jobs'], params: jobParams, response: { 200: jobSchema, ...errors(400, 401, 404) } },
    handler: async (request) => {
      const job = host.job(request.params.name);
      if (!job) throw notFoundJob(request.params.name);
      return job;
    },
  });

  app.post('/jobs/:name/run', {
    schema: {
      summary: 'Trigger a job: 202 once the run is on disk',
      description: '400 INVALID_PARAMS lists `issues`; 409 SKIPPED gives the `reason` (disabled, overlap, cooldown, once, duplicate).',
      tags: ['jobs'],
      params: jobParams,
      body: triggerBody,
      response: { 202: triggerResponse, ...errors(400, 401, 404, 409, 413, 415, 503) },
    },
    handler: async (request, reply) => {
      const body = request.body ?? {};
      // The 202's audit record rides in the run's write: one commit (one fsync) for both.
      const audit = auditAhead(request, host, 202);
      const result = await inCallerContext(request.headers, () =>
        locatedIn(
          (p) => `body.${p}`,
          () =>
            host.trigger(request.params.name, {
              params: body.params,
              delay: body.delay,
              runAt: body.runAt,
              key: body.key,
              priority: body.priority,
              source: 'http',
              audit,
            }),
        ),
      );
      request.auditCarried = audit !== undefined;
      return reply.code(202).send(result);
    },
  });

  for (const action of ['enable', 'disable'] as const) {
    app.post(`/jobs/:name/${action}`, {
      schema: {
        summary: `${action === 'enable' ? 'Enable' : 'Disable'} a job (kept across restarts)`,
        tags: ['jobs'],
        params: jobParams,
        response: { 200: jobSchema, ...errors(400, 401, 404) },
      },
      handler: async (request) => host[action](request.params.name),
    });
  }

  app.post('/events/:type', {
    schema: {
      summary: 'Publish an app event: every job whose `on` lists it is triggered with the body as params',
      tags: ['jobs'],
      params: eventParams,
      body: z.unknown().describe('the event payload'),
      response: { 202: publishResponse, ...errors(400, 401, 413, 415, 503) },
    },
    handler: async (request, reply) => {
      // An operator limited to some jobs triggers those only (`excluded` lists the others). No body
      // (or `null`) is no payload: the runs get their params as a trigger without any does.
      const result = await inCallerContext(request.headers, () =>
        locatedIn(
          (p) => (p === 'event' ? 'params.type' : `body.${p}`),
          () => host.publish(request.params.type, request.body ?? undefined, { allow: allowedJobs(request) }),
        ),
      );
      // A failure of ours (STORE_WRITE_FAILED) names files in its message; the client gets its meaning.
      const failures = result.errors.map((e) => ({ ...e, message: clientMessage(e.code, e.message) }));
      return reply.code(202).send({ ...result, errors: failures });
    },
  });

  app.get('/runs', {
    schema: { summary: 'Run history, newest first', tags: ['runs'], querystring: runsQuery, response: { 200: page(runSchema), ...errors(400, 401) } },
    handler: async (request) => host.runs(request.query),
  });

  app.get('/runs/:id', {
    schema: { summary: 'One run', tags: ['runs'], params: runParams, response: { 200: runSchema, ...errors(400, 401, 404) } },
    handler: async (request) => {
      const run = await host.run(request.params.id);
      if (!run) throw new HostError('RUN_NOT_FOUND', `no run with id "${request.params.id}"`, { runId: request.params.id });
      return run;
    },
  });

  app.post('/runs/:id/cancel', {
    schema: {
      summary:
        'Cancel a queued or running run; answers once its canceled end is recorded; 409 RUN_FINISHED when it already ended; 504 CANCEL_PENDING (cluster) when its host does not answer',
      tags: ['runs'],
      params: runParams,
      response: { 200: runSchema, ...errors(400, 401, 404, 409, 503, 504) },
    },
    handler: async (request) => host.cancel(request.params.id),
  });

  app.post('/runs/:id/retry', {
    schema: {
      summary: 'Replay a failed or canceled run as a new run',
      tags: ['runs'],
      params: runParams,
      response: { 202: triggerResponse, ...errors(400, 401, 404, 409, 413, 503) },
    },
    handler: async (request, reply) => reply.code(202).send(await inCallerContext(request.headers, () => host.retry(request.params.id))),
  });

  app.get('/cluster', {
    schema: {
      summary: 'The live hosts sharing the backend (this one alone on the local backend) and the jobs whose definition differs between them',
      tags: ['host'],
      response: { 200: clusterResponse, ...errors(401) },
    },
    handler: async () => host.cluster(),
  });

  app.get('/stats', {
    schema: { summary: 'Totals, success rate, per-job p50/p95, queue depths', tags: ['host'], response: { 200: statsResponse, ...errors(401) } },
    handler: async () => host.stats(),
  });

  app.get('/notifications', {
    schema: {
      summary: 'Notifications, newest first',
      tags: ['runs'],
      querystring: notificationsQuery,
      response: { 200: page(notificationSchema), ...errors(400, 401) },
    },
    handler: async (request) => {
      const { job, limit, before } = request.query;
      return await host.notifications({ ...(job !== undefined && { job }), ...(limit !== undefined && { limit }), ...(before !== undefined && { before }) });
    },
  });
}
