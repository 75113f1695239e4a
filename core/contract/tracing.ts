import { createRequire } from 'node:module';
import type { Context, ProxyTracerProvider, Span, SpanContext, Tracer, TracerProvider } from '@opentelemetry/api';
import type { RunError } from './errors.js';

/**
 * Tracing through `@opentelemetry/api` (SPEC §15). jobhost only ever talks to the API: whoever
 * sets up an SDK (the embedding application, or `jobhost start` when `OTEL_*` asks, see
 * `otel-sdk.ts`) decides where spans go. Without one, every call here lands on the API's no-op
 * tracer: a span that records nothing and a context that carries no trace, so a run gets no
 * trace fields and pays a few property reads.
 *
 * The shape of a trace (the way BullMQ's own telemetry and OTel's messaging conventions draw a
 * queue): a trigger is a `jobhost.trigger <job>` span (kind producer) under the caller's context,
 * ended once the run is acknowledged; its context travels with the run as a W3C `traceparent`
 * (in the run record, so through a restart and to another cluster host). Each attempt is a
 * `jobhost.attempt <job>` span (kind consumer), the trigger's child, and the handler runs inside
 * it, in a worker thread too. When the run ends, the host that ends it records the run as one
 * `jobhost.run <job>` span from its creation to its end, also the trigger's child: a span cannot
 * stay open across a restart or pass from host to host, so it is written once its times are known.
 *
 * The API itself is loaded the first time something needs it: once anything in the process has
 * set OpenTelemetry up (every copy of the API keeps what is registered under one global symbol),
 * or a run carries a stored `traceparent`. Until then nothing can trace, and a start does not pay
 * for loading it (~25 ms: its ~60 CommonJS files).
 */

type Api = typeof import('@opentelemetry/api');

/** Where every copy of the API (major version 1) keeps what was registered: a provider, a propagator, a context manager. */
const API_GLOBAL = Symbol.for('opentelemetry.js.api.1');

interface Loaded {
  api: Api;
  tracer: Tracer;
  /** The global provider as the API hands it out: its proxy, until an SDK gives it a delegate. */
  proxy: TracerProvider;
  /** What the proxy delegates to while no SDK is registered. */
  noopProvider: TracerProvider;
  /** The key the API keeps the active span under (`createContextKey` is `Symbol.for`; `light` checks it). */
  spanKey: symbol;
  /** Whether the API finds a span in a SpanContextOnly; if not, its own context is used. */
  light: boolean;
}

let loaded: Loaded | undefined;
/** The API a worker thread's bundle carries (`provideOtelApi`), used instead of loading the package. */
let provided: Api | undefined;

/** Hands this module the API to use: a worker thread's bundle has its own copy, and no file to load one from. */
export function provideOtelApi(api: Api): void {
  provided = api;
}

function otel(): Loaded {
  if (loaded) return loaded;
  const api = provided ?? (createRequire(import.meta.url)('@opentelemetry/api') as Api);
  const { trace } = api;
  loaded = {
    api,
    tracer: trace.getTracer('jobhost'),
    proxy: trace.getTracerProvider(),
    noopProvider: new api.ProxyTracerProvider().getDelegate(),
    spanKey: api.createContextKey('OpenTelemetry Context Key SPAN'),
    light: false,
  };
  const probe = trace.wrapSpanContext({ traceId: '1'.repeat(32), spanId: '1'.repeat(16), traceFlags: 1 });
  loaded.light = trace.getSpan(new SpanContextOnly(probe)) === probe;
  return loaded;
}

/** Whether anything has set OpenTelemetry up in this process, through any copy of the API (or this module loaded it already). */
function apiInUse(): boolean {
  return loaded !== undefined || (globalThis as Record<symbol, unknown>)[API_GLOBAL] !== undefined;
}

/**
 * The root context while the API is not loaded: a context with nothing in it. `within` runs a
 * function in it as in the API's root context; setting a value on it loads the API.
 */
const NO_CONTEXT: Context = Object.freeze({
  getValue: () => undefined,
  setValue: (key: symbol, value: unknown): Context => otel().api.ROOT_CONTEXT.setValue(key, value),
  deleteValue: (): Context => NO_CONTEXT,
});

/** The API's root context, or its stand-in while the API is not loaded. */
function rootContext(): Context {
  return loaded ? loaded.api.ROOT_CONTEXT : NO_CONTEXT;
}

