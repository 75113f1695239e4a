import { z } from 'zod';
import { envString } from './env.js';
import { DESTINATION_NAME, type DeliveryError, NOTIFY_STATUSES, PRIORITIES } from './notification.js';
import { durationSchema, retrySchema } from './plugin-schema.js';
import type { RetryPolicy } from './retry.js';

/**
 * `notifications` in the config file (SPEC §12): named destinations, routes that pick them, and
 * how deliveries are retried. Destination fields may say `${NAME}`: read from the environment
 * when the config loads; a secret never leaves the host except towards its own receiver.
 */

/** A URL with one of `protocols` and a host; the message never repeats the value (it may hold a token). */
function urlOf(protocols: readonly string[], message: string) {
  return envString.pipe(
    z.string().refine((v) => {
      try {
        const u = new URL(v);
        return protocols.includes(u.protocol) && u.hostname !== '';
      } catch {
        return false;
      }
    }, message),
  );
}

const httpUrl = urlOf(['http:', 'https:'], 'expected an http:// or https:// URL');
const smtpUrl = urlOf(['smtp:', 'smtps:'], 'expected an smtp:// or smtps:// URL such as smtp://user:pass@mail.example.com:587');

// Standard Webhooks secrets: `whsec_` and padded base64 (the `standardwebhooks` libraries accept it with
// or without the prefix, of any length; the specification recommends 24 to 64 bytes, which
// `whsec_` + `openssl rand -base64 32` gives). Padding is checked: the libraries refuse a secret without it.
const whsec = envString.pipe(
  z
    .string()
    .regex(
      /^(whsec_)?(?=[A-Za-z0-9+/=]{4})(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/,
      'expected a secret like whsec_<base64>, padded (whsec_ and `openssl rand -base64 32`)',
    ),
);

const address = envString.pipe(z.string().regex(/^[^\s@<>]+@[^\s@<>]+$|^.*<[^\s@<>]+@[^\s@<>]+>$/, 'expected an email address'));

/** Headers the host writes itself: the body's length and framing, and the Standard Webhooks signature. */
const RESERVED_HEADERS = new Set(['content-length', 'transfer-encoding', 'webhook-id', 'webhook-timestamp', 'webhook-signature']);

// A header's name is an HTTP token; its value has no line break or control character (Node refuses
// either at every attempt, which would retry a delivery that can never be sent). Neither message
// repeats the value: it may hold a token.
const headerName = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "expected an HTTP header name (letters, digits and !#$%&'*+.^_`|~-)")
  .refine((name) => !RESERVED_HEADERS.has(name.toLowerCase()), 'the host writes this header itself');
const headerValue = envString.pipe(z.string().regex(/^[\t\x20-\x7e\x80-\xff]*$/, 'expected a header value without line breaks or control characters'));

export const destinationSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('webhook'), url: httpUrl, secret: whsec.optional(), headers: z.record(headerName, headerValue).optional() }),
  z.strictObject({ kind: z.literal('slack'), url: httpUrl }),
  z.strictObject({ kind: z.literal('discord'), url: httpUrl }),
  z.strictObject({ kind: z.literal('email'), smtp: smtpUrl, from: address, to: z.array(address).min(1).max(100) }),
  z.strictObject({
    kind: z.literal('pagerduty'),
    routingKey: envString.pipe(z.string().min(1, 'expected a routing key')),
    url: httpUrl.default('https://events.pagerduty.com/v2/enqueue'),
  }),
]);

export type Destination = z.output<typeof destinationSchema>;

/** A destination as the API and the dashboard show it: where it points, without any secret. */
export interface DestinationView {
  name: string;
  kind: Destination['kind'];
  target: string;
}

/** `GET /notifications/destinations`: the destinations, and how many deliveries wait for an attempt. */
export interface DestinationsView {
  items: DestinationView[];
  open: number;
}

/** What a test message to a destination got (`jobhost notify test`, the dashboard's "Send test"): the receiver's answer. */
export interface TestResult extends DestinationView {
  ok: boolean;
  status: number | null;
  body: string | null;
  error: DeliveryError | null;
  durationMs: number;
}

const destinationName = z.string().regex(DESTINATION_NAME, 'expected a destination name (letters, digits, _ . -)');

/** A route: every field given must match (a list matches any of its values; `jobs` and `tags` take `*` globs). */
const routeSchema = z.strictObject({
  to: z.array(destinationName).min(1),
  jobs: z.array(z.string().min(1).max(200)).optional(),
  tags: z.array(z.string().min(1).max(100)).optional(),
  priority: z.array(z.enum(PRIORITIES)).optional(),
  status: z.array(z.enum(NOTIFY_STATUSES)).optional(),
});

export type NotificationRoute = z.output<typeof routeSchema>;

/** How deliveries are retried when `notifications.retry` says nothing: about an hour. */
export const DEFAULT_DELIVERY_RETRY: RetryPolicy = { attempts: 12, backoff: 'exponential', delayMs: 5_000, maxDelayMs: 15 * 60_000, jitter: 0.2 };

export const notificationsSchema = z
  .strictObject({
    destinations: z.record(destinationName, destinationSchema).default({}),
    routes: z.array(routeSchema).max(1000).default([]),
    retry: retrySchema.optional(),
    // Per attempt: a receiver that has not answered by then is tried again later.
    timeout: durationSchema.refine((ms) => ms > 0, 'expected more than 0: a receiver needs time to answer').default(10_000),
    // Deliveries in flight at once on this host.
    concurrency: z.number().int().min(1).max(1000).default(16),
    // Storm control: at most one message per job and destination per window (0: off); the rest are counted into a digest.
    throttle: durationSchema.default(60_000),
    // Host alerts: the host's own degradations (what /ready reports) go here when each starts and ends.
    host: z.strictObject({ to: z.array(destinationName).max(50).default([]) }).prefault({}),
    // Stall watchdog: runs waiting with free capacity this long mean the dispatcher stopped taking work.
    stallAfter: durationSchema.default(30_000),
  })
  .prefault({})
  .superRefine((n, ctx) => {
    n.host.to.forEach((name, j) => {
      if (!Object.hasOwn(n.destinations, name))
        ctx.addIssue({ code: 'custom', path: ['host', 'to', j], message: `no destination "${name}" in notifications.destinations` });
    });
    n.routes.forEach((route, i) => {
      route.to.forEach((name, j) => {
        if (!Object.hasOwn(n.destinations, name)) {
          ctx.addIssue({ code: 'custom', path: ['routes', i, 'to', j], message: `no destination "${name}" in notifications.destinations` });
        }
      });
    });
  });

export type NotificationsConfig = z.output<typeof notificationsSchema>;

/** `notifications.retry` over the defaults. */
export function deliveryRetry(config: NotificationsConfig): RetryPolicy {
  const r = config.retry;
  const d = DEFAULT_DELIVERY_RETRY;
  return {
    attempts: r?.attempts ?? d.attempts,
    backoff: r?.backoff ?? d.backoff,
    delayMs: r?.delay ?? d.delayMs,
    maxDelayMs: r?.maxDelay ?? d.maxDelayMs,
    jitter: r?.jitter ?? d.jitter,
  };
}
