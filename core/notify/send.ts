import http from 'node:http';
import https from 'node:https';
import type { Transporter } from 'nodemailer';
import type { DeliveryError } from '../contract/notification.js';
import type { Destination } from '../contract/notify-config.js';
import { httpBody, mail, type OutgoingNotification } from './payloads.js';

/**
 * One attempt to hand a notification to a receiver, over HTTP (webhook, Slack, Discord,
 * PagerDuty) or SMTP (email), and what the answer means: delivered, worth another attempt
 * (network errors, time-outs, 5xx, 408, 429, SMTP 4xx, garbage), or refused for good (other
 * 4xx, 3xx, SMTP 5xx). Messages name no URL and no credential.
 */

export interface SendResult {
  ok: boolean;
  /** Worth another attempt (meaningless when ok). */
  retry: boolean;
  error: DeliveryError | null;
  /** The receiver's HTTP status (or SMTP reply code), when it answered. */
  status: number | null;
  /** The start of the receiver's answer (at most 1,000 characters). */
  body: string | null;
  /** What the receiver asked for in `Retry-After`, in ms. */
  retryAfterMs: number | null;
  durationMs: number;
}

export interface SendContext {
  /** The delivery's id: `webhook-id`, and the mail's Message-ID. */
  id: string;
  /** Time of this attempt (ms), signed into `webhook-timestamp`. */
  now: number;
  timeoutMs: number;
  /** Aborted when the host closes. */
  signal: AbortSignal;
  /** Who sends (the host id), for PagerDuty's `source`. */
  source: string;
  /** A test message (`jobhost notify test`): PagerDuty gets a trigger of its own, not a resolve. */
  test?: boolean;
  /**
   * Cuts secrets out of a receiver's answer; applied before anything is shortened, so no secret
   * is cut in two. `cutShort`: the answer itself was cut (only its start was kept), so a tail
   * that starts a secret is cut too.
   */
  redact(text: string, cutShort: boolean): string;
}

const EXCERPT = 1000;

/**
 * An SMTP transport for one attempt: pooled with one connection, so that `close()` ends that
 * connection (a transport without a pool has no handle on it), whatever the server is doing.
 * The URL is read as nodemailer reads a connection URL, so its query options apply as they do in
 * any nodemailer project (`?ignoreTLS=true`, `?requireTLS=true`, `?tls.rejectUnauthorized=false`
 * for a server with a self-signed certificate), except the pool and the time limits, which are the
 * host's (`notifications.timeout`): a stop must be able to end the connection.
 */
async function mailTransport(smtp: string, timeoutMs: number): Promise<Transporter> {
  // Loaded on the first mail: most hosts never send one, and nodemailer is a large part of a start-up.
  const [{ createTransport }, { parseConnectionUrl }] = await Promise.all([import('nodemailer'), import('nodemailer/lib/shared')]);
  return createTransport({
    ...parseConnectionUrl(smtp),
    pool: true,
    maxConnections: 1,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
  } as Parameters<typeof createTransport>[0]);
}

/** Standard Webhooks' signer, loaded on the first signed delivery (not at start-up). */
const signer = async (): Promise<typeof import('standardwebhooks').Webhook> => (await import('standardwebhooks')).Webhook;

function result(start: number, fields: Partial<SendResult>): SendResult {
  return { ok: false, retry: false, error: null, status: null, body: null, retryAfterMs: null, durationMs: Date.now() - start, ...fields };
}

