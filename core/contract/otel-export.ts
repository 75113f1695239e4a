import { Worker } from 'node:worker_threads';
import { diag, TraceFlags } from '@opentelemetry/api';
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace';

/**
 * A batch span processor whose export runs in a thread of its own (SPEC §15, `jobhost start`).
 * The SDK's BatchSpanProcessor serializes each batch to OTLP and sends it on the main thread, and
 * keeps every ended span (a few hundred bytes of objects each) queued until then: at the engine's
 * rates that was most of what tracing cost a run (the serializer, the HTTP client and the major
 * GCs of thousands of spans aging in the queue). Here an ended span becomes one row of plain
 * values, rows go to the export thread in batches, and the thread rebuilds them as spans and hands
 * them to the SDK's own BatchSpanProcessor and OTLP exporter there, so batching, retries, the
 * `OTEL_EXPORTER_OTLP_*` settings and the drop-with-a-warning on a full queue are the SDK's.
 * The thread's diagnostics come back to this thread's `diag` (and so to `jobhost`'s warn and its
 * counter). Spans a slow thread has not taken yet are capped at the queue size, dropped past it
 * with the same counted warning.
 */

/*
 * A span's row: 22 values, pushed in `onEnd` in the order the thread's `RowSpan` reads them
 * (otel-export-worker.mjs; its WIDTH is the count).
 */

export interface ThreadExportOptions {
  /** The URL of the exporter module for the OTLP protocol asked for. */
  exporter: string;
  maxQueueSize?: number;
  maxExportBatchSize?: number;
  scheduledDelayMillis?: number;
  exportTimeoutMillis?: number;
}

type Reply = { ack: number } | { done: number; error?: string } | { diag: 'warn' | 'error'; message: string };

export class ThreadBatchSpanProcessor implements SpanProcessor {
  readonly #worker: Worker;
  readonly #maxQueue: number;
  readonly #batch: number;
  /** How long a row may wait here for its batch to fill before it goes anyway. */
  readonly #delay: number;
  #rows: unknown[] = [];
  #count = 0;
  /** Spans posted that the thread has not acknowledged. */
  #inFlight = 0;
  #dropped = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #scopes = new Map<object, number>();
  readonly #resources = new Map<object, number>();
  /** The last span's resource and its index: a provider has one, looked up once. */
  #resource: object | undefined;
  #resourceIndex = 0;
  /** Set while a resource's attributes are still being read: later posts wait behind it, in order. */
  #gate: Promise<void> | undefined;
  #nextId = 0;
  readonly #waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  /** The thread is gone (shut down, or failed): nothing more is posted. */
  #closed = false;
  #shutDown = false;

