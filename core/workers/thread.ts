import { AsyncLocalStorage } from 'node:async_hooks';
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { whenSettled } from '../contract/attempt.js';
import { type ErrorCode, HostError } from '../contract/errors.js';
import { capturingLogger, logArgs } from '../contract/log-capture.js';
import type { Logger } from '../contract/logger.js';
import { FORWARD_MAX_PER_SECOND, startThreadForwarding, startThreadOtel } from '../contract/otel-thread.js';
import type { HandlerSource } from '../contract/plugin-source.js';
import { contextOf, provideOtelApi, within } from '../contract/tracing.js';
import { pluginApi } from './plugin-api.js';
import { evaluateSource, importExternal } from './plugin-code.js';
import { type Batch, CLAIM, claimTag, IN, IN_FIELDS, IN_HEADER, OUT, OUT_FIELDS, type ThreadData } from './protocol.js';
import { type ThreadChannel, ThreadContext } from './thread-context.js';

/**
 * A worker thread of the pool (`pool.ts` starts it): it evaluates plugin versions the main
 * thread sends, runs handlers with a `ctx` that talks back to the main thread, and reports
 * outcomes in batches. Stray rejections and throws from a handler's timers fail that attempt
 * (the thread goes on); `process.exit()` from a handler is recorded as that attempt's before
 * the thread exits, so the pool can tell who did it.
 */

const port = parentPort;
if (!port) throw new Error('core/workers/thread.ts runs as a worker thread of the pool');
const data = workerData as ThreadData;
const exitSlot = new Int32Array(data.exitSlot);
const claims = new Int32Array(data.claims);

/** Claims the attempt in `cell` for this thread (see `CLAIM`): false when the pool took it back to run it elsewhere. */
function claimed(placement: number, cell: number): boolean {
  if (cell < 0) return true;
  const placed = claimTag(placement) + CLAIM.placed;
  return Atomics.compareExchange(claims, cell, placed, placed - CLAIM.placed + CLAIM.claimed) === placed;
}

// Handlers are background work: on Linux the thread lowers its own priority (a thread's id is a
// pid to setpriority), so a CPU-bound handler leaves the main thread the CPU it needs to answer.
if (data.nice > 0 && process.platform === 'linux') {
  try {
    setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), data.nice);
  } catch {
    // not allowed, or no /proc: the thread keeps the process's priority
  }
}

type PinoFactory = (options: object, stream: { write(line: string): void }) => Logger;
// pino is loaded before the first batch is read, so `ctx.log` is there synchronously. It gives
// `ctx.log` its shape (levels, child, isLevelEnabled) and writes nothing: every call is captured
// (`capturingLogger`) as a level, a message and fields, posted, and the main thread both keeps it
// with the run and writes it to the host's log, so a line is made once and crosses once.
const pinoModule = (await import(data.pinoUrl)) as { default?: PinoFactory; pino?: PinoFactory };
const pino = (pinoModule.pino ?? pinoModule.default) as PinoFactory;
const mute = pino({ level: data.logLevel, base: null, timestamp: false, hooks: { logMethod() {} } }, { write() {} });

// ------------------------------------------------------------------------------- batching out

let out: Batch = [0, 0];
/** The flush at the end of this turn, once something is queued. */
let flushing: NodeJS.Immediate | undefined;
/** A batch that waited this long unread: its answer goes out at once (see the reader below). */
const ANSWER_NOW_MS = 100;

/**
 * Log lines one turn of this thread's event loop sends at most: a handler that logs in a tight
 * loop would otherwise queue every line here, then in the message, then in the main thread, at
 * once (600,000 lines of 1 KB grew the host by gigabytes and held its API). Past it a run's lines
 * are counted, and one warning line in its log says how many were dropped.
 */
const LOG_LINES_PER_TURN = 1000;
let turnLogLines = 0;
/** Lines dropped this turn, by task (0: the thread's own). */
const droppedLines = new Map<number, number>();

function log(task: number, level: string, msg: string, fields: unknown): void {
  if (++turnLogLines <= LOG_LINES_PER_TURN) return send(OUT.log, task, level, msg, fields);
  droppedLines.set(task, (droppedLines.get(task) ?? 0) + 1);
  flushing ??= setImmediate(flush);
}

