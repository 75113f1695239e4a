/**
 * Follows up on a new shipment 30 seconds after the app publishes `shipment.created`
 * (`POST /events/shipment.created` with `{ "orderId": "A-1001" }`, or `host.publish(...)`).
 * Shows: app-event triggers with a delay, params from the event payload, a dedup-friendly
 * job (one run per order at a time), progress updates, and emitting a follow-up event.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { definePlugin } from '../core/index.js';

const STEPS = ['check label', 'check carrier pickup', 'check customer email', 'record follow-up'];

export default definePlugin({
  name: 'shipment-follow-up',
  description: 'Follow up on a shipment 30s after shipment.created',
  on: [{ event: 'shipment.created', delay: '30s' }],
  params: z.object({
    orderId: z.string().min(1),
    carrier: z.string().default('local'),
  }),
  concurrency: 4,
  retry: { attempts: 2, delay: '5s' },
  timeout: '1m',
  notify: {
    title: 'Shipment {{params.orderId}} followed up',
    customTitle: true,
    on: ['succeeded', 'failed'],
    tags: ['shipping'],
  },
  async handler(ctx) {
    const checked: string[] = [];
    for (const [i, step] of STEPS.entries()) {
      ctx.progress(i / STEPS.length, step);
      // Stand-in for the real calls (carrier API, mailer); it honours cancel and timeout.
      await sleep(200, undefined, { signal: ctx.signal });
      checked.push(step);
    }
    ctx.progress(1, 'done');
    ctx.emit('shipment.followed-up', { orderId: ctx.params.orderId });
    return { orderId: ctx.params.orderId, carrier: ctx.params.carrier, checked };
  },
});
