import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { createManualClock, type ManualClock } from '../core/contract/clock.js';
import type { AnyHostEvent, EventType } from '../core/contract/events.js';
import { type Logger, silentLogger } from '../core/contract/logger.js';
import { createHost, type Host, type HostOptions } from '../core/engine/host.js';
import { createServer, type Server, type ServerOptions } from '../core/server/server.js';

export interface Tap {
  teardown(fn: () => unknown): void;
}

/** A manual clock whose reading can run ahead of its timers (`StallingClock.stall`). */
export interface StallingClock extends ManualClock {
  /** A blocked event loop: `ms` pass at once and no timer fires for them; those due meanwhile fire late, at the next advance. */
  stall(ms: number): void;
}

export function createStallingClock(start = Date.UTC(2026, 0, 5, 12, 0, 0)): StallingClock {
  const timers = createManualClock(start);
  let behind = 0;
  return {
    now: () => timers.now() + behind,
    setTimer: (ms, fn) => timers.setTimer(ms, fn),
    advance: (ms) => timers.advance(ms),
    set: (time) => timers.set((typeof time === 'number' ? time : time.getTime()) - behind),
    pending: () => timers.pending(),
    stall(ms) {
      behind += ms;
    },
  };
}

/** A fresh directory under the OS temp dir, removed when the test ends. */
export function tempDir(t: Tap, prefix = 'jobhost-test-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface TestHost {
  host: Host;
  clock: ManualClock;
  dir: string;
  events: AnyHostEvent[];
  /** Events of one type seen so far. */
  of<T extends EventType>(type: T): Array<Extract<AnyHostEvent, { type: T }>>;
}

/**
 * A started host on a manual clock and a real temp store, stopped when the test ends.
 * `random` defaults to 0.5, so jitter is zero and retry delays are exact.
 */
export async function startHost(t: Tap, options: Omit<HostOptions, 'clock'> & { clock?: ManualClock; dir?: string; start?: boolean } = {}): Promise<TestHost> {
  const dir = options.dir ?? tempDir(t);
  const clock = options.clock ?? createManualClock(Date.UTC(2026, 0, 5, 12, 0, 0));
  const config = { ...options.config, store: { dir, ...options.config?.store } };
  // The helpers' own options (and startServer's `server`) are not createHost's: it refuses unknown ones.
  const { dir: _dir, start: _start, server: _server, ...hostOptions } = options as typeof options & { server?: unknown };
  const host = createHost({ random: () => 0.5, ...hostOptions, config, clock, logger: options.logger ?? silentLogger() });
  const events: AnyHostEvent[] = [];
  host.on('*', (e) => events.push(e));
  if (options.start !== false) await host.start();
  t.teardown(() => host.stop({ graceMs: 0 }));
  return {
    host,
    clock,
    dir,
    events,
    of: <T extends EventType>(type: T) => events.filter((e): e is Extract<AnyHostEvent, { type: T }> => e.type === type),
  };
}

/** A pino logger that keeps every line it writes, parsed, for tests that check what was logged (by code and level). */
export function captureLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

/** Resolves with the first event matching, or rejects after `ms` of real time (a bound, not a sleep). */
export function nextEvent(host: Host, match: (e: AnyHostEvent) => boolean, ms = 5000): Promise<AnyHostEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no matching event within ${ms}ms`));
    }, ms);
    const off = host.on('*', (e) => {
      if (match(e)) {
        clearTimeout(timer);
        off();
        resolve(e);
      }
    });
  });
}

/** Polls `check` on real time until it holds, failing after `ms`. For watchers and child processes. */
export async function until(check: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A promise with its resolve function, for handlers the test releases. */
export function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((r) => (open = r));
  return { promise, open };
}

export interface TestServer extends TestHost {
  server: Server;
  url: string;
  /** A real HTTP request; the body is sent as JSON unless it is already a string, and a POST says JSON. */
  request(method: string, path: string, options?: { body?: unknown; headers?: Record<string, string> }): Promise<TestResponse>;
  /** The metrics text, read in-process. */
  metrics(): Promise<string>;
}

export interface TestResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as a JSON object ({} when it is not one). */
  json: Record<string, unknown>;
}

/** A started host with its HTTP server listening on 127.0.0.1, port 0; both closed when the test ends. */
export async function startServer(t: Tap, options: Parameters<typeof startHost>[1] & { server?: ServerOptions } = {}): Promise<TestServer> {
  const testHost = await startHost(t, options);
  const server = createServer(testHost.host, { host: '127.0.0.1', port: 0, ...options.server });
  const { url } = await server.listen();
  t.teardown(() => server.close());
  const request: TestServer['request'] = async (method, path, opts = {}) => {
    const headers: Record<string, string> = { ...opts.headers };
    let body: string | undefined;
    if (opts.body !== undefined) body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    // Like the CLI and the dashboard, a POST says JSON with a body or without; tests of other types set their own.
    if (body !== undefined || method === 'POST') headers['content-type'] ??= 'application/json';
    const res = await fetch(url + path, { method, headers, ...(body !== undefined && { body }) });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed === 'object' && parsed !== null) json = parsed as Record<string, unknown>;
    } catch {
      // not JSON: tests look at `text`
    }
    return { status: res.status, headers: res.headers, text, json };
  };
  return { ...testHost, server, url, request, metrics: () => server.metrics.text() };
}
