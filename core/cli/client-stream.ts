import { EventEmitter } from 'eventemitter3';
import WebSocket from 'ws';
import { z } from 'zod';
import { ClientError, errorFromBody, unreachable } from './client.js';

/**
 * The client side of `GET /events` (README "WebSocket"): one subscription that survives drops.
 * After a drop it reconnects with `since=<last seq seen>`, so the host replays what was missed
 * (no gap, no duplicate) unless its buffer has moved on, which the next `hello` reports as `gap`.
 * The first connection fails fast (wrong URL, no host, bad token); later ones are retried with
 * backoff until `giveUpAfterMs`.
 */

export const eventSchema = z.looseObject({
  seq: z.number(),
  type: z.string(),
  at: z.string(),
  data: z.looseObject({ job: z.string().nullable().optional(), runId: z.string().optional() }),
});
const helloSchema = z.looseObject({ type: z.literal('hello'), seq: z.number(), since: z.number().nullable(), gap: z.boolean(), boot: z.string().optional() });

/** An event as the host sends it: `{ seq, type, at, data }`, `data.job` and `data.runId` typed, the rest unknown. */
export type ClientEvent = z.output<typeof eventSchema>;
export type Hello = z.output<typeof helloSchema>;

export interface StreamOptions {
  url: string;
  token?: string | undefined;
  /** Only these jobs / event types (`run.*` globs), as the host filters them. */
  job?: readonly string[] | undefined;
  type?: readonly string[] | undefined;
  /** Also `run.log` events: the lines handlers log (the host leaves them out unless asked). */
  logs?: boolean | undefined;
  /** Replay buffered events after this seq first. */
  since?: number | undefined;
  /** First retry delay after a drop, doubled per failure up to `maxRetryDelayMs` (defaults 100 ms, 2 s). */
  retryDelayMs?: number | undefined;
  maxRetryDelayMs?: number | undefined;
  /** End the stream with CONNECTION_LOST after this long without a connection (default: keep trying). */
  giveUpAfterMs?: number | undefined;
  /** A ping every this often; no pong by the next one ends the connection (default 15 s; 0 = none). */
  heartbeatMs?: number | undefined;
  /** Bound on the WebSocket handshake (default 10 s). */
  handshakeTimeoutMs?: number | undefined;
}

export interface StreamEvents {
  /** A matching event. */
  event: [ClientEvent];
  /** A connection is up: the first one, or one after a drop (`hello.since` is then the resume point). */
  open: [Hello];
  /** The connection went down; a retry follows (unless the stream is closing or gives up). */
  drop: [{ code: number; reason: string }];
}

const CLOSE_NORMAL = 1000;

/** A live subscription to the host's events. `close()` ends it; every timer and socket is released. */
export class EventStream extends EventEmitter<StreamEvents> {
  /** Resolves with the first `hello`; rejects when the first connection fails. */
  readonly ready: Promise<Hello>;
  /** Resolves once `close()` has run; rejects when the stream ends by itself (gave up, 401, a throwing listener). */
  readonly done: Promise<void>;

  readonly #options: StreamOptions;
  readonly #base: string;
  #socket: WebSocket | undefined;
  #cursor: number | undefined;
  /** The host's event numbering `#cursor` counts in (the last hello's): a reconnect after a restart is told apart. */
  #boot: string | undefined;
  #connected = false;
  #ended = false;
  #hadHello = false;
  #failures = 0;
  #downSince = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #resolveReady!: (hello: Hello) => void;
  #rejectReady!: (err: ClientError) => void;
  #resolveDone!: () => void;
  #rejectDone!: (err: unknown) => void;

  constructor(options: StreamOptions) {
    super();
    this.#options = options;
    this.#base = options.url.replace(/^http/, 'ws').replace(/\/+$/, '');
    this.#cursor = options.since;
    this.ready = new Promise<Hello>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.done = new Promise<void>((resolve, reject) => {
      this.#resolveDone = resolve;
      this.#rejectDone = reject;
    });
    // Callers may await only one of the two.
    this.ready.catch(() => undefined);
    this.done.catch(() => undefined);
    this.#connect();
  }

  /** True while a connection is up and its hello has arrived. */
  get connected(): boolean {
    return this.#connected;
  }

  /** The seq a reconnection resumes after: the last event seen, or the hello's seq before any. */
  get cursor(): number | undefined {
    return this.#cursor;
  }