  constructor(options: ThreadExportOptions) {
    this.#maxQueue = options.maxQueueSize ?? 2048;
    this.#batch = Math.min(options.maxExportBatchSize ?? 512, this.#maxQueue);
    this.#delay = Math.min(options.scheduledDelayMillis ?? 5000, 100);
    // No execArgv of the process: its `--import` preloads (one that starts this very SDK, a
    // TypeScript loader) are not the export thread's to run; it is plain JavaScript.
    this.#worker = new Worker(new URL('./otel-export-worker.mjs', import.meta.url), { workerData: options, execArgv: [] });
    this.#worker.unref();
    this.#worker.on('message', (m: Reply) => this.#reply(m));
    this.#worker.on('error', (e) => {
      diag.error('span export thread failed', e);
      this.#fail(e);
    });
    this.#worker.on('exit', () => this.#fail(new Error('span export thread exited')));
  }

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    const sc = span.spanContext();
    if ((sc.traceFlags & TraceFlags.SAMPLED) === 0 || this.#shutDown) return;
    // A thread that failed takes nothing more: its spans are dropped, counted like a full queue's.
    if (this.#closed || this.#inFlight + this.#count >= this.#maxQueue) {
      if (this.#dropped++ === 0) queueMicrotask(() => this.#reportDropped());
      return;
    }
    const parent = span.parentSpanContext;
    const status = span.status;
    this.#rows.push(
      sc.traceId,
      sc.spanId,
      sc.traceFlags,
      sc.traceState?.serialize(),
      parent?.spanId,
      parent?.isRemote,
      span.name,
      span.kind,
      span.startTime[0],
      span.startTime[1],
      span.endTime[0],
      span.endTime[1],
      span.attributes,
      span.droppedAttributesCount,
      span.events.length === 0 ? 0 : span.events.map(eventOf),
      span.droppedEventsCount,
      span.links.length === 0 ? 0 : span.links.map(linkOf),
      span.droppedLinksCount,
      status.code,
      status.message,
      this.#scopeOf(span.instrumentationScope),
      span.resource === this.#resource ? this.#resourceIndex : this.#resourceOf(span.resource),
    );
    if (++this.#count >= this.#batch) this.#post();
    else this.#timer ??= setTimeout(() => this.#post(), this.#delay).unref();
  }

  forceFlush(): Promise<void> {
    return this.#ask('flush');
  }

  async shutdown(): Promise<void> {
    if (this.#shutDown) return;
    this.#shutDown = true;
    if (this.#closed) return;
    try {
      await this.#ask('shutdown');
    } finally {
      this.#closed = true;
      await this.#worker.terminate();
    }
  }

  /** The rows so far go to the thread. */
  #post(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#count === 0) return;
    this.#inFlight += this.#count;
    const message = { rows: this.#rows, count: this.#count };
    this.#rows = [];
    this.#count = 0;
    this.#send(message);
  }

  #send(message: object): void {
    if (this.#gate) this.#gate = this.#gate.then(() => this.#worker.postMessage(message));
    else this.#worker.postMessage(message);
  }

  #ask(op: 'flush' | 'shutdown'): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#post();
    const id = ++this.#nextId;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      this.#send({ op, id });
    });
  }

  #reply(m: Reply): void {
    if ('ack' in m) this.#inFlight -= m.ack;
    else if ('done' in m) {
      const waiter = this.#waiting.get(m.done);
      this.#waiting.delete(m.done);
      if (m.error === undefined) waiter?.resolve();
      else waiter?.reject(new Error(m.error));
    } else diag[m.diag](m.message);
  }

  #fail(e: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiter of this.#waiting.values()) waiter.reject(e);
    this.#waiting.clear();
  }

  #reportDropped(): void {
    // The SDK's BatchSpanProcessor's words, so the same counter and log line follow.
    diag.warn(`Dropped ${this.#dropped} spans because maxQueueSize reached`);
    this.#dropped = 0;
  }

  /** A scope's index in the thread's table; a new one travels once, in the row that first uses it. */
  #scopeOf(scope: ReadableSpan['instrumentationScope']): number | { name: string; version: string | undefined; schemaUrl: string | undefined } {
    const index = this.#scopes.get(scope);
    if (index !== undefined) return index;
    this.#scopes.set(scope, this.#scopes.size);
    return { name: scope.name, version: scope.version, schemaUrl: scope.schemaUrl };
  }

  /**
   * A resource's index in the thread's table; a new one is sent ahead of the rows that use it.
   * One whose detectors are still reading attributes (a promise) is sent once they are in, and
   * everything posted after it waits behind it, as the SDK's own processor waits before export.
   */
  #resourceOf(resource: ReadableSpan['resource']): number {
    let index = this.#resources.get(resource);
    if (index === undefined) {
      index = this.#resources.size;
      this.#resources.set(resource, index);
      const message = (): object => ({ resource: { index, attributes: resource.attributes, schemaUrl: resource.schemaUrl } });
      if (resource.asyncAttributesPending && resource.waitForAsyncAttributes) {
        const settled = resource.waitForAsyncAttributes().catch(() => undefined);
        this.#gate = (this.#gate ?? Promise.resolve()).then(() => settled).then(() => this.#worker.postMessage(message()));
      } else this.#send(message());
    }
    this.#resource = resource;
    this.#resourceIndex = index;
    return index;
  }
}

function eventOf(event: ReadableSpan['events'][number]): unknown {
  return { name: event.name, time: event.time, attributes: event.attributes ?? {}, droppedAttributesCount: event.droppedAttributesCount ?? 0 };
}

function linkOf(link: ReadableSpan['links'][number]): unknown {
  const c = link.context;
  return {
    traceId: c.traceId,
    spanId: c.spanId,
    traceFlags: c.traceFlags,
    isRemote: c.isRemote,
    traceState: c.traceState?.serialize(),
    attributes: link.attributes ?? {},
    droppedAttributesCount: link.droppedAttributesCount ?? 0,
  };
}