/** The warning of the lines `task` dropped this turn, if any: in its log, so before its end goes out. */
function reportDropped(task: number): void {
  const count = droppedLines.get(task);
  if (count === undefined) return;
  droppedLines.delete(task);
  send(OUT.log, task, 'warn', `${count} log lines dropped: more than ${LOG_LINES_PER_TURN} in one turn of the event loop`, undefined);
}

function flush(): void {
  turnLogLines = 0;
  for (const task of [...droppedLines.keys()]) reportDropped(task);
  // Called early (an answer that goes out at once), the one queued for the turn's end is not needed.
  clearImmediate(flushing);
  flushing = undefined;
  const batch = out;
  out = [batch[0], batch[1]];
  port!.postMessage(batch);
}

/** Queues an op and its fields; everything queued in one turn of the event loop leaves as one message. */
function send(op: number, a: unknown, b?: unknown, c?: unknown, d?: unknown): void {
  const n = OUT_FIELDS[op as 0];
  out.push(op, a);
  if (n > 1) out.push(b);
  if (n > 2) out.push(c);
  if (n > 3) out.push(d);
  flushing ??= setImmediate(flush);
}

// ------------------------------------------------------------------------------- plugin versions

interface Version {
  source: HandlerSource;
  exports: Promise<Record<string, unknown>> | undefined;
  /** Runs of this version in flight here. */
  running: number;
}

const versions = new Map<number, Version>();
/** The newest version of each plugin file: an older one is dropped once it has no run left. */
const newest = new Map<string, number>();
const coreIndex = data.coreIndex;
let tsxRegistered = false;

/** A version sent by the pool becomes its file's newest (the pool sends one whenever its newest differs). */
function load(id: number, source: HandlerSource): void {
  if (!versions.has(id)) versions.set(id, { source, exports: undefined, running: 0 });
  const previous = newest.get(source.entry);
  newest.set(source.entry, id);
  if (previous !== undefined && previous !== id) release(previous);
}

/** Drops a superseded version with no run in flight: its code and module objects become garbage. */
function release(id: number): void {
  const version = versions.get(id);
  if (version && version.running === 0 && newest.get(version.source.entry) !== id) versions.delete(id);
}

/** Imports a module a plugin needs from outside its directory (jobhost's own index: the plugin API). */
async function importModule(url: string): Promise<unknown> {
  if (url.split('?')[0]!.replace(/\.(ts|js|mjs)$/, '') === coreIndex) return pluginApi();
  // A native plugin's text (a data: URL) imports its modules by absolute URL, and a TypeScript one
  // that failed to load stays failed under its URL in this thread, whatever is retried: tsx first.
  if (url.startsWith('data:') && data.tsxUrl !== null) await registerTsx(data.tsxUrl);
  const again = withTsx.get(url);
  if (again !== undefined) return import(again);
  // Whether tsx was there when this import began (another import may register it meanwhile).
  const hadTsx = tsxRegistered;
  try {
    return await importExternal(url);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (hadTsx || data.tsxUrl === null || (code !== 'ERR_UNKNOWN_FILE_EXTENSION' && code !== 'ERR_MODULE_NOT_FOUND')) throw err;
    // A TypeScript module from outside the plugins directory: this thread needs tsx too (once).
    // Node keeps the failure under `url` for good: every later import of it (another plugin's
    // too) takes the URL it loaded under, so the plugins share one module, as on the main thread.
    await registerTsx(data.tsxUrl);
    const loaded = `${url}${url.includes('?') ? '&' : '?'}tsx`;
    withTsx.set(url, loaded);
    return import(loaded);
  }
}

/** URLs whose first import failed before tsx was registered, and the one they were loaded under then. */
const withTsx = new Map<string, string>();

let tsxRegistering: Promise<void> | undefined;

/** Registers tsx in this thread, once however many imports ask at the same time. */
function registerTsx(tsxUrl: string): Promise<void> {
  tsxRegistering ??= import(tsxUrl).then((tsx: { register(): void }) => {
    tsx.register();
    tsxRegistered = true;
  });
  return tsxRegistering;
}