  /** Ends the stream: closes the socket and stops retrying. */
  close(): void {
    if (this.#ended) return;
    this.#end();
    this.#rejectReady(new ClientError('CONNECTION_LOST', 'the event stream was closed before it connected'));
    this.#resolveDone();
  }

  #end(): void {
    this.#ended = true;
    this.#connected = false;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#heartbeat);
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket && socket.readyState === WebSocket.OPEN) socket.close(CLOSE_NORMAL, 'client done');
    else socket?.terminate();
  }

  /** Ends the stream with an error: `ready` rejects if it has not resolved, and `done` rejects. */
  #fail(err: unknown): void {
    if (this.#ended) return;
    this.#end();
    const error = err instanceof ClientError ? err : new ClientError('BAD_RESPONSE', err instanceof Error ? err.message : String(err));
    this.#rejectReady(error);
    this.#rejectDone(err);
  }

  /** Listener errors end the stream instead of leaving it half-updated. */
  #emitSafe<K extends keyof StreamEvents>(type: K, ...args: StreamEvents[K]): void {
    try {
      (this.emit as (t: K, ...a: StreamEvents[K]) => boolean)(type, ...args);
    } catch (err) {
      this.#fail(err);
    }
  }

  #url(): string {
    const query = new URLSearchParams();
    for (const job of this.#options.job ?? []) query.append('job', job);
    for (const type of this.#options.type ?? []) query.append('type', type);
    if (this.#options.logs) query.set('logs', 'true');
    if (this.#cursor !== undefined) query.set('since', String(this.#cursor));
    if (this.#cursor !== undefined && this.#boot !== undefined) query.set('boot', this.#boot);
    const qs = query.toString();
    return `${this.#base}/events${qs ? `?${qs}` : ''}`;
  }

  #connect(): void {
    const { token } = this.#options;
    // As long as a request waits for its answer (client.ts): a host that takes the connection and never answers is REQUEST_TIMEOUT.
    const handshakeMs = this.#options.handshakeTimeoutMs ?? 30_000;
    const socket = new WebSocket(this.#url(), {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      handshakeTimeout: handshakeMs,
    });
    this.#socket = socket;
    let failure: ClientError | undefined;
    let fatal = false;
    let gotHello = false;

    // A refused upgrade (401, 400) comes as an HTTP answer: read its body for the code and message.
    socket.on('unexpected-response', (_req, res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk.length + text.length < 64 * 1024 ? chunk : ''));
      res.on('end', () => {
        failure = errorFromBody(res.statusCode ?? 0, text);
        // A client error will not cure itself by retrying; a 5xx (a proxy, a host starting) might.
        fatal = (res.statusCode ?? 500) < 500;
        socket.terminate();
      });
      res.on('error', () => socket.terminate());
    });
    socket.on('error', (err) => {
      failure ??=
        err.message === 'Opening handshake has timed out'
          ? new ClientError('REQUEST_TIMEOUT', `no answer from jobhost at ${this.#options.url} within ${handshakeMs} ms (the event stream)`)
          : unreachable(this.#options.url, err);
    });
    let alive = true;
    socket.on('pong', () => {
      alive = true;
    });
    socket.on('open', () => {
      const every = this.#options.heartbeatMs ?? 15_000;
      if (every > 0) {
        this.#heartbeat = setInterval(() => {
          if (!alive) return socket.terminate();
          alive = false;
          socket.ping();
        }, every);
      }
    });
    socket.on('message', (raw: WebSocket.RawData) => {
      if (this.#socket !== socket) return;
      let json: unknown;
      try {
        json = JSON.parse(raw.toString());
      } catch {
        return; // not JSON: nothing a client can use
      }
      if (!gotHello) {
        const hello = helloSchema.safeParse(json);
        if (!hello.success) {
          failure = new ClientError('BAD_RESPONSE', `${this.#base}/events: expected a hello message first, got ${raw.toString().slice(0, 200)}`);
          fatal = true;
          return socket.terminate();
        }
        gotHello = true;
        this.#onHello(hello.data);
        return;
      }
      const event = eventSchema.safeParse(json);
      if (!event.success) return;
      this.#cursor = event.data.seq;
      this.#emitSafe('event', event.data);
    });
    socket.on('close', (code: number, reason: Buffer) => {
      clearInterval(this.#heartbeat);
      if (this.#socket !== socket || this.#ended) return;
      this.#socket = undefined;
      const wasConnected = this.#connected;
      this.#connected = false;
      if (!this.#hadHello) return this.#fail(failure ?? unreachable(this.#options.url, new Error(`closed (${code})`)));
      if (fatal && failure) return this.#fail(failure);
      if (wasConnected) {
        this.#downSince = Date.now();
        this.#emitSafe('drop', { code, reason: reason.toString() || failure?.message || '' });
      }
      this.#retry(failure);
    });
  }

  #onHello(hello: Hello): void {
    this.#connected = true;
    this.#failures = 0;
    this.#cursor ??= hello.seq;
    this.#boot = hello.boot;
    // After a restart the host counts from 1 again: resume from its numbering, not ours.
    if (hello.gap) this.#cursor = Math.min(this.#cursor, hello.seq);
    if (!this.#hadHello) {
      this.#hadHello = true;
      this.#resolveReady(hello);
    }
    this.#emitSafe('open', hello);
  }

  #retry(failure: ClientError | undefined): void {
    const limit = this.#options.giveUpAfterMs;
    if (limit !== undefined && Date.now() - this.#downSince >= limit) {
      const why = failure ? `: ${failure.message}` : '';
      return this.#fail(new ClientError('CONNECTION_LOST', `lost the event stream from ${this.#options.url} for ${limit} ms${why}`));
    }
    const first = this.#options.retryDelayMs ?? 100;
    const delay = Math.min(first * 2 ** this.#failures, this.#options.maxRetryDelayMs ?? 2000);
    this.#failures++;
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }
}

/** Opens a subscription to `GET /events`; see `EventStream`. */
export function openEventStream(options: StreamOptions): EventStream {
  return new EventStream(options);
}
