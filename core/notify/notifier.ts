import type { DeliveryAttempt, DeliveryOutcome } from '../contract/attempt.js';
import { type Clock, isoTime } from '../contract/clock.js';
import type { Config } from '../contract/config.js';
import type { Logger } from '../contract/logger.js';
import type { Delivery, Notification } from '../contract/notification.js';
import { type Destination, type DestinationView, deliveryRetry, type TestResult } from '../contract/notify-config.js';
import { retryDelay } from '../contract/retry.js';
import { outgoing } from './payloads.js';
import { destinationsFor } from './routing.js';
import { type SendResult, send } from './send.js';

/**
 * Delivery of notifications, the engine's side (SPEC §12): which destinations a notification
 * goes to, one attempt of a delivery and what its answer means under `notifications.retry`,
 * test messages, and destinations as they may be shown (no secret). The backend records the
 * deliveries and decides when and on which host each attempt is made.
 */

export interface NotifierOptions {
  /** The config in force (live edits apply to the next attempt). */
  config(): Config;
  clock: Clock;
  random: () => number;
  logger: Logger;
  /** This host's id (PagerDuty's `source`). */
  hostId: string;
  /** Where this host serves its dashboard, while it listens: the runs' links when `server.publicUrl` is unset. */
  servedAt?: () => string | null;
}

/** A Retry-After longer than this is capped: a receiver cannot park a delivery for days. */
const MAX_RETRY_AFTER = 3_600_000;

function shortUrl(value: string): string {
  try {
    const u = new URL(value);
    // A path may hold a token (Slack, Discord and most webhook URLs do): the host alone.
    return u.pathname === '/' || u.pathname === '' ? `${u.protocol}//${u.host}` : `${u.protocol}//${u.host}/…`;
  } catch {
    return '…';
  }
}

/** Where a destination points, fit to show. */
export function describeDestination(name: string, d: Destination): DestinationView {
  let target: string;
  if (d.kind === 'email') {
    const u = new URL(d.smtp);
    target = `${u.protocol}//${u.host} → ${d.to.join(', ')}`;
  } else target = shortUrl(d.url);
  return { name, kind: d.kind, target };
}

/**
 * Every value of a destination that must never be shown: secret, routing key, URL (slack, discord,
 * webhook), SMTP password, header values. A receiver may echo a part of a URL alone, so each path
 * segment and query value that looks like a token is one too. Short or plain values would cut
 * ordinary words out of a receiver's answer: a password, routing key or secret counts from 4
 * characters, a header value from 8 (and what follows its scheme, `Bearer <token>`, from 6), the
 * URL's path of two segments or more and its query as a whole and each query value from 6, and one
 * path segment (a path of one too) when it looks generated (8 characters with a digit, or 16): `notifications` or `services` are words;
 * `T0A1B2C3D`, a Slack token or a Discord id are not. `keys`: the values a receiver may echo in
 * part (a routing key, a webhook secret, a password, a header's token, the value of a header or
 * query parameter named like a credential: `x-api-key`, `?token=`).
 */
/**
 * A URL's credentials as they travel encoded, which a receiver may echo: the `Basic` value Node
 * sends for `user:password@` (base64 of the decoded pair), and SMTP AUTH's (PLAIN: NUL user NUL
 * password; LOGIN: the password alone), each in base64.
 */
function credentials(u: URL): string[] {
  const decoded = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  const [user, password] = [decoded(u.username), decoded(u.password)];
  const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
  return [b64(`${user}:${password}`), b64(`\0${user}\0${password}`), b64(password)];
}

