/**
 * What the main thread and the span export thread (`otel-export.ts`, `otel-export-thread.ts`)
 * say to each other. A batch of spans travels as one flat array, `SPAN_FIELDS` values a span
 * (`F` says which), so the structured clone copies numbers and strings, not the SDK's
 * span objects. A resource or an instrumentation scope is sent once per thread, with the first
 * batch that uses it, and then named by its number.
 */

/**
 * Where each value of one span sits in `ExportRequest.spans`: the trace state is its serialized
 * text (which may be `''`) or `null` for none, the parent span id `''` for a root span, the events the SDK's own plain data or
 * `0` for none, the links `LINK_FIELDS` values each or `0` for none.
 */
export const F = {
  resource: 0,
  scope: 1,
  name: 2,
  kind: 3,
  traceId: 4,
  spanId: 5,
  traceFlags: 6,
  traceState: 7,
  parentSpanId: 8,
  parentIsRemote: 9,
  startSeconds: 10,
  startNanos: 11,
  endSeconds: 12,
  endNanos: 13,
  statusCode: 14,
  statusMessage: 15,
  attributes: 16,
  droppedAttributes: 17,
  events: 18,
  droppedEvents: 19,
  links: 20,
  droppedLinks: 21,
} as const;
export const SPAN_FIELDS = F.droppedLinks + 1;

/** A link: trace id, span id, trace flags, is remote, serialized trace state (or `null`), attributes, dropped attributes. */
export const LINK_FIELDS = 7;

/** A resource the thread has not seen yet: its number, attributes and schema URL. */
export type ResourceDefinition = [id: number, attributes: Record<string, unknown>, schemaUrl: string | undefined];

/** An instrumentation scope the thread has not seen yet: its number and the scope itself (plain data). */
export type ScopeDefinition = [id: number, scope: { name: string; version?: string; schemaUrl?: string }];

/** Main → thread. */
export type ToThread = { type: 'export'; id: number; resources: ResourceDefinition[]; scopes: ScopeDefinition[]; spans: unknown[] } | { type: 'shutdown' };

/** Thread → main. `code` is the SDK's `ExportResultCode` (0 success, 1 failed); `ready` is sent once the thread's script runs. */
export type FromThread =
  | { type: 'ready' }
  | { type: 'result'; id: number; code: number; error?: ThreadError }
  | { type: 'diag'; message: string }
  | { type: 'shut' };

/** An exporter's error, with what the SDK's diagnostics print of it (an HTTP status as `code`, the collector's answer as `data`). */
export interface ThreadError {
  message: string;
  name?: string;
  code?: number | string;
  data?: string;
}

/** What the thread is started with: the URLs of the modules it loads (it runs from a bundle that can resolve no package name). */
export interface ExportThreadData {
  /** `@opentelemetry/api`, for the exporter's diagnostics. */
  api: string;
  /** The OTLP trace exporter of the protocol asked for (`OTLPTraceExporter`). */
  exporter: string;
}