async function handlerOf(version: Version, job: string): Promise<(ctx: ThreadContext) => unknown> {
  version.exports ??= evaluateSource(version.source, importModule);
  let exports: Record<string, unknown>;
  try {
    exports = await version.exports;
  } catch (err) {
    throw new HostError('PLUGIN_IMPORT_FAILED', `the plugin file failed to load in a worker thread: ${(err as Error)?.message ?? String(err)}`);
  }
  const plugin = exports['default'] as { name?: unknown; handler?: unknown } | undefined;
  if (plugin?.name !== job || typeof plugin.handler !== 'function') {
    throw new HostError('PLUGIN_INVALID', `the plugin file no longer exports a handler for job "${job}" in a worker thread`);
  }
  return plugin.handler as (ctx: ThreadContext) => unknown;
}

// ------------------------------------------------------------------------------- tracing

/**
 * The thread's own OpenTelemetry SDK, when the environment asks for one as it does `jobhost start`
 * (SPEC §15): spans a handler makes in this thread are exported from here, children of its
 * attempt's span. A thread ended by the pool (`terminate()`) exports nothing more, so what a
 * traced attempt leaves is flushed shortly after it settles.
 */
// A failed start leaves the thread untraced; the main thread's SDK reports the same failure.
// Tracing here uses the API the tracer was registered in: the thread's bundle has its own copy, and no file to load one from.
// Without `OTEL_*`, an application's SDK set up in code gets the handler's spans from here, through the main thread.
const otelStart = data.otel
  ? startThreadOtel(data.otel)
  : data.otelForward
    ? startThreadForwarding(
        data.otelForward,
        (span) => send(OUT.span, span),
        (count) =>
          send(OUT.log, 0, 'warn', `${count} spans of this worker thread's handlers were dropped: more than ${FORWARD_MAX_PER_SECOND} a second`, undefined),
      )
    : undefined;
const otel = otelStart
  ?.then((o) => {
    provideOtelApi(o.api);
    return o;
  })
  .catch(() => undefined);
let flushDue = false;

function flushSoon(): void {
  if (flushDue) return;
  flushDue = true;
  setTimeout(() => {
    flushDue = false;
    void otel?.then((o) => o?.flush()).catch(() => undefined);
  }, 50);
}

// ------------------------------------------------------------------------------- runs

const running = new Map<number, ThreadContext>();
const scope = new AsyncLocalStorage<ThreadContext>();
let nextRequest = 0;
const requests = new Map<number, { resolve(value: unknown): void; reject(err: Error): void }>();

const channel: ThreadChannel = {
  send,
  read(task, method, arg) {
    const id = ++nextRequest;
    send(OUT.read, id, task, method, arg);
    return new Promise((resolve, reject) => requests.set(id, { resolve, reject }));
  },
  logger(task) {
    return capturingLogger(mute, (level, msg, fields) => log(task, level, msg, fields));
  },
};

function settle(ctx: ThreadContext, ok: boolean, value: unknown, stray?: ErrorCode): void {
  if (ctx.settled) return;
  reportDropped(ctx.id);
  ctx.settle(ok, value, stray);
  running.delete(ctx.id);
  if (otel) flushSoon();
  const version = versions.get(ctx.version);
  if (version) {
    version.running--;
    release(ctx.version);
  }
}

async function start(ctx: ThreadContext, traceparent: string | undefined, cell: number, placement: number): Promise<void> {
  const version = versions.get(ctx.version);
  if (!version) return settle(ctx, false, new HostError('INTERNAL', `plugin version ${ctx.version} was never sent to this worker`));
  version.running++;
  let handler: (ctx: ThreadContext) => unknown;
  try {
    handler = await handlerOf(version, ctx.job);
  } catch (err) {
    return settle(ctx, false, err);
  }
  const traced = traceparent !== undefined && otel !== undefined && (await otel) !== undefined;
  // Last, just before the handler runs: until then a handler on this thread's CPU (one placed
  // before it) may hold it, and the pool may have moved it to another thread meanwhile.
  if (!claimed(placement, cell)) {
    // Only its own entry: the run may have come back to this thread, and that copy runs.
    if (running.get(ctx.id) === ctx) running.delete(ctx.id);
    version.running--;
    release(ctx.version);
    return;
  }
  let result: unknown;
  try {
    // The handler runs inside its attempt's span, so its own instrumented calls join the trace
    // (unless the thread's tracer could not start).
    if (traced) {
      result = within(contextOf(traceparent), () => scope.run(ctx, handler, ctx));
    } else {
      result = scope.run(ctx, handler, ctx);
    }
  } catch (err) {
    return settle(ctx, false, err);
  }
  whenSettled(result, (ok, value) => settle(ctx, ok, value));
}

