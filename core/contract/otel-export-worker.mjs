// @ts-check
// The export thread of `ThreadBatchSpanProcessor` (otel-export.ts): rows of span values come in
// from the main thread, are rebuilt as read-only spans and go through the SDK's own
// BatchSpanProcessor and the OTLP exporter of the protocol asked for, so batching, retries and
// every `OTEL_EXPORTER_OTLP_*` setting are the SDK's. Plain JavaScript: a worker thread has no
// TypeScript loader, in a clone or in the installed package (the build copies this file as is).
import { parentPort, workerData } from 'node:worker_threads';
import { DiagLogLevel, diag } from '@opentelemetry/api';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace';

const port = /** @type {import('node:worker_threads').MessagePort} */ (parentPort);
const options = workerData;

/** The thread's diagnostics (an export that failed, spans dropped) are the main thread's to log and count. */
const forward =
  (/** @type {'warn' | 'error'} */ level) =>
  (/** @type {string} */ message, /** @type {unknown[]} */ ...args) => {
    const detail = args.map((a) => (a instanceof Error ? a.message : typeof a === 'string' ? a : '')).filter(Boolean);
    port.postMessage({ diag: level, message: [message, ...detail].join(' ') });
  };
const quiet = () => undefined;
diag.setLogger(
  { error: forward('error'), warn: forward('warn'), info: quiet, debug: quiet, verbose: quiet },
  { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
);

const { OTLPTraceExporter } = await import(options.exporter);
const { exporter, ...batch } = options;
const processor = new BatchSpanProcessor({ exporter: new OTLPTraceExporter(), ...batch });

/** @type {unknown[]} */
const scopes = [];
/** @type {unknown[]} */
const resources = [];

/** @param {string | undefined} value */
const traceState = (value) => (value ? { serialize: () => value } : undefined);

/** A read-only span (what an exporter reads) from the row at `rows[i]`, laid out as otel-export.ts writes it. */
class RowSpan {
  /** @param {any[]} r @param {number} i */
  constructor(r, i) {
    this._context = { traceId: r[i], spanId: r[i + 1], traceFlags: r[i + 2], traceState: traceState(r[i + 3]) };
    this.parentSpanContext = r[i + 4] === undefined ? undefined : { traceId: r[i], spanId: r[i + 4], traceFlags: r[i + 2], isRemote: r[i + 5] };
    this.name = r[i + 6];
    this.kind = r[i + 7];
    this.startTime = [r[i + 8], r[i + 9]];
    this.endTime = [r[i + 10], r[i + 11]];
    this.attributes = r[i + 12];
    this.droppedAttributesCount = r[i + 13];
    this.events = r[i + 14] === 0 ? [] : r[i + 14];
    this.droppedEventsCount = r[i + 15];
    this.links =
      r[i + 16] === 0
        ? []
        : r[i + 16].map((/** @type {any} */ l) => ({
            context: { traceId: l.traceId, spanId: l.spanId, traceFlags: l.traceFlags, isRemote: l.isRemote, traceState: traceState(l.traceState) },
            attributes: l.attributes,
            droppedAttributesCount: l.droppedAttributesCount,
          }));
    this.droppedLinksCount = r[i + 17];
    this.status = r[i + 19] === undefined ? { code: r[i + 18] } : { code: r[i + 18], message: r[i + 19] };
    const scope = r[i + 20];
    if (typeof scope === 'number') this.instrumentationScope = scopes[scope];
    else {
      scopes.push(scope);
      this.instrumentationScope = scope;
    }
    this.resource = resources[r[i + 21]];
    this.ended = true;
  }
  spanContext() {
    return this._context;
  }
  get duration() {
    const s = this.endTime[0] - this.startTime[0];
    const ns = this.endTime[1] - this.startTime[1];
    return ns < 0 ? [s - 1, ns + 1e9] : [s, ns];
  }
}

const WIDTH = 22;

port.on('message', async (m) => {
  if (m.rows) {
    const rows = m.rows;
    for (let i = 0; i < rows.length; i += WIDTH) processor.onEnd(/** @type {any} */ (new RowSpan(rows, i)));
    port.postMessage({ ack: m.count });
  } else if (m.resource) {
    resources[m.resource.index] = { attributes: m.resource.attributes, schemaUrl: m.resource.schemaUrl, asyncAttributesPending: false };
  } else if (m.op) {
    try {
      await (m.op === 'flush' ? processor.forceFlush() : processor.shutdown());
      port.postMessage({ done: m.id });
    } catch (e) {
      port.postMessage({ done: m.id, error: e instanceof Error ? e.message : String(e) });
    }
  }
});