/** `Retry-After`: seconds or an HTTP date; null when absent or unreadable. */
export function retryAfter(value: string | null, now: number): number | null {
  if (value === null || value.trim() === '') return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return seconds >= 0 ? Math.round(seconds * 1000) : null;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** The receiver's answer to one POST: status, headers, and the start of the body. */
interface Answer {
  status: number;
  retryAfter: string | null;
  body: string;
  /** The body was longer than what `body` kept. */
  cut: boolean;
}

// Keep-alive: a receiver that takes many deliveries is reached over a few open connections.
const agents = { 'http:': new http.Agent({ keepAlive: true, maxSockets: 64 }), 'https:': new https.Agent({ keepAlive: true, maxSockets: 64 }) };

/**
 * A POST over node:http(s) (no redirect is followed); resolves with the status and at most
 * EXCERPT characters of the body (the rest is let go), rejects with the socket's error, or with
 * `timedOut` / `aborted` set. The timer and the listener on `signal` go when it settles: a
 * long-lived signal keeps nothing per attempt (AbortSignal.any would, on Node 20).
 */
function post(url: URL, headers: Record<string, string>, payload: string, timeoutMs: number, signal: AbortSignal): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const transport = url.protocol === 'https:' ? https : http;
    let timer: NodeJS.Timeout | undefined;
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    };
    const fail = (err: unknown): void => {
      done();
      reject(err);
    };
    const req = transport.request(
      url,
      { method: 'POST', headers: { ...headers, 'content-length': Buffer.byteLength(payload) }, agent: agents[url.protocol as 'http:' | 'https:'] },
      (res) => {
        let body = '';
        let cut = false;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (body.length < EXCERPT) body += chunk;
          else cut = true;
        });
        res.on('end', () => {
          done();
          const ra = res.headers['retry-after'];
          cut ||= body.length > EXCERPT;
          resolve({ status: res.statusCode ?? 0, retryAfter: typeof ra === 'string' ? ra : null, body: body.slice(0, EXCERPT), cut });
        });
        res.on('error', fail);
        res.on('aborted', () => fail(Object.assign(new Error('the receiver broke off its answer'), { code: 'ECONNRESET' })));
      },
    );
    const onAbort = (): void => void req.destroy(Object.assign(new Error('aborted'), { aborted: true }));
    timer = setTimeout(() => req.destroy(Object.assign(new Error('timed out'), { timedOut: true })), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    req.on('error', fail);
    req.end(payload);
  });
}

/** What went wrong on the way, by the error's code alone (a socket error's message may name the address). */
function networkError(err: unknown, timedOut: boolean, closing: boolean): DeliveryError {
  if (closing) return { code: 'DELIVERY_ABORTED', message: 'the host stopped during the attempt' };
  if (timedOut) return { code: 'RECEIVER_TIMEOUT', message: 'the receiver did not answer in time' };
  const e = err as { code?: unknown; cause?: { code?: unknown } } | null;
  const code = typeof e?.code === 'string' ? e.code : typeof e?.cause?.code === 'string' ? e.cause.code : 'network error';
  // Node's HTTP parser refused what came back: the receiver answered, with something not HTTP.
  if (code.startsWith('HPE_')) return { code: 'RECEIVER_UNREACHABLE', message: `the receiver's answer was not valid HTTP (${code})` };
  return { code: 'RECEIVER_UNREACHABLE', message: `could not reach the receiver (${code})` };
}