// ------------------------------------------------------------------------------- messages in

// Started: an empty batch before reading any, so the pool tells the time this thread took to
// start from the time a handler then holds it.
port.postMessage([0, 0]);
port.on('message', (batch: Batch) => {
  // What this thread read last, and when: how long a batch waited unread here (what runs here held
  // the thread that long), whenever the answer itself gets out.
  const readAt = performance.timeOrigin + performance.now();
  out[0] = batch[0];
  out[1] = readAt;
  // Held that long, and a handler may well hold it again at once (one computing in slices resumes
  // from an immediate queued before the answer's): the answer goes out now, before it does.
  const held = readAt - (batch[1] as number) >= ANSWER_NOW_MS;
  for (let i = IN_HEADER; i < batch.length; i += 1 + IN_FIELDS[batch[i] as 0]) {
    switch (batch[i]) {
      case IN.run: {
        const ctx = new ThreadContext(
          channel,
          batch[i + 1] as number,
          batch[i + 2] as number,
          batch[i + 3] as string,
          batch[i + 4] as string,
          batch[i + 5] as number,
          batch[i + 6],
          { maxResultBytes: batch[i + 7] as number, maxEventBytes: batch[i + 8] as number },
        );
        running.set(ctx.id, ctx);
        void start(ctx, batch[i + 9] as string | undefined, batch[i + 10] as number, batch[i + 11] as number);
        break;
      }
      case IN.load:
        load(batch[i + 1] as number, batch[i + 2] as HandlerSource);
        break;
      case IN.abort:
        running.get(batch[i + 1] as number)?.abort(batch[i + 2] as string, batch[i + 3] as string);
        break;
      case IN.reply: {
        const request = requests.get(batch[i + 1] as number);
        requests.delete(batch[i + 1] as number);
        if (batch[i + 2]) request?.resolve(batch[i + 3]);
        else request?.reject(new Error(String(batch[i + 3])));
        break;
      }
      case IN.memory:
        // A benchmark that exposed gc (a process-wide V8 flag) gets the heap after a collection.
        (globalThis as { gc?: () => void }).gc?.();
        send(OUT.memory, batch[i + 1], process.memoryUsage().heapUsed);
        break;
    }
  }
  // Every batch is answered, so the pool knows this thread is reading.
  if (held) flush();
  else flushing ??= setImmediate(flush);
});

// ------------------------------------------------------------------------------- guards

/** A line of the thread itself (not of a run), for the host's log. */
function threadLog(level: 'error' | 'warn', obj: object, msg: string): void {
  const line = logArgs([obj, msg]);
  send(OUT.log, 0, level, line.msg, line.fields);
}

process.on('unhandledRejection', (reason) => {
  const ctx = scope.getStore();
  if (ctx) return settle(ctx, false, reason, 'UNHANDLED_REJECTION');
  threadLog('error', { err: reason }, 'unhandled promise rejection in a worker thread outside any run; ignored');
});

process.on('uncaughtException', (err) => {
  const ctx = scope.getStore();
  if (ctx) return settle(ctx, false, err, 'UNCAUGHT_EXCEPTION');
  threadLog('error', { err }, 'uncaught exception in a worker thread outside any run; the thread carries on');
});

const exit = process.exit.bind(process);
process.exit = ((code?: number | string | null) => {
  // Written where the main thread reads it after the thread is gone: a message might not arrive.
  Atomics.store(exitSlot, 0, scope.getStore()?.id ?? -1);
  exit(code ?? undefined);
}) as typeof process.exit;
