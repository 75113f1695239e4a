import type { ProxyTracerProvider } from '@opentelemetry/api';
import { boundedShutdown, type ForwardModules, type Otel, type ThreadOtelModules } from './otel-thread.js';

export type { Otel } from './otel-thread.js';

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
function routeDiagnostics(api: typeof import('@opentelemetry/api'), warn: (msg: string) => void): void {
  const { diag, DiagLogLevel } = api;
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

/**
 * Starts the Node SDK from the environment (exporter, endpoint, protocol, sampler, resource and
 * propagators all come from `OTEL_*`), traces only: jobhost's metrics are Prometheus' and its
 * logs pino's. `service.name` defaults to `jobhost`.
 */
export async function startOtel(warn?: (msg: string) => void): Promise<Otel> {
  // The API too is loaded only here (and by `tracing.ts` once something is set up): a start without tracing loads none of it.
  const [api, { NodeSDK }] = await Promise.all([import('@opentelemetry/api'), import('@opentelemetry/sdk-node')]);
  const sdk = new NodeSDK({
    serviceName: process.env['OTEL_SERVICE_NAME'] ?? 'jobhost',
    instrumentations: [],
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  if (warn) routeDiagnostics(api, warn);
  const provider = (): { forceFlush?(): Promise<void> } =>
    (api.trace.getTracerProvider() as ProxyTracerProvider).getDelegate() as { forceFlush?(): Promise<void> };
  return {
    flush: async () => {
      await provider().forceFlush?.();
    },
    shutdown: (timeoutMs) => boundedShutdown(() => sdk.shutdown(), timeoutMs),
  };
}

/** A variable as the SDK reads a string one: unset when empty or blank, else as it is (not trimmed). */
function envString(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw.trim() === '' ? undefined : raw;
}

/**
 * The OTLP protocol for traces as the Node SDK picks it for the main thread, so that worker
 * threads export the same way: `..._TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL` (a blank
 * one is unset), else `http/protobuf`.
 */
export function otlpProtocol(env: NodeJS.ProcessEnv): string {
  return envString(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? envString(env, 'OTEL_EXPORTER_OTLP_PROTOCOL') ?? 'http/protobuf';
}

/** The span exporter module of the protocol `otlpProtocol` reads (http/protobuf for one it does not know, as the SDK). */
function exporterModule(env: NodeJS.ProcessEnv): string {
  const protocol = otlpProtocol(env);
  if (protocol === 'http/json') return import.meta.resolve('@opentelemetry/exporter-trace-otlp-http');
  if (protocol === 'grpc') return import.meta.resolve('@opentelemetry/exporter-trace-otlp-grpc');
  return import.meta.resolve('@opentelemetry/exporter-trace-otlp-proto');
}

/**
 * The URLs of the modules a worker thread's tracer needs, resolved here in the main thread: a
 * thread runs from an esbuild bundle (a `data:` URL) that can neither resolve a package name nor
 * carry the SDK's CommonJS modules, so it imports them by URL. Undefined when nothing asks for
 * tracing.
 */
export function threadOtelModules(env: NodeJS.ProcessEnv = process.env): ThreadOtelModules | undefined {
  if (!otelRequested(env)) return undefined;
  return {
    sdkTrace: import.meta.resolve('@opentelemetry/sdk-trace'),
    contextAsyncHooks: import.meta.resolve('@opentelemetry/context-async-hooks'),
    core: import.meta.resolve('@opentelemetry/core'),
    resources: import.meta.resolve('@opentelemetry/resources'),
    exporter: exporterModule(env),
  };
}

/**
 * The URLs of the modules a worker thread needs to make its handler's spans and hand them to the
 * main thread (`startThreadForwarding`): for an application that set up the SDK in code, which a
 * thread cannot share, and which no `OTEL_*` describes for the thread to build its own.
 */
export function threadForwardModules(): ForwardModules {
  return {
    sdkTrace: import.meta.resolve('@opentelemetry/sdk-trace'),
    contextAsyncHooks: import.meta.resolve('@opentelemetry/context-async-hooks'),
    core: import.meta.resolve('@opentelemetry/core'),
  };
}
