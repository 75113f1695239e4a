/**
 * A worker thread's side of tracing (SPEC §15): the thread runs from an esbuild bundle, so this
 * module imports nothing of the SDK by name — the main thread resolves the modules' URLs
 * (`threadOtelModules` in `otel-sdk.ts`) and hands them over in the thread's data.
 */

type Api = typeof import('@opentelemetry/api');

export interface Otel {
  /** Exports the spans ended so far. */
  flush(): Promise<void>;
  /** Exports what is left and stops; bounded by `timeoutMs`. */
  shutdown(timeoutMs: number): Promise<void>;
}

/** An SDK's shutdown (its last export), waited for at most `timeoutMs`; its failure is not the caller's. */
export async function boundedShutdown(shutdown: () => Promise<void>, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    shutdown().catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    }),
  ]);
  clearTimeout(timer);
}

/** Where a worker thread loads its tracer's modules from (`startThreadOtel`). */
export interface ThreadOtelModules {
  sdkTrace: string;
  contextAsyncHooks: string;
  core: string;
  resources: string;
  exporter: string;
}

/**
 * A worker thread's tracer: the trace SDK, an OTLP exporter, the context manager and the W3C
 * propagator, without the rest of the Node SDK (its metrics, logs and every exporter kind would
 * cost each thread more than a second and tens of MB). The exporter reads its endpoint, headers
 * and protocol from the same `OTEL_*` as the main thread's; the resource from `OTEL_SERVICE_NAME`
 * and `OTEL_RESOURCE_ATTRIBUTES`. Spans a handler makes are children of its attempt's span (the
 * thread is handed its `traceparent`), so the thread needs no sampler of its own: parent-based.
 */
export async function startThreadOtel(modules: ThreadOtelModules, env: NodeJS.ProcessEnv = process.env): Promise<Otel & { api: Api }> {
  const [api, { TracerProvider, BatchSpanProcessor }, { AsyncLocalStorageContextManager }, { W3CTraceContextPropagator }, resources, { OTLPTraceExporter }] =
    await Promise.all([
      // The API the thread's bundle carries (loaded now, not with the thread): the copy the tracer is registered in.
      import('@opentelemetry/api'),
      import(modules.sdkTrace) as Promise<typeof import('@opentelemetry/sdk-trace')>,
      import(modules.contextAsyncHooks) as Promise<typeof import('@opentelemetry/context-async-hooks')>,
      import(modules.core) as Promise<typeof import('@opentelemetry/core')>,
      import(modules.resources) as Promise<typeof import('@opentelemetry/resources')>,
      import(modules.exporter) as Promise<{ OTLPTraceExporter: new () => import('@opentelemetry/sdk-trace').SpanExporter }>,
    ]);
  const resource = resources
    .resourceFromAttributes({ 'service.name': env['OTEL_SERVICE_NAME'] ?? 'jobhost' })
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const processor = new BatchSpanProcessor({ exporter: new OTLPTraceExporter(), ...batchOptions(env) });
  const provider = new TracerProvider({ resource, spanProcessors: [processor] });
  api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  api.trace.setGlobalTracerProvider(provider);
  return {
    api,
    flush: () => provider.forceFlush(),
    shutdown: (timeoutMs) => boundedShutdown(() => provider.shutdown(), timeoutMs),
  };
}

/**
 * The batch processor's `OTEL_BSP_*` sizes and delays, as the main thread's Node SDK reads them
 * (a positive number, else the default): the SDK's BatchSpanProcessor itself reads no variable, so
 * a thread would otherwise drop spans past 2,048 queued where its main thread keeps them.
 */