/**
 * Whether a tracer provider (an SDK) is registered behind the API. Until one is, the tracer is the
 * API's proxy answering with the no-op tracer, and a span under the root context is certain to be
 * an invalid no-op one: the trigger and attempt paths skip building it (a name, attributes, a
 * span object, the validity regexes) for every run. Cached once true (a delegate is never taken
 * back); until then a global read, and two property reads once the API is in use, so an SDK
 * started after this module loaded is seen. A provider this API copy does not know (another copy
 * registered first) counts as one.
 */
let providerSeen = false;
function tracingActive(): boolean {
  if (!providerSeen && apiInUse()) {
    const { api, proxy, noopProvider } = otel();
    providerSeen = !(proxy instanceof api.ProxyTracerProvider) || (proxy as ProxyTracerProvider).getDelegate() !== noopProvider;
  }
  return providerSeen;
}

/** The span names of a job, made once per job rather than three strings per run (each kept until its span is exported). */
interface SpanNames {
  trigger: string;
  attempt: string;
  run: string;
}
const names = new Map<string, SpanNames>();
function namesOf(job: string): SpanNames {
  let n = names.get(job);
  if (n === undefined) {
    n = { trigger: `jobhost.trigger ${job}`, attempt: `jobhost.attempt ${job}`, run: `jobhost.run ${job}` };
    if (names.size < 10_000) names.set(job, n);
  }
  return n;
}

/**
 * A context that holds one span and nothing else: what a span made from a stored `traceparent`
 * has as its parent, and what an inline handler runs in. The API's own context copies a Map for
 * each value set; three of those per run showed in the traced engine's allocations (and so in its
 * GC). Setting a value on it gives the API's context with the span and that value. Made only
 * once the API is loaded.
 */
