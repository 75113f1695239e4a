import { context, DiagLogLevel, diag, type ProxyTracerProvider, propagation, trace } from '@opentelemetry/api';

/**
 * The OpenTelemetry SDK, for `jobhost start` (and its worker threads) when the environment asks
 * for it with the standard variables. An application that embeds the host sets up its own SDK
 * and never comes here. The SDK is imported only then, so a host without tracing loads none of it.
 */

/** True when the standard `OTEL_*` variables ask for traces to be exported. */
export function otelRequested(env: NodeJS.ProcessEnv): boolean {
  if (env['OTEL_SDK_DISABLED']?.trim().toLowerCase() === 'true') return false;
  const exporters = env['OTEL_TRACES_EXPORTER'];
  if (exporters !== undefined && exporters.trim() !== '') return exporters.split(',').some((e) => e.trim() !== 'none');
  return Boolean(env['OTEL_EXPORTER_OTLP_ENDPOINT'] || env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']);
}

let problems = 0;

/** What the SDK reported as going wrong since start (exports that failed, spans dropped): `jobhost_trace_export_problems_total`. */
export function traceExportProblems(): number {
  return problems;
}

/**
 * The SDK's own diagnostics (a collector out of reach, spans dropped from a full queue) go to
 * `warn` and are counted: a run never waits for, nor fails with, its spans' export. Each kind of
 * message is logged once a minute at most, so a collector down for an hour is not a log flood.
 */
function routeDiagnostics(warn: (msg: string) => void): void {
  const last = new Map<string, number>();
  const report = (message: string, ...args: unknown[]): void => {
    problems++;
    const now = Date.now();
    const key = message.slice(0, 80);
    if ((last.get(key) ?? 0) > now - 60_000) return;
    last.set(key, now);
    const detail = args.map((a) => (a instanceof Error ? a.message : typeof a === 'string' ? a : '')).filter(Boolean);
    warn([message, ...detail].join(' '));
  };
  const quiet = (): void => undefined;
  diag.setLogger({ error: report, warn: report, info: quiet, debug: quiet, verbose: quiet }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
}

export interface Otel {
  /** Exports the spans ended so far. */
  flush(): Promise<void>;
  /** Exports what is left and stops; bounded by `timeoutMs`. */
  shutdown(timeoutMs: number): Promise<void>;
}

/**
 * Starts the Node SDK from the environment (exporter, endpoint, protocol, sampler, resource and
 * propagators all come from `OTEL_*`), traces only: jobhost's metrics are Prometheus' and its
 * logs pino's. `service.name` defaults to `jobhost`.
 */
export async function startOtel(warn?: (msg: string) => void): Promise<Otel> {
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const sdk = new NodeSDK({
    serviceName: process.env['OTEL_SERVICE_NAME'] ?? 'jobhost',
    instrumentations: [],
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  if (warn) routeDiagnostics(warn);
  const provider = (): { forceFlush?(): Promise<void> } => (trace.getTracerProvider() as ProxyTracerProvider).getDelegate() as { forceFlush?(): Promise<void> };
  return {
    flush: async () => {
      await provider().forceFlush?.();
    },
    shutdown: async (timeoutMs) => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        sdk.shutdown().catch(() => undefined),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
          timer.unref();
        }),
      ]);
      clearTimeout(timer);
    },
  };
}

/** The span exporter module of the OTLP protocol `OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL` names (http/protobuf by default, as the SDK's). */
function exporterModule(env: NodeJS.ProcessEnv): Promise<{ OTLPTraceExporter: new () => import('@opentelemetry/sdk-trace').SpanExporter }> {
  const protocol = (env['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'] ?? env['OTEL_EXPORTER_OTLP_PROTOCOL'] ?? 'http/protobuf').trim();
  if (protocol === 'http/json') return import('@opentelemetry/exporter-trace-otlp-http');
  if (protocol === 'grpc') return import('@opentelemetry/exporter-trace-otlp-grpc');
  return import('@opentelemetry/exporter-trace-otlp-proto');
}

/**
 * A worker thread's tracer: the trace SDK, an OTLP exporter, the context manager and the W3C
 * propagator, without the rest of the Node SDK (its metrics, logs and every exporter kind would
 * cost each thread more than a second and tens of MB). The exporter reads its endpoint, headers
 * and protocol from the same `OTEL_*` as the main thread's; the resource from `OTEL_SERVICE_NAME`
 * and `OTEL_RESOURCE_ATTRIBUTES`. Spans a handler makes are children of its attempt's span (the
 * thread is handed its `traceparent`), so the thread needs no sampler of its own: parent-based.
 */
export async function startThreadOtel(env: NodeJS.ProcessEnv = process.env): Promise<Otel> {
  const [{ TracerProvider, BatchSpanProcessor }, { AsyncLocalStorageContextManager }, { W3CTraceContextPropagator }, resources, { OTLPTraceExporter }] =
    await Promise.all([
      import('@opentelemetry/sdk-trace'),
      import('@opentelemetry/context-async-hooks'),
      import('@opentelemetry/core'),
      import('@opentelemetry/resources'),
      exporterModule(env),
    ]);
  const resource = resources
    .resourceFromAttributes({ 'service.name': env['OTEL_SERVICE_NAME'] ?? 'jobhost' })
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const provider = new TracerProvider({ resource, spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter() })] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  return {
    flush: () => provider.forceFlush(),
    shutdown: async (timeoutMs) => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        provider.shutdown().catch(() => undefined),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
          timer.unref();
        }),
      ]);
      clearTimeout(timer);
    },
  };
}
