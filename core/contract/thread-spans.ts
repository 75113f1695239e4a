import type { SpanContext } from '@opentelemetry/api';
import type { FlatSpanContext, ThreadSpan } from './otel-thread.js';
import { otelApi, tracingSetUp } from './tracing.js';

/**
 * Spans a worker thread's handler made, handed on to the SDK set up in this process (SPEC §15):
 * an application that sets its SDK up in code has no `OTEL_*` for a thread to build one of its
 * own, and a thread cannot share it, so the thread makes its spans with the trace SDK and posts
 * each as it ends (`startThreadForwarding`); here they go to the SDK's span processors.
 */

/** What jobhost reaches of an SDK's tracer provider to hand it spans made elsewhere (its own fields: there is no API for it). */
interface SdkProvider {
  /** SDK 1.x. */
  getActiveSpanProcessor?(): SpanSink | undefined;
  /** SDK 2.x. */
  _activeSpanProcessor?: SpanSink;
  _resource?: unknown;
  resource?: unknown;
}
interface SpanSink {
  onEnd(span: unknown): void;
}

let sink: { processor: SpanSink; resource: unknown } | null | undefined;
let sinkProvider: unknown;
/** Why thread spans are dropped, once that is known for good (a processor that threw); told once. */
let broken: string | undefined;
let warned = false;

/**
 * The processor and resource of the SDK set up here; null when the provider is none jobhost knows
 * how to reach. The API's proxy is recognised by its shape, not its class: the application's copy
 * of the API may be another than jobhost's.
 */
function spanSink(): { processor: SpanSink; resource: unknown } | null {
  let provider = otelApi().trace.getTracerProvider() as unknown as SdkProvider & { getDelegate?(): unknown };
  for (let i = 0; i < 4 && typeof provider.getDelegate === 'function'; i++) provider = provider.getDelegate() as typeof provider;
  if (sink !== undefined && sinkProvider === provider) return sink;
  sinkProvider = provider;
  let processor: SpanSink | undefined;
  try {
    processor = provider.getActiveSpanProcessor?.() ?? provider._activeSpanProcessor;
  } catch {
    processor = undefined;
  }
  const resource = provider._resource ?? provider.resource;
  sink = typeof processor?.onEnd === 'function' && resource ? { processor, resource } : null;
  return sink;
}

/**
 * Spans a worker thread's handler made (`startThreadForwarding`), given to the application's SDK
 * as if made here: its span processors (batching, exporting) see them with their own ids, times
 * and parent (the attempt's span), under the application's resource. A provider jobhost cannot
 * reach (not the OpenTelemetry JS SDK's), or a processor that throws on them, drops them from
 * then on, with one warning: never an error out of here, which would stop the thread's other news.
 */
export function acceptThreadSpans(spans: readonly ThreadSpan[], warn?: (msg: string) => void): void {
  if (!tracingSetUp()) return;
  const target = broken === undefined ? spanSink() : null;
  if (!target) {
    if (!warned && warn) {
      warn(
        `a worker thread's spans were dropped: ${broken ?? 'the tracer provider set up in this process has no span processor and resource jobhost can reach (the OpenTelemetry JS SDK has them)'}`,
      );
    }
    warned = true;
    return;
  }
  const api = otelApi();
  const context = (c: FlatSpanContext): SpanContext => ({
    traceId: c.traceId,
    spanId: c.spanId,
    traceFlags: c.traceFlags,
    ...(c.traceState !== undefined && { traceState: api.createTraceState(c.traceState) }),
    ...(c.isRemote !== undefined && { isRemote: c.isRemote }),
  });
  for (const s of spans) {
    const sc = context(s.context);
    const parent = s.parent ? context(s.parent) : undefined;
    try {
      target.processor.onEnd({
        name: s.name,
        kind: s.kind,
        spanContext: () => sc,
        parentSpanContext: parent,
        parentSpanId: parent?.spanId,
        startTime: s.startTime,
        endTime: s.endTime,
        duration: s.duration,
        status: s.status,
        attributes: s.attributes,
        links: s.links.map((l) => ({ ...l, context: context(l.context) })),
        events: s.events,
        ended: true,
        resource: target.resource,
        instrumentationScope: s.scope,
        instrumentationLibrary: s.scope,
        droppedAttributesCount: s.droppedAttributesCount,
        droppedEventsCount: s.droppedEventsCount,
        droppedLinksCount: s.droppedLinksCount,
      });
    } catch (err) {
      broken = `a span processor threw on one (${err instanceof Error ? err.message : String(err)})`;
      acceptThreadSpans([], warn);
      return;
    }
  }
}