function secretsOf(d: Destination): { whole: string[]; keys: string[] } {
  const given: string[] = [];
  const headers: string[] = [];
  const fromUrl: string[] = [];
  const parts: string[] = [];
  /** Tokens: what follows a header value's scheme (`Bearer <token>`), a secret-named header's or query parameter's value; echoed whole or in part. */
  const tokens: string[] = [];
  const both = (s: string): string[] => {
    try {
      return [s, decodeURIComponent(s)];
    } catch {
      return [s];
    }
  };
  if (d.kind === 'email') {
    const u = new URL(d.smtp);
    if (u.password) given.push(...both(u.password), ...credentials(u));
  } else {
    fromUrl.push(d.url);
    const u = new URL(d.url);
    if (u.password) given.push(...both(u.password), ...credentials(u));
    // A path of one segment is that segment: cut when it looks generated (below), not when it is a word (`/notifications`).
    const segments = u.pathname.split('/');
    if (segments.filter(Boolean).length > 1) fromUrl.push(u.pathname, u.pathname.slice(1));
    for (const segment of segments) parts.push(...both(segment));
    if (u.search) fromUrl.push(u.search.slice(1));
    // A query value is a parameter's, most often a key or a token: from 6 characters, whatever it
    // looks like; in part too when its name says so (`?token=`, not `?date=`).
    for (const [name, value] of u.searchParams) {
      fromUrl.push(value);
      if (SECRET_NAME.test(name)) tokens.push(value);
    }
  }
  if (d.kind === 'webhook') {
    if (d.secret) given.push(d.secret, d.secret.replace(/^whsec_/, ''));
    for (const [name, v] of Object.entries(d.headers ?? {})) {
      headers.push(v);
      // A receiver refusing `Authorization: Bearer tok_…` echoes the token, not the whole value:
      // what follows a scheme is a token whatever it looks like; a secret-named header's value is one.
      const [first = '', ...rest] = v.trim().split(/\s+/);
      if (rest.length > 0 && /^[A-Za-z][A-Za-z0-9-]*$/.test(first)) tokens.push(...rest);
      else if (SECRET_NAME.test(name)) tokens.push(v);
    }
  }
  if (d.kind === 'pagerduty') given.push(d.routingKey);
  const generated = (s: string): boolean => s.length >= 16 || (s.length >= 8 && /\d/.test(s));
  const whole = [
    ...given.filter((s) => s.length >= 4),
    ...headers.filter((s) => s.length >= 8),
    ...fromUrl.filter((s) => s.length >= 6),
    ...parts.filter(generated),
    ...tokens.filter((s) => s.length >= 6),
  ];
  return { whole, keys: [...given, ...tokens].filter((s) => s.length >= FRAGMENT) };
}

/** A header or query parameter name that says its value is a credential. */
const SECRET_NAME = /auth|token|key|secret|pass|sig|session|cookie|credential/i;

/** The shortest part of a routing key, webhook secret or password that is cut on its own. */
const FRAGMENT = 8;

/** A run of a key this long is cut whatever it looks like; a shorter one unless it is a plain word. */
const FRAGMENT_ANY = 16;

/** Letters only, and no capital after a small letter: `Password`, `ROUTING`, not `R0UT1NG` nor `HeBYgEtb`. */
const plainWord = (s: string): boolean => /^[A-Za-z]+$/.test(s) && !/[a-z][A-Z]/.test(s);

interface Secrets {
  whole: string[];
  /** Every FRAGMENT-character part of a key. */
  grams: Set<string>;
}

/** Per destinations object (a config's, frozen; a live edit brings a new one): redact runs on every failed attempt. */
const secretsCache = new WeakMap<object, Secrets>();

function secretsIn(destinations: Readonly<Record<string, Destination>>): Secrets {
  let found = secretsCache.get(destinations);
  if (found) return found;
  const each = Object.values(destinations).map(secretsOf);
  const grams = new Set<string>();
  for (const key of each.flatMap((e) => e.keys)) for (let i = 0; i + FRAGMENT <= key.length; i++) grams.add(key.slice(i, i + FRAGMENT));
  found = { whole: each.flatMap((e) => e.whole), grams };
  secretsCache.set(destinations, found);
  return found;
}

/**
 * The runs of `text` made of FRAGMENT-character parts of a key (a receiver that echoes a key in
 * part, "Routing key R0UT1NGKEY is invalid"), as spans; a run that is a plain word shorter than
 * FRAGMENT_ANY stays, so a key made of words does not cut those words from every answer. One look-up
 * per character of the text: answers are short (at most 1,000 characters kept).
 */
