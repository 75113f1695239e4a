import { parentPort, workerData } from 'node:worker_threads';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { type ExportThreadData, F, type FromThread, LINK_FIELDS, SPAN_FIELDS, type ThreadError, type ToThread } from './otel-export-wire.js';

/**
 * The span export thread (`otel-export.ts`): it turns the batches the main thread's batch span
 * processor hands over back into spans and gives them to the SDK's OTLP exporter, which
 * serializes them (the bulk of an export's CPU) and sends them from here. It runs from a bundle of
 * this file (esbuild, or `dist/contract/otel-export-thread.js` in the package) and loads the
 * exporter by URL.
 */

const port = parentPort!;
const post = (message: FromThread): void => port.postMessage(message);

type Resource = ReadableSpan['resource'];
type Scope = ReadableSpan['instrumentationScope'];

async function load(data: ExportThreadData): Promise<SpanExporter> {
  const [api, { OTLPTraceExporter }] = await Promise.all([
    import(data.api) as Promise<typeof import('@opentelemetry/api')>,
    import(data.exporter) as Promise<{ OTLPTraceExporter: new () => SpanExporter }>,
  ]);
  // The exporter's own warnings (this thread's copy of the API) go to the main thread's diagnostics, counted there.
  const forward = (message: string, ...args: unknown[]): void => {
    const detail = args.map((a) => (a instanceof Error ? a.message : typeof a === 'string' ? a : '')).filter(Boolean);
    post({ type: 'diag', message: [message, ...detail].join(' ') });
  };
  const quiet = (): void => undefined;
  api.diag.setLogger(
    { error: forward, warn: forward, info: quiet, debug: quiet, verbose: quiet },
    { logLevel: api.DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  return new OTLPTraceExporter();
}

const exporter = load(workerData as ExportThreadData);
const resources = new Map<number, Resource>();
const scopes = new Map<number, Scope>();

/** A serialized trace state, as the exporters read it (`null`: the span has none). */
function traceState(text: string | null): { serialize(): string } | undefined {
  return text === null ? undefined : { serialize: () => text };
}

/** What crosses of an exporter's error: an OTLPExporterError's HTTP status and the collector's answer too. */
function threadError(error: Error): ThreadError {
  const { code, data } = error as Error & { code?: unknown; data?: unknown };
  return {
    message: error.message,
    name: error.name,
    ...(typeof code === 'number' || typeof code === 'string' ? { code } : {}),
    ...(typeof data === 'string' ? { data } : {}),
  };
}

/** The links of a span, from their flat values. */
function links(values: unknown[] | 0): ReadableSpan['links'] {
  if (values === 0) return [];
  const out: ReadableSpan['links'] = [];
  for (let at = 0; at < values.length; at += LINK_FIELDS) {
    const state = traceState(values[at + 4] as string | null);
    out.push({
      context: {
        traceId: values[at] as string,
        spanId: values[at + 1] as string,
        traceFlags: values[at + 2] as number,
        ...(values[at + 3] === undefined ? {} : { isRemote: values[at + 3] as boolean }),
        ...(state ? { traceState: state as never } : {}),
      },
      attributes: values[at + 5] as ReadableSpan['attributes'],
      droppedAttributesCount: values[at + 6] as number,
    });
  }
  return out;
}

/** The spans of an export request, rebuilt as the exporters read them (what `ReadableSpan` says they read). */
function unpack(values: unknown[]): ReadableSpan[] {
  const spans: ReadableSpan[] = [];
  for (let at = 0; at < values.length; at += SPAN_FIELDS) {
    const v = (field: number): unknown => values[at + field];
    const context = {
      traceId: v(F.traceId) as string,
      spanId: v(F.spanId) as string,
      traceFlags: v(F.traceFlags) as number,
      traceState: traceState(v(F.traceState) as string | null),
    };
    const parent = v(F.parentSpanId) as string;
    const start: [number, number] = [v(F.startSeconds) as number, v(F.startNanos) as number];
    const end: [number, number] = [v(F.endSeconds) as number, v(F.endNanos) as number];
    let nanos = end[1] - start[1];
    let seconds = end[0] - start[0];
    if (nanos < 0) {
      seconds -= 1;
      nanos += 1e9;
    }
    spans.push({
      name: v(F.name) as string,
      kind: v(F.kind) as number,
      spanContext: () => context as never,
      ...(parent === ''
        ? {}
        : { parentSpanContext: { traceId: context.traceId, spanId: parent, traceFlags: context.traceFlags, isRemote: v(F.parentIsRemote) as boolean } }),
      startTime: start,
      endTime: end,
      duration: [seconds, nanos],
      ended: true,
      status: { code: v(F.statusCode) as number, ...(v(F.statusMessage) === undefined ? {} : { message: v(F.statusMessage) as string }) },
      attributes: v(F.attributes) as ReadableSpan['attributes'],
      droppedAttributesCount: v(F.droppedAttributes) as number,
      events: v(F.events) === 0 ? [] : (v(F.events) as ReadableSpan['events']),
      droppedEventsCount: v(F.droppedEvents) as number,
      links: links(v(F.links) as unknown[] | 0),
      droppedLinksCount: v(F.droppedLinks) as number,
      resource: resources.get(v(F.resource) as number)!,
      instrumentationScope: scopes.get(v(F.scope) as number)!,
    });
  }
  return spans;
}

port.on('message', (message: ToThread) => {
  if (message.type === 'export') {
    for (const [id, attributes, schemaUrl] of message.resources) resources.set(id, { attributes, schemaUrl } as unknown as Resource);
    for (const [id, scope] of message.scopes) scopes.set(id, scope);
    const spans = unpack(message.spans);
    exporter.then(
      (e) =>
        e.export(spans, (result) => post({ type: 'result', id: message.id, code: result.code, ...(result.error ? { error: threadError(result.error) } : {}) })),
      (err: unknown) =>
        post({
          type: 'result',
          id: message.id,
          code: 1,
          error: { message: `the OTLP exporter did not load: ${err instanceof Error ? err.message : String(err)}` },
        }),
    );
  } else {
    exporter
      .then((e) => e.shutdown())
      .catch(() => undefined)
      .finally(() => post({ type: 'shut' }));
  }
});
post({ type: 'ready' });