class SpanContextOnly implements Context {
  readonly #span: Span;
  constructor(span: Span) {
    this.#span = span;
  }
  getValue(key: symbol): unknown {
    return key === loaded!.spanKey ? this.#span : undefined;
  }
  setValue(key: symbol, value: unknown): Context {
    const { api } = loaded!;
    return api.trace.setSpan(api.ROOT_CONTEXT, this.#span).setValue(key, value);
  }
  deleteValue(key: symbol): Context {
    return key === loaded!.spanKey ? loaded!.api.ROOT_CONTEXT : this;
  }
}

/** The root context with `span` in it. */
function withSpan(span: Span): Context {
  const { api, light } = otel();
  return light ? new SpanContextOnly(span) : api.trace.setSpan(api.ROOT_CONTEXT, span);
}

const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const INVALID_TRACE_ID = '0'.repeat(32);
const INVALID_SPAN_ID = '0'.repeat(16);

/** The W3C `traceparent` of a span context. */
export function traceparentOf(sc: SpanContext): string {
  const flags = sc.traceFlags === 1 ? '01' : sc.traceFlags === 0 ? '00' : (sc.traceFlags & 0xff).toString(16).padStart(2, '0');
  return `00-${sc.traceId}-${sc.spanId}-${flags}`;
}

/**
 * The remote span context a `traceparent` names; undefined for anything else (an all-zero id
 * too). Every attempt and every ended run reads one, so it is read with one regex test and
 * fixed slices, no capture groups.
 */
export function parseTraceparent(value: string | undefined): SpanContext | undefined {
  if (value === undefined || value.length !== 55 || !TRACEPARENT.test(value)) return undefined;
  const traceId = value.slice(3, 35);
  const spanId = value.slice(36, 52);
  if (traceId === INVALID_TRACE_ID || spanId === INVALID_SPAN_ID) return undefined;
  return { traceId, spanId, traceFlags: Number.parseInt(value.slice(53), 16), isRemote: true };
}

/** The context a stored `traceparent` continues (the root context when there is none). */
export function contextOf(traceparent: string | undefined): Context {
  const sc = parseTraceparent(traceparent);
  return sc ? withSpan(otel().api.trace.wrapSpanContext(sc)) : rootContext();
}

/**
 * The parent contexts of runs triggered here, by their `traceparent`, from the trigger to the
 * run's span: the attempt and the ended run find theirs without parsing the text back. A run
 * read from elsewhere (after a restart, another cluster host's) is parsed as before. Entries that
 * no run end here takes out (a debounced trigger merged into a waiting run, a run another cluster
 * host ends) stay until the map holds this many, when it is emptied rather than grown: runs still
 * waiting then parse their text, as before.
 */
const parents = new Map<string, Context>();
const MAX_PARENTS = 16_384;

function parentOf(traceparent: string | undefined): Context {
  return (traceparent !== undefined && parents.get(traceparent)) || contextOf(traceparent);
}

/**
 * The caller's context carried by request headers (`traceparent`, `tracestate`, or whatever the
 * application's propagator reads); undefined when they carry none, so the trigger runs under the
 * active context instead.
 */
export function extractContext(headers: Record<string, string | string[] | undefined>): Context | undefined {
  // Nothing registered a propagator (nor anything else): the API's would read nothing.
  if (!apiInUse()) return undefined;
  const { propagation, ROOT_CONTEXT } = otel().api;
  if (headers['traceparent'] === undefined && propagation.fields().every((f) => headers[f] === undefined)) return undefined;
  return propagation.extract(ROOT_CONTEXT, headers);
}

/** The trace fields a run records: empty when nothing traces. */
export interface RunTrace {
  traceId?: string;
  traceparent?: string;
}

/** A trigger's span, open until the run is acknowledged (or refused). */
export interface TriggerSpan {
  /** The run's trace fields, to store with it. */
  readonly fields: RunTrace;
  /** Ends it: refused (`error`), or accepted as run `runId` (a debounced trigger's is the run it joined). */
  end(error?: { code: string; message: string }, runId?: string): void;
}

const NO_FIELDS: RunTrace = Object.freeze({});
const UNTRACED_TRIGGER: TriggerSpan = Object.freeze({ fields: NO_FIELDS, end: () => undefined });

/**
 * Opens the span of a trigger of `job` under the active context: the caller's. A schedule fire
 * starts a trace of its own, and never joins the request that happened to arm its timer. The run's
 * id is set when it ends accepted: a refused trigger's span names no run that never was.
 */
export function startTriggerSpan(job: string, source: string): TriggerSpan {
  // Nothing has set OpenTelemetry up: no SDK, and no context manager to hold a caller's trace.
  if (!apiInUse()) return UNTRACED_TRIGGER;
  const { api, tracer } = otel();
  const { ROOT_CONTEXT, SpanKind, trace } = api;
  const parent = source === 'schedule' || source === 'catch-up' ? ROOT_CONTEXT : api.context.active();
  // No SDK and no caller's trace in the context: the no-op tracer's span would be invalid.
  if (parent === ROOT_CONTEXT && !tracingActive()) return UNTRACED_TRIGGER;
  const span = tracer.startSpan(namesOf(job).trigger, { kind: SpanKind.PRODUCER, attributes: { 'jobhost.job': job, 'jobhost.run.source': source } }, parent);
  const sc = span.spanContext();
  // No SDK (or nothing sampled this far up and no trace to continue): the no-op span's context is
  // invalid, and the run carries no trace fields.
  if (!api.isSpanContextValid(sc)) return new Trigger(span, NO_FIELDS);
  const traceparent = traceparentOf(sc);
  if (parents.size >= MAX_PARENTS) parents.clear();
  // As the text would read back: a remote parent (the attempt may as well run on another host).
  parents.set(traceparent, withSpan(trace.wrapSpanContext({ traceId: sc.traceId, spanId: sc.spanId, traceFlags: sc.traceFlags, isRemote: true })));
  return new Trigger(span, { traceId: sc.traceId, traceparent });
}

class Trigger implements TriggerSpan {
  readonly #span: Span;
  readonly fields: RunTrace;
  constructor(span: Span, fields: RunTrace) {
    this.#span = span;
    this.fields = fields;
  }
  end(error?: { code: string; message: string }, runId?: string): void {
    if (runId !== undefined) this.#span.setAttribute('jobhost.run.id', runId);
    if (error) {
      this.#span.setStatus({ code: loaded!.api.SpanStatusCode.ERROR, message: `${error.code}: ${error.message}` });
      // A refused run never ends here: nothing will ask for its parent.
      if (this.fields.traceparent !== undefined) parents.delete(this.fields.traceparent);
    }
    this.#span.end();
  }
}

/** An attempt's span: the context the handler runs in, and its end. */
export interface AttemptSpan {
  readonly context: Context;
  /** The attempt span's `traceparent`, for a handler in another thread; undefined when nothing traces. */
  readonly traceparent: string | undefined;
  /** Once; later calls do nothing (an abort, then the attempt's report). */
  end(error: RunError | null): void;
}

const UNTRACED_ATTEMPT: AttemptSpan = Object.freeze({
  get context(): Context {
    return rootContext();
  },
  traceparent: undefined,
  end: () => undefined,
});

/** Opens the span of attempt `attempt` of run `runId`, under the run's stored trace. */
export function startAttemptSpan(job: string, runId: string, attempt: number, traceparent: string | undefined, host?: string | null): AttemptSpan {
  // No SDK and no stored trace to continue: the no-op tracer's span would be invalid.
  if (traceparent === undefined && !tracingActive()) return UNTRACED_ATTEMPT;
  const attributes = host
    ? { 'jobhost.job': job, 'jobhost.run.id': runId, 'jobhost.attempt': attempt, 'jobhost.host': host }
    : { 'jobhost.job': job, 'jobhost.run.id': runId, 'jobhost.attempt': attempt };
  const { api, tracer } = otel();
  return new Attempt(tracer.startSpan(namesOf(job).attempt, { kind: api.SpanKind.CONSUMER, attributes }, parentOf(traceparent)));
}

/** One object per attempt: its context is built only for a traced attempt, and only when asked for (an inline handler). */
class Attempt implements AttemptSpan {
  readonly #span: Span;
  readonly traceparent: string | undefined;
  #ended = false;
  constructor(span: Span) {
    this.#span = span;
    const sc = span.spanContext();
    this.traceparent = loaded!.api.isSpanContextValid(sc) ? traceparentOf(sc) : undefined;
  }
  get context(): Context {
    // Only a traced attempt runs inside its span: nothing is built for the no-op one.
    return this.traceparent === undefined ? rootContext() : withSpan(this.#span);
  }
  end(error: RunError | null): void {
    if (this.#ended) return;
    this.#ended = true;
    if (error) {
      this.#span.setStatus({ code: loaded!.api.SpanStatusCode.ERROR, message: `${error.code}: ${error.message}` });
      this.#span.setAttribute('jobhost.error.code', error.code);
    }
    this.#span.end();
  }
}

/** A run that ended, as its span records it. */
interface EndedRun {
  id: string;
  job: string;
  source: string;
  status: string;
  createdAt: string;
  endedAt: string | null;
  host?: string | null | undefined;
  traceparent?: string | undefined;
  error: RunError | null;
}

/** Records an ended run as its `jobhost.run` span (created → ended), under its trigger's span. */
export function recordRunSpan(run: EndedRun): void {
  // Nothing has set OpenTelemetry up: the no-op tracer would record nothing.
  if (run.traceparent === undefined || !apiInUse()) return;
  const attributes = run.host
    ? { 'jobhost.job': run.job, 'jobhost.run.id': run.id, 'jobhost.run.source': run.source, 'jobhost.run.status': run.status, 'jobhost.host': run.host }
    : { 'jobhost.job': run.job, 'jobhost.run.id': run.id, 'jobhost.run.source': run.source, 'jobhost.run.status': run.status };
  const { api, tracer } = otel();
  const span = tracer.startSpan(
    namesOf(run.job).run,
    { kind: api.SpanKind.INTERNAL, attributes, startTime: Date.parse(run.createdAt) },
    parentOf(run.traceparent),
  );
  parents.delete(run.traceparent);
  if (run.status !== 'succeeded' && run.error) {
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: `${run.error.code}: ${run.error.message}` });
    span.setAttribute('jobhost.error.code', run.error.code);
  }
  span.end(run.endedAt === null ? undefined : Date.parse(run.endedAt));
}

/** Log line fields of a span: `trace_id` and `span_id`, as OpenTelemetry's log correlation names them. */
export function logFields(traceparent: string | undefined): { trace_id: string; span_id: string } | undefined {
  return traceparent === undefined ? undefined : { trace_id: traceparent.slice(3, 35), span_id: traceparent.slice(36, 52) };
}

/** Runs `fn` in the caller's trace when the request's headers carry one (`traceparent`, SPEC §15): a trigger over HTTP, one run or many. */
export function inCallerContext<T>(headers: Record<string, string | string[] | undefined>, fn: () => T): T {
  const ctx = extractContext(headers);
  return ctx === undefined ? fn() : within(ctx, fn);
}

/** Runs `fn` inside `ctx` (a no-op wrapper without a context manager). */
export function within<T>(ctx: Context, fn: () => T): T {
  if (loaded === undefined) return fn();
  return loaded.api.context.with(ctx === NO_CONTEXT ? loaded.api.ROOT_CONTEXT : ctx, fn);
}

/**
 * Whether an SDK is set up behind the API in this process (an application's, or `jobhost
 * start`'s): what worker threads are started with decides on it (`WorkerPool`).
 */
export function tracingSetUp(): boolean {
  return tracingActive();
}

/** The API this module traces through (loaded now if it was not): what `thread-spans.ts` hands worker threads' spans on with. */
export function otelApi(): Api {
  return otel().api;
}
