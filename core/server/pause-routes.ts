import { z } from 'zod';
import { HostError } from '../contract/errors.js';
import { queueNameSchema } from '../contract/plugin-schema.js';
import type { Host } from '../engine/host.js';
import { errors, jobParams, jobSchema } from './http-schemas.js';
import type { JobhostApp } from './routes.js';

const queueParams = z.strictObject({ name: queueNameSchema.max(100).describe('queue name (`queues` in the config)') });

const queueResponse = z.object({
  queue: z.string(),
  paused: z.boolean(),
  jobs: z.array(z.string()).describe('the jobs registered on this host whose runs wait in the queue'),
});

const HELD =
  'Triggers and schedule fires are still accepted (202) and their runs recorded; none starts until resumed. Running runs finish. Kept across restarts; cluster-wide in cluster mode.';

/** `POST /jobs/:name/pause|resume` and `POST /queues/:name/pause|resume` (SPEC §13). */
export function registerPauseRoutes(app: JobhostApp, host: Host): void {
  for (const action of ['pause', 'resume'] as const) {
    const paused = action === 'pause';
    app.post(`/jobs/:name/${action}`, {
      schema: {
        summary: paused ? 'Pause a job: its runs wait' : 'Resume a paused job: its waiting runs start',
        description: `${HELD} Answers the job (\`paused\`); a repeated call changes nothing. 404 JOB_NOT_FOUND.`,
        tags: ['jobs'],
        params: jobParams,
        response: { 200: jobSchema, ...errors(400, 401, 403, 404, 503) },
      },
      handler: async (request) => {
        await host.pauses.job(request.params.name, paused);
        const view = host.job(request.params.name);
        if (!view) throw new HostError('JOB_NOT_FOUND', `no job named "${request.params.name}"`, { job: request.params.name });
        return view;
      },
    });
    app.post(`/queues/:name/${action}`, {
      schema: {
        summary: paused ? 'Pause a queue: runs of every job in it wait' : 'Resume a paused queue',
        description: `${HELD} A job's own pause and its queue's are apart: resuming one leaves the other. 404 QUEUE_NOT_FOUND.`,
        tags: ['jobs'],
        params: queueParams,
        response: { 200: queueResponse, ...errors(400, 401, 403, 404, 503) },
      },
      handler: async (request) => host.pauses.queue(request.params.name, paused),
    });
  }
}