function batchOptions(env: NodeJS.ProcessEnv): {
  maxQueueSize?: number;
  maxExportBatchSize?: number;
  scheduledDelayMillis?: number;
  exportTimeoutMillis?: number;
} {
  const options: ReturnType<typeof batchOptions> = {};
  const read = (name: string): number | undefined => {
    const value = Number(env[name]?.trim() || Number.NaN);
    return value > 0 ? value : undefined;
  };
  const entries = [
    ['maxQueueSize', 'OTEL_BSP_MAX_QUEUE_SIZE'],
    ['maxExportBatchSize', 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE'],
    ['scheduledDelayMillis', 'OTEL_BSP_SCHEDULE_DELAY'],
    ['exportTimeoutMillis', 'OTEL_BSP_EXPORT_TIMEOUT'],
  ] as const;
  for (const [option, name] of entries) {
    const value = read(name);
    if (value !== undefined) options[option] = value;
  }
  return options;
}

/** Where a worker thread loads what it needs to hand its spans to the main thread (`startThreadForwarding`). */
export type ForwardModules = Pick<ThreadOtelModules, 'sdkTrace' | 'contextAsyncHooks' | 'core'>;

/** A span context as it crosses between threads. */
export interface FlatSpanContext {
  traceId: string;
  spanId: string;
  traceFlags: number;
  /** The W3C `tracestate`, serialized. */
  traceState?: string;
  isRemote?: boolean;
}

type Attributes = Record<string, unknown>;

/**
 * A span a worker thread made, flat for the trip to the main thread, where `acceptThreadSpans`
 * (`tracing.ts`) gives it to the application's SDK as if made there: the same ids, times,
 * attributes, events and links.
 */
export interface ThreadSpan {
  name: string;
  kind: number;
  context: FlatSpanContext;
  parent: FlatSpanContext | undefined;
  startTime: [number, number];
  endTime: [number, number];
  duration: [number, number];
  status: { code: number; message?: string };
  attributes: Attributes;
  links: { context: FlatSpanContext; attributes?: Attributes; droppedAttributesCount?: number }[];
  events: { name: string; time: [number, number]; attributes?: Attributes; droppedAttributesCount?: number }[];
  scope: { name: string; version?: string; schemaUrl?: string };
  droppedAttributesCount: number;
  droppedEventsCount: number;
  droppedLinksCount: number;
}

type ReadableSpan = import('@opentelemetry/sdk-trace').ReadableSpan;

function flatContext(sc: import('@opentelemetry/api').SpanContext): FlatSpanContext {
  const flat: FlatSpanContext = { traceId: sc.traceId, spanId: sc.spanId, traceFlags: sc.traceFlags };
  const state = sc.traceState?.serialize();
  if (state) flat.traceState = state;
  if (sc.isRemote !== undefined) flat.isRemote = sc.isRemote;
  return flat;
}

/** A finished span as plain data (attribute values are primitives and arrays of them: they clone). */
export function flatSpan(span: ReadableSpan): ThreadSpan {
  return {
    name: span.name,
    kind: span.kind,
    context: flatContext(span.spanContext()),
    parent: span.parentSpanContext ? flatContext(span.parentSpanContext) : undefined,
    startTime: [span.startTime[0], span.startTime[1]],
    endTime: [span.endTime[0], span.endTime[1]],
    duration: [span.duration[0], span.duration[1]],
    status: { ...span.status },
    attributes: { ...span.attributes },
    links: span.links.map((l) => ({ ...l, context: flatContext(l.context), ...(l.attributes && { attributes: { ...l.attributes } }) })),
    events: span.events.map((e) => ({ ...e, time: [e.time[0], e.time[1]], ...(e.attributes && { attributes: { ...e.attributes } }) })),
    scope: { ...span.instrumentationScope },
    droppedAttributesCount: span.droppedAttributesCount,
    droppedEventsCount: span.droppedEventsCount,
    droppedLinksCount: span.droppedLinksCount,
  };
}

/** At most this many spans a second go from one thread to the main thread; the rest are dropped and counted (as a batch processor's full queue drops them). */
export const FORWARD_MAX_PER_SECOND = 2048;

/**
 * A worker thread's tracer when the application set up the SDK in code (no `OTEL_*` asks for an
 * exporter the thread could build itself): the trace SDK makes the handler's spans here, children
 * of the attempt's span, and each sampled one is handed to `post` as it ends, for the main thread
 * to give to the application's SDK. Nothing is exported from the thread. A handler making spans in
 * a loop cannot flood the main thread: past `FORWARD_MAX_PER_SECOND` they are dropped, and
 * `dropped` is told how many at the end of that second.
 */
export async function startThreadForwarding(
  modules: ForwardModules,
  post: (span: ThreadSpan) => void,
  dropped: (count: number) => void,
): Promise<Otel & { api: Api }> {
  const [api, { TracerProvider }, { AsyncLocalStorageContextManager }, { W3CTraceContextPropagator }] = await Promise.all([
    import('@opentelemetry/api'),
    import(modules.sdkTrace) as Promise<typeof import('@opentelemetry/sdk-trace')>,
    import(modules.contextAsyncHooks) as Promise<typeof import('@opentelemetry/context-async-hooks')>,
    import(modules.core) as Promise<typeof import('@opentelemetry/core')>,
  ]);
  let windowStart = 0;
  let sent = 0;
  let lost = 0;
  const forward: import('@opentelemetry/sdk-trace').SpanProcessor = {
    onStart: () => undefined,
    onEnd: (span) => {
      if ((span.spanContext().traceFlags & api.TraceFlags.SAMPLED) === 0) return;
      const now = Date.now();
      if (now - windowStart >= 1000) {
        windowStart = now;
        sent = 0;
      }
      if (sent < FORWARD_MAX_PER_SECOND) {
        sent++;
        post(flatSpan(span));
        return;
      }
      if (lost++ === 0) {
        setTimeout(
          () => {
            dropped(lost);
            lost = 0;
          },
          1000 - (now - windowStart),
        ).unref();
      }
    },
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
  const provider = new TracerProvider({ spanProcessors: [forward] });
  api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  api.trace.setGlobalTracerProvider(provider);
  return { api, flush: () => Promise.resolve(), shutdown: () => Promise.resolve() };
}
