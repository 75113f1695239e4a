import type { Host } from '../engine/host.js';
import { errors } from './http-schemas.js';
import { destinationParams, destinationsResponse, notificationParams, notificationSchema, redeliverBody, testResponse } from './notification-schemas.js';
import type { JobhostApp } from './routes.js';

/** Routes of delivered notifications (SPEC §12): one notification, redeliver, destinations and a test message. */
export function registerNotifyRoutes(app: JobhostApp, host: Host): void {
  app.get('/notifications/destinations', {
    schema: {
      summary: 'The configured destinations, without secrets, and how many deliveries wait',
      tags: ['notifications'],
      response: { 200: destinationsResponse, ...errors(401) },
    },
    handler: async () => ({ items: host.deliveries.destinations(), open: host.deliveries.open() }),
  });

  app.post('/notifications/destinations/:name/test', {
    schema: {
      summary: "Sends a test message to a destination now and answers with the receiver's answer (nothing is recorded)",
      tags: ['notifications'],
      params: destinationParams,
      response: { 200: testResponse, ...errors(400, 401, 404) },
    },
    handler: async (request) => host.deliveries.test(request.params.name),
  });

  app.get('/notifications/:id', {
    schema: {
      summary: 'One notification with its deliveries',
      tags: ['notifications'],
      params: notificationParams,
      response: { 200: notificationSchema, ...errors(400, 401, 404) },
    },
    handler: async (request) => host.deliveries.get(request.params.id),
  });

  app.post('/notifications/:id/redeliver', {
    schema: {
      summary: 'Queues the deliveries of a notification again (all, or the one to `destination`) under the same ids',
      tags: ['notifications'],
      params: notificationParams,
      body: redeliverBody,
      response: { 202: notificationSchema, ...errors(400, 401, 404) },
    },
    handler: async (request, reply) => reply.code(202).send(await host.deliveries.redeliver(request.params.id, request.body?.destination)),
  });
}