function fragments(text: string, grams: ReadonlySet<string>, spans: [number, number][]): void {
  if (grams.size === 0) return;
  let from = -1;
  let to = -1;
  const close = (): void => {
    if (from >= 0 && (to - from >= FRAGMENT_ANY || !plainWord(text.slice(from, to)))) spans.push([from, to]);
  };
  for (let i = 0; i + FRAGMENT <= text.length; i++) {
    if (!grams.has(text.slice(i, i + FRAGMENT))) continue;
    if (i > to) {
      close();
      from = i;
    }
    to = i + FRAGMENT;
  }
  close();
}

/**
 * `text` with every secret of every destination cut out (a receiver may echo anything it was ever
 * sent), every run of 8 characters or more of a key (see `fragments`), and, unless told the text is whole (`cutShort: false`), a tail that is the start of a
 * secret too (a text cut short may have been cut in one). Only an answer actually cut short
 * should lose its tail: on a whole one the rule cuts plain words that start a URL's path.
 */
export function redact(text: string, destinations: Readonly<Record<string, Destination>>, options: { cutShort?: boolean } = {}): string {
  const { whole, grams } = secretsIn(destinations);
  const cutShort = options.cutShort ?? true;
  // Every place a secret stands in the text, or a part of a key, or a secret starts at its end (cut
  // short), as spans; spans that overlap (a URL and its parts) become one cut, so a secret inside
  // another is cut with it.
  const spans: [number, number][] = [];
  fragments(text, grams, spans);
  for (const s of whole) {
    for (let i = text.indexOf(s); i >= 0; i = text.indexOf(s, i + 1)) spans.push([i, i + s.length]);
    if (!cutShort) continue;
    for (let k = Math.min(s.length - 1, text.length); k >= 4; k--) {
      if (text.endsWith(s.slice(0, k))) {
        spans.push([text.length - k, text.length]);
        break;
      }
    }
  }
  if (spans.length === 0) return text;
  spans.sort((a, b) => a[0] - b[0]);
  let out = '';
  let at = 0;
  let [from, to] = spans[0]!;
  for (const [a, b] of spans) {
    if (a <= to) {
      to = Math.max(to, b);
      continue;
    }
    out += `${text.slice(at, from)}…`;
    at = to;
    [from, to] = [a, b];
  }
  return `${out}${text.slice(at, from)}…${text.slice(to)}`;
}

export class Notifier {
  readonly #o: NotifierOptions;
  readonly #closing = new AbortController();

  constructor(options: NotifierOptions) {
    this.#o = options;
  }