async function sendHttp(d: Exclude<Destination, { kind: 'email' }>, n: OutgoingNotification, ctx: SendContext): Promise<SendResult> {
  const start = Date.now();
  const payload = JSON.stringify(httpBody(d, n, ctx.source, ctx.test === true));
  const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'jobhost' };
  if (d.kind === 'webhook') {
    Object.assign(headers, d.headers);
    // Standard Webhooks: the id stays the same over every attempt; the timestamp is this attempt's.
    const timestamp = new Date(ctx.now);
    headers['webhook-id'] = ctx.id;
    headers['webhook-timestamp'] = String(Math.floor(ctx.now / 1000));
    if (d.secret) headers['webhook-signature'] = new (await signer())(d.secret).sign(ctx.id, timestamp, payload);
  }
  let answer: Answer;
  try {
    answer = await post(new URL(d.url), headers, payload, ctx.timeoutMs, ctx.signal);
  } catch (err) {
    // Refused, reset, not HTTP, or broke off in the middle of its answer: try again.
    return result(start, { retry: true, error: networkError(err, (err as { timedOut?: boolean }).timedOut === true, ctx.signal.aborted) });
  }
  const status = answer.status;
  const body = ctx.redact(answer.body, answer.cut);
  if (status >= 200 && status < 300) return result(start, { ok: true, status, body });
  const short = body.replace(/\s+/g, ' ').trim().slice(0, 200);
  const said = short ? `: ${short}` : '';
  if (status >= 500 || status === 408 || status === 429) {
    return result(start, {
      retry: true,
      status,
      body,
      retryAfterMs: retryAfter(answer.retryAfter, Date.now()),
      error: { code: 'RECEIVER_ERROR', message: `the receiver answered ${status}${said}`, status },
    });
  }
  if (status >= 300 && status < 400) {
    return result(start, {
      status,
      body,
      error: { code: 'RECEIVER_REJECTED', message: `the receiver answered ${status} (a redirect; redirects are not followed)${said}`, status },
    });
  }
  return result(start, { status, body, error: { code: 'RECEIVER_REJECTED', message: `the receiver answered ${status}${said}`, status } });
}

async function sendMail(d: Extract<Destination, { kind: 'email' }>, n: OutgoingNotification, ctx: SendContext): Promise<SendResult> {
  const start = Date.now();
  const { subject, text } = mail(n);
  const transport = await mailTransport(d.smtp, ctx.timeoutMs);
  let timer: NodeJS.Timeout | undefined;
  let onAbort = (): void => undefined;
  // The whole attempt is bounded, not only an idle line: a server that drips its replies holds no slot for longer.
  const cut = new Promise<never>((_, reject) => {
    onAbort = () => reject(Object.assign(new Error('aborted'), { code: 'ABORTED' }));
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(() => reject(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })), ctx.timeoutMs);
  });
  try {
    const info = await Promise.race([
      transport.sendMail({ from: d.from, to: d.to, subject, text, messageId: `<${ctx.id}@jobhost>`, headers: { 'X-Jobhost-Job': n.job } }),
      cut,
    ]);
    return result(start, { ok: true, status: 250, body: ctx.redact(String(info.response ?? ''), false).slice(0, EXCERPT) });
  } catch (err) {
    const e = err as { code?: string; responseCode?: number; response?: string; message?: string };
    if (ctx.signal.aborted) return result(start, { retry: true, error: networkError(err, false, true) });
    if (typeof e.responseCode === 'number') {
      // SMTP: 4xx is a temporary failure, 5xx a permanent one.
      const reply = ctx.redact(String(e.response ?? ''), false).slice(0, 200);
      const error = {
        code: e.responseCode >= 500 ? 'RECEIVER_REJECTED' : 'RECEIVER_ERROR',
        message: `the mail server answered ${reply || e.responseCode}`,
        status: e.responseCode,
      };
      return result(start, { retry: e.responseCode < 500, status: e.responseCode, body: reply, error });
    }
    if (e.code === 'EAUTH' || e.code === 'EENVELOPE') {
      return result(start, { error: { code: 'RECEIVER_REJECTED', message: `the mail server refused it (${e.code})` } });
    }
    const timedOut = e.code === 'ETIMEDOUT' || /timeout/i.test(e.message ?? '');
    return result(start, { retry: true, error: networkError({ code: e.code ?? 'ECONNECTION' }, timedOut, false) });
  } finally {
    clearTimeout(timer);
    ctx.signal.removeEventListener('abort', onAbort);
    cut.catch(() => undefined);
    transport.close();
  }
}

/** One attempt; never rejects. */
export function send(d: Destination, n: OutgoingNotification, ctx: SendContext): Promise<SendResult> {
  return d.kind === 'email' ? sendMail(d, n, ctx) : sendHttp(d, n, ctx);
}
