import { LOG_MAX_BYTES, LOG_MAX_LINES } from '../contract/run-log.js';
import { inCallerContext } from '../contract/tracing.js';
import type { BulkResult } from '../contract/views.js';
import type { Host } from '../engine/host.js';
import { allowedJobs } from './access.js';
import { clientMessage } from './http-errors.js';
import { bulkBody, bulkResponse, errors, runLogResponse, runParams, seriesQuery, seriesResponse } from './http-schemas.js';
import type { JobhostApp } from './routes.js';

/** A bulk answer's per-run errors as a client may see them: a server-side failure's message is not passed on. */
const safeMessages = (result: BulkResult): BulkResult => ({
  ...result,
  errors: result.errors.map((e) => ({ ...e, message: clientMessage(e.code, e.message) })),
});

/** Routes that look at runs over time: the series behind the charts, a run's log, bulk actions on history. */
export function registerInsightRoutes(app: JobhostApp, host: Host): void {
  app.get('/stats/series', {
    schema: {
      summary: 'Runs per time bucket: finished by status, duration p50/p95, backlog at the bucket end',
      description: 'Answered from an index kept as runs finish, not from a scan of history.',
      tags: ['host'],
      querystring: seriesQuery,
      response: { 200: seriesResponse, ...errors(400, 401, 404) },
    },
    handler: async (request) => host.series(request.query.window, request.query.job),
  });

  app.get('/runs/:id/logs', {
    schema: {
      summary: "A run's log: the lines its handler wrote through ctx.log",
      description: `The last ${LOG_MAX_LINES} lines or ${LOG_MAX_BYTES / 1024} KiB, whichever is smaller; \`dropped\` counts earlier lines that were cut.`,
      tags: ['runs'],
      params: runParams,
      response: { 200: runLogResponse, ...errors(400, 401, 404) },
    },
    handler: async (request) => {
      const { run, log } = await host.runLog(request.params.id);
      const note =
        log.dropped > 0
          ? `the first ${log.dropped} line${log.dropped === 1 ? ' was' : 's were'} cut: a run keeps its last ${LOG_MAX_LINES} lines or ${LOG_MAX_BYTES / 1024} KiB of them, whichever is smaller`
          : null;
      return { runId: run.id, job: run.job, status: run.status, traceId: run.traceId ?? null, lines: log.lines, dropped: log.dropped, note };
    },
  });

  app.post('/runs/retry', {
    schema: {
      summary: 'Retry every failed run (of a job, or of all jobs) that ended in a time range',
      description:
        'Each becomes a new run (as POST /runs/:id/retry); runs already replayed are left out. With `dryRun` the answer counts and lists them and ' +
        'touches nothing: send the same filter with its `to` to retry exactly those.',
      tags: ['runs'],
      body: bulkBody,
      response: { 200: bulkResponse, ...errors(400, 401, 404, 413, 415, 503) },
    },
    // Each replay continues the caller's trace, as POST /runs/:id/retry does (SPEC §15).
    handler: async (request) => safeMessages(await inCallerContext(request.headers, () => host.retryFailed({ ...request.body, allow: allowedJobs(request) }))),
  });

  app.post('/runs/cancel', {
    schema: {
      summary: 'Cancel every queued run (of a job, or of all jobs) created in a time range',
      description: 'A run that started meanwhile is left running (RUN_NOT_WAITING in `errors`). With `dryRun` the answer counts and lists them.',
      tags: ['runs'],
      body: bulkBody,
      response: { 200: bulkResponse, ...errors(400, 401, 404, 413, 415, 503) },
    },
    handler: async (request) => safeMessages(await host.cancelQueued({ ...request.body, allow: allowedJobs(request) })),
  });
}
