import { z } from 'zod';
import { deliveryErrorFields, deliveryFields, notificationFields } from '../contract/notification.js';
import { iso, segment } from './http-schemas.js';

/** The zod schemas of the notification routes (SPEC §12), as http-schemas.ts has the others'. */

const deliveryError = z.object(deliveryErrorFields);

export const deliverySchema = z.object({
  ...deliveryFields,
  id: z.string().describe('the same over every attempt: the webhook-id header'),
  attempts: z.number().describe('attempts made in the current series (a redeliver starts a new one)'),
  deliveredAt: iso.nullable(),
  nextAt: iso.nullable().describe('when the next attempt is due'),
});

const statusCounts = z.record(z.string(), z.number());

export const notificationSchema = z.object({
  ...notificationFields,
  at: iso,
  rule: z.string().describe('what sent it: a `notify.on` entry (failed, recovered, slow, missed, ...), `digest` (storm control), or `host` (a host alert)'),
  deliveries: z.array(deliverySchema),
  throttled: z.array(z.string()).optional().describe('destinations storm control held it back from (counted into their next digest)'),
  held: z
    .object({ count: z.number(), statuses: statusCounts, from: iso, to: iso })
    .optional()
    .describe('a digest: how many notifications were held back in the window, by status'),
  host: z.string().optional().describe('a host alert: the host'),
  condition: z.string().optional().describe('a host alert: the degradation (store-not-writable, backend-unavailable, ...)'),
});

export const notificationParams = z.strictObject({ id: segment.describe('notification id') });
export const destinationParams = z.strictObject({ name: segment.describe('destination name (notifications.destinations)') });
export const redeliverBody = z.strictObject({ destination: segment.optional().describe('only the delivery to this destination') }).nullish();

const destinationView = z.object({
  name: z.string(),
  kind: z.enum(['webhook', 'slack', 'discord', 'email', 'pagerduty']),
  target: z.string().describe('where it points, without secrets (hooks.slack.com/…)'),
});

export const destinationsResponse = z.object({ items: z.array(destinationView), open: z.number().describe('deliveries waiting for an attempt') });

export const testResponse = destinationView.extend({
  ok: z.boolean(),
  status: z.number().nullable().describe("the receiver's HTTP status (or SMTP reply code)"),
  body: z.string().nullable().describe("the start of the receiver's answer"),
  error: deliveryError.nullable(),
  durationMs: z.number(),
});
