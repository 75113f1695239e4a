import { z } from 'zod';
import { ROLES, type WhoAmI } from '../contract/access.js';
import { AUDIT_MAX_LIMIT, AUDIT_OUTCOMES } from '../contract/audit.js';
import type { Host } from '../engine/host.js';
import { errors, page, queryInt } from './http-schemas.js';
import { actionsOf } from './route-roles.js';
import type { JobhostApp } from './routes.js';

const text = z.string().min(1).max(200);

const auditQuery = z.strictObject({
  token: text.optional().describe('a token name'),
  action: text.optional().describe('an action, or a `*` glob (`job.*`)'),
  target: text.optional().describe('a target, or a `*` glob (`job:deploy-*`)'),
  outcome: z.enum(AUDIT_OUTCOMES).optional(),
  limit: queryInt(1, AUDIT_MAX_LIMIT).optional().describe('page size (default 50)'),
  before: text.optional().describe('cursor: the `next` of the previous page'),
});

const auditRecord = z.object({
  id: z.string(),
  at: z.string().describe('ISO 8601 time'),
  token: z.string().describe("the token's name: `admin` for server.token, `anonymous` when the host has no token"),
  action: z
    .string()
    .describe(
      'job.run, job.enable, job.disable, job.pause, job.resume, queue.pause, queue.resume, event.publish, run.cancel, run.retry, runs.retry, runs.cancel, notification.redeliver, destination.test, store.damage.ack',
    ),
  target: z.string().describe('job:<name>, queue:<name>, run:<id>, notification:<id>, event:<type>, destination:<name>, runs, store'),
  ip: z.string(),
  outcome: z.enum(AUDIT_OUTCOMES),
  status: z.number().describe('the HTTP status of the answer'),
  code: z.string().nullable().describe('the error code, when refused or failed'),
  host: z.string().describe('the host that took the request'),
});

const whoamiResponse = z.object({
  name: z.string().describe('`admin` for server.token; `anonymous` when the host has no token'),
  role: z.enum(ROLES),
  jobs: z.array(z.string()).nullable().describe('the `*` globs of the jobs an operator may act on; null: every job'),
  actions: z
    .array(z.string())
    .describe(
      'the audit actions the token may ask (`jobs` still limits those on a job, and leaves out those on a queue): what the dashboard shows buttons for',
    ),
});

/** `GET /whoami` and `GET /audit` (SPEC §14). */
export function registerAccessRoutes(app: JobhostApp, host: Host): void {
  app.get('/whoami', {
    schema: { summary: "The request's token: its name, role and jobs", tags: ['access'], response: { 200: whoamiResponse, ...errors(401) } },
    handler: async (request): Promise<WhoAmI> => {
      const who = request.principal!;
      // From the one table of routes and roles, so a client (the dashboard) keeps no copy of it.
      return { name: who.name, role: who.role, jobs: who.jobs === null ? null : [...who.jobs], actions: actionsOf(who.role, who.jobs) };
    },
  });

  app.get('/audit', {
    schema: {
      summary: 'The audit trail: every change asked of the API, made or refused, newest first',
      tags: ['access'],
      querystring: auditQuery,
      response: { 200: page(auditRecord), ...errors(400, 401, 503) },
    },
    handler: async (request) => host.audit.list(request.query),
  });
}