  /** The destinations a new notification goes to: its job's `notify.to`, then the routes that match it. */
  destinationsFor(n: Omit<Notification, 'deliveries'>, to: readonly string[] | undefined): string[] {
    return destinationsFor(n, to, this.#o.config().notifications.routes);
  }

  /** One `pending` delivery per destination, due at once. */
  deliveries(n: Omit<Notification, 'deliveries'>, names: readonly string[]): Delivery[] {
    return names.map((destination, i) => ({
      // Standard Webhooks' message id: the same over every attempt and every host.
      id: `msg_${n.id}_${i}`,
      destination,
      status: 'pending',
      attempts: 0,
      lastError: null,
      deliveredAt: null,
      nextAt: n.at,
    }));
  }

  /** One attempt (`BackendHooks.deliver`): sends, then reads the answer against `notifications.retry`. */
  async deliver({ notification, delivery, attempt }: DeliveryAttempt, signal: AbortSignal): Promise<DeliveryOutcome> {
    const config = this.#o.config();
    const d = Object.hasOwn(config.notifications.destinations, delivery.destination) ? config.notifications.destinations[delivery.destination] : undefined;
    if (!d) {
      const error = { code: 'DESTINATION_NOT_FOUND', message: `no destination "${delivery.destination}" in notifications.destinations` };
      this.#o.logger.warn(
        { code: error.code, job: notification.job, notification: notification.id, destination: delivery.destination },
        'notification not delivered',
      );
      return { status: 'dead', error };
    }
    const sent = await this.#send(d, notification, delivery.id, signal);
    if (sent.ok) return { status: 'delivered' };
    // Made of the answer redacted already (send.ts knew whether it was cut short): whole from here on.
    const error = { ...sent.error!, message: redact(sent.error!.message, config.notifications.destinations, { cutShort: false }) };
    const policy = deliveryRetry(config.notifications);
    const log = { job: notification.job, notification: notification.id, destination: delivery.destination, attempt, error };
    if (error.code === 'DELIVERY_ABORTED') {
      // Cut short by the host's stop, not by the receiver: never dead for it (its last attempt
      // included), and no warning per delivery in flight; it goes again after the next start.
      this.#o.logger.debug(log, 'notification delivery cut short by the stop');
      return { status: 'retrying', delayMs: 0, error };
    }
    if (!sent.retry || attempt >= policy.attempts) {
      this.#o.logger.warn(log, 'notification delivery is dead');
      return { status: 'dead', error };
    }
    const delayMs = sent.retryAfterMs !== null ? Math.min(sent.retryAfterMs, MAX_RETRY_AFTER) : retryDelay(policy, attempt, this.#o.random);
    this.#o.logger.info({ ...log, delayMs }, 'notification delivery failed; trying again');
    return { status: 'retrying', delayMs, error };
  }

  /** Sends a test message to one destination now (nothing recorded) and reports the receiver's answer; undefined for an unknown name. */
  async test(name: string): Promise<TestResult | undefined> {
    const destinations = this.#o.config().notifications.destinations;
    const d = Object.hasOwn(destinations, name) ? destinations[name] : undefined;
    if (!d) return undefined;
    const now = this.#o.clock.now();
    const id = `test_${now.toString(36)}_${Math.floor(this.#o.random() * 36 ** 6).toString(36)}`;
    const n: Notification = {
      id,
      job: 'jobhost-test',
      runId: '',
      status: 'succeeded',
      title: 'jobhost test message',
      message: `A test message from jobhost (host ${this.#o.hostId}) to destination "${name}".`,
      priority: 'low',
      tags: ['test'],
      at: isoTime(now),
      rule: 'succeeded',
      deliveries: [],
    };
    const sent = await this.#send(d, n, `msg_${id}`, this.#closing.signal, true);
    return {
      ...describeDestination(name, d),
      ok: sent.ok,
      status: sent.status,
      body: sent.body === null ? null : redact(sent.body, destinations, { cutShort: false }),
      error: sent.error && { ...sent.error, message: redact(sent.error.message, destinations, { cutShort: false }) },
      durationMs: sent.durationMs,
    };
  }

  /**
   * Whether the deliveries to `destination` keep the order of their incident (`incidentOf`): a
   * PagerDuty resolve that overtook its trigger (retried after a 429 or a 5xx) would leave the
   * incident open, so each waits until the earlier ones to the same destination have ended.
   */
  ordered(destination: string): boolean {
    const destinations = this.#o.config().notifications.destinations;
    return Object.hasOwn(destinations, destination) && destinations[destination]!.kind === 'pagerduty';
  }

  /** The configured destinations, fit to show. */
  destinations(): DestinationView[] {
    return Object.entries(this.#o.config().notifications.destinations).map(([name, d]) => describeDestination(name, d));
  }

  /** Ends test messages in flight (each attempt closes its own SMTP connection). */
  close(): void {
    this.#closing.abort();
  }

  #send(d: Destination, n: Notification, id: string, signal: AbortSignal, test = false): Promise<SendResult> {
    const config = this.#o.config();
    const base = config.server.publicUrl ?? this.#o.servedAt?.()?.replace(/\/+$/, '') ?? null;
    return send(d, outgoing(n, base), {
      id,
      // Wall time, not the injected clock: receivers check the signed timestamp against theirs.
      now: Date.now(),
      timeoutMs: config.notifications.timeout,
      signal,
      source: this.#o.hostId,
      test,
      redact: (text, cutShort) => redact(text, config.notifications.destinations, { cutShort }),
    });
  }
}
