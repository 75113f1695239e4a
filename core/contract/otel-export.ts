import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { bundleSources } from './bundle.js';
import type { ExportThreadData, FromThread, ResourceDefinition, ScopeDefinition, ThreadError, ToThread } from './otel-export-wire.js';
import { BUILT, CODE_DIR } from './package-root.js';

/**
 * The OTLP export of `jobhost start`'s spans, on a thread of its own (SPEC §15). The SDK's batch
 * span processor stays in the main thread (its queue, its batches, its drops and their counted
 * warnings, its flush at shutdown); this exporter hands each batch to the thread as flat values
 * (`otel-export-wire.ts`), where the SDK's OTLP exporter serializes and sends it. Serializing
 * was most of the SDK's cost a run (~4 µs a span of ~7): the main thread, which runs the host,
 * now pays for making its spans and copying them out.
 *
 * A thread that dies fails the batches it held (the processor counts them) and the next batch
 * starts another; one that holds a batch past its deadline (the exporter's own timeout and a
 * margin) is ended the same way. After three deaths with no export answered between, or a thread
 * that fails to start at all, the exporter exports in the main thread, as the SDK alone would.
 */

const FAILED = 1; // ExportResultCode.FAILED
const GIVE_UP_AFTER_DEATHS = 3;
/** Past the exporter's own timeout (its retries included), what a batch may also take: the thread's start, the exporter's import. */
export const DEADLINE_MARGIN_MS = 5000;

interface Pending {
  done: (result: ExportResult) => void;
  timer: NodeJS.Timeout;
}

/** The exporter's error as the thread sent it, with the fields the SDK's diagnostics print (an HTTP status, the collector's answer). */
function rebuild(e: ThreadError | undefined): Error {
  const error = new Error(e?.message ?? 'span export failed');
  if (e?.name) error.name = e.name;
  if (e?.code !== undefined) Object.assign(error, { code: e.code });
  if (e?.data !== undefined) Object.assign(error, { data: e.data });
  return error;
}

/** The main thread's side: a `SpanExporter` whose `export` posts its batch to the thread. */
export class ThreadSpanExporter implements SpanExporter {
  readonly #script: URL;
  readonly #data: ExportThreadData;
  readonly #diag: (message: string) => void;
  readonly #deadlineMs: number;
  #worker: Worker | undefined;
  /** The resources and scopes the current thread knows, by identity (the SDK keeps one object each). */
  readonly #resources = new Map<object, number>();
  readonly #scopes = new Map<object, number>();
  #nextId = 0;
  readonly #pending = new Map<number, Pending>();
  /** `forceFlush` callers, each waiting for the batches pending when it was called. */
  #flushes: Array<{ ids: Set<number>; resolve: () => void }> = [];
  #deaths = 0;
  #fallback: Promise<SpanExporter> | undefined;
  #shutdown: Promise<void> | undefined;

  /**
   * `diag` reports what the thread's exporter warns about, and a thread's death; `deadlineMs` is
   * how long a batch may stay unanswered before its thread is ended (`startOtel`: the OTLP
   * exporter's timeout and `DEADLINE_MARGIN_MS`).
   */
  constructor(script: URL, data: ExportThreadData, diag: (message: string) => void, deadlineMs: number) {
    this.#script = script;
    this.#data = data;
    this.#diag = diag;
    this.#deadlineMs = Math.min(deadlineMs, 2 ** 31 - 1);
  }

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    if (this.#shutdown) return done({ code: FAILED, error: new Error('the span exporter is shut down') });
    if (this.#fallback) {
      this.#fallback.then(
        (e) => e.export(spans, done),
        (err: unknown) => done({ code: FAILED, error: err instanceof Error ? err : new Error(String(err)) }),
      );
      return;
    }
    const worker = this.#thread();
    const id = ++this.#nextId;
    const resources: Array<[object, ResourceDefinition]> = [];
    const scopes: Array<[object, ScopeDefinition]> = [];
    try {
      const values = pack(spans, this.#resources, this.#scopes, resources, scopes);
      const message: ToThread = { type: 'export', id, resources: resources.map(([, d]) => d), scopes: scopes.map(([, d]) => d), spans: values };
      worker.postMessage(message);
    } catch (err) {
      // Not sent: what was marked as sent with it is not known to the thread.
      for (const [key] of resources) this.#resources.delete(key);
      for (const [key] of scopes) this.#scopes.delete(key);
      return done({ code: FAILED, error: err instanceof Error ? err : new Error(String(err)) });
    }
    const timer = setTimeout(() => this.#overdue(worker, id), this.#deadlineMs);
    timer.unref();
    this.#pending.set(id, { done, timer });
    // Held while it holds a batch, as the SDK's own exporter's request would hold the process.
    worker.ref();
  }

  /** Resolves once every batch handed over before the call has been answered (sent, or failed). */
  forceFlush(): Promise<void> {
    if (this.#pending.size === 0) return this.#fallback ? this.#fallback.then((e) => e.forceFlush?.()) : Promise.resolve();
    return new Promise((resolve) => this.#flushes.push({ ids: new Set(this.#pending.keys()), resolve }));
  }

  /** Lets the thread's exporter finish what it sends, then ends the thread. The caller bounds the wait (`boundedShutdown`). */
  shutdown(): Promise<void> {
    this.#shutdown ??= this.#stop();
    return this.#shutdown;
  }

  async #stop(): Promise<void> {
    if (this.#fallback) await (await this.#fallback.catch(() => undefined))?.shutdown();
    const worker = this.#worker;
    if (!worker) return;
    worker.ref();
    await new Promise<void>((resolve) => {
      worker.on('message', (m: FromThread) => m.type === 'shut' && resolve());
      worker.once('exit', () => resolve());
      worker.postMessage({ type: 'shutdown' } satisfies ToThread);
    });
    await worker.terminate();
  }

  #thread(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(this.#script, {
      workerData: this.#data,
      // The main thread's loaders (tsx, a test runner's) are not the thread's: it starts from plain JS.
      execArgv: process.execArgv.filter((a) => a === '--enable-source-maps'),
    });
    worker.on('message', (m: FromThread) => {
      if (m.type === 'ready') online = true;
      else this.#receive(m);
    });
    let error: Error | undefined;
    // Started: its script ran (a thread's 'online' comes before its script has even loaded).
    let online = false;
    worker.on('error', (err) => {
      error = err;
    });
    worker.on('exit', (code) => {
      if (this.#worker !== worker) return; // replaced already (ended past a deadline)
      // A thread that never ran its script cannot start; a later death is one of three.
      this.#died(error?.message ?? `exit code ${code}`, !online);
    });
    // Idle, the thread never keeps the process alive: the SDK's shutdown flushes what is left.
    // (After the listeners: adding a 'message' listener refs the thread's port again.)
    worker.unref();
    this.#worker = worker;
    return worker;
  }

  #receive(m: FromThread): void {
    if (m.type === 'diag') return this.#diag(m.message);
    if (m.type !== 'result') return;
    const pending = this.#pending.get(m.id);
    if (!pending) return;
    this.#deaths = 0;
    this.#settle(m.id, pending, m.code === FAILED ? { code: FAILED, error: rebuild(m.error) } : { code: m.code });
  }

  /**
   * A batch unanswered past its deadline: its thread is let go at once (the next batch starts
   * another) and ended, and the batches it held fail. A thread still starting counts as any death.
   */
  #overdue(worker: Worker, id: number): void {
    if (!this.#pending.has(id) || this.#worker !== worker) return;
    this.#died(`a batch unanswered after ${this.#deadlineMs} ms`, false);
    void worker.terminate();
  }

  /** The current thread is gone: what it held fails, and the next batch goes to another thread, or (`cannotStart`, or the third death in a row) to the main thread. */
  #died(why: string, cannotStart: boolean): void {
    this.#worker = undefined;
    this.#resources.clear();
    this.#scopes.clear();
    if (this.#shutdown) return this.#fail(new Error('the span export thread stopped'));
    this.#fail(new Error(`the span export thread stopped (${why})`));
    if (cannotStart || ++this.#deaths >= GIVE_UP_AFTER_DEATHS) {
      const what = cannotStart ? 'did not start' : `stopped ${this.#deaths} times`;
      this.#diag(`the span export thread ${what} (${why}): exporting in the main thread from now on`);
      this.#fallback = import(this.#data.exporter).then((m: { OTLPTraceExporter: new () => SpanExporter }) => new m.OTLPTraceExporter());
    } else {
      this.#diag(`the span export thread stopped (${why}); the next batch starts another`);
    }
  }

  /** Fails every batch the thread held. */
  #fail(error: Error): void {
    for (const [id, pending] of [...this.#pending]) this.#settle(id, pending, { code: FAILED, error });
  }

  #settle(id: number, pending: Pending, result: ExportResult): void {
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    pending.done(result);
    if (this.#pending.size === 0) this.#worker?.unref();
    this.#flushes = this.#flushes.filter((flush) => {
      flush.ids.delete(id);
      if (flush.ids.size > 0) return true;
      flush.resolve();
      return false;
    });
  }
}

/**
 * A batch of spans as flat values (`F` in `otel-export-wire.ts`), with the definitions of the
 * resources and scopes the thread does not know yet (and the objects they define) added to
 * `newResources` and `newScopes`.
 */
function pack(
  spans: ReadableSpan[],
  resourceIds: Map<object, number>,
  scopeIds: Map<object, number>,
  newResources: Array<[object, ResourceDefinition]>,
  newScopes: Array<[object, ScopeDefinition]>,
): unknown[] {
  const out: unknown[] = [];
  for (const span of spans) {
    let resource = resourceIds.get(span.resource);
    if (resource === undefined) {
      resource = resourceIds.size + 1;
      resourceIds.set(span.resource, resource);
      newResources.push([span.resource, [resource, { ...span.resource.attributes }, span.resource.schemaUrl]]);
    }
    let scope = scopeIds.get(span.instrumentationScope);
    if (scope === undefined) {
      scope = scopeIds.size + 1;
      scopeIds.set(span.instrumentationScope, scope);
      newScopes.push([span.instrumentationScope, [scope, { ...span.instrumentationScope }]]);
    }
    const ctx = span.spanContext();
    const parent = span.parentSpanContext;
    out.push(
      resource,
      scope,
      span.name,
      span.kind,
      ctx.traceId,
      ctx.spanId,
      ctx.traceFlags,
      ctx.traceState ? ctx.traceState.serialize() : null,
      parent?.spanId ?? '',
      parent?.isRemote,
      span.startTime[0],
      span.startTime[1],
      span.endTime[0],
      span.endTime[1],
      span.status.code,
      span.status.message,
      span.attributes,
      span.droppedAttributesCount,
      span.events.length === 0 ? 0 : span.events,
      span.droppedEventsCount,
      span.links.length === 0 ? 0 : packLinks(span.links),
      span.droppedLinksCount,
    );
  }
  return out;
}

function packLinks(links: ReadableSpan['links']): unknown[] {
  const out: unknown[] = [];
  for (const link of links) {
    const c = link.context;
    out.push(c.traceId, c.spanId, c.traceFlags, c.isRemote, c.traceState ? c.traceState.serialize() : null, link.attributes, link.droppedAttributesCount ?? 0);
  }
  return out;
}

let script: Promise<URL> | undefined;

/** The URL to start the export thread from: the package's prebuilt bundle, or `otel-export-thread.ts` bundled by esbuild (once per process). */
export function exportThreadScript(): Promise<URL> {
  script ??= BUILT
    ? Promise.resolve(pathToFileURL(path.join(CODE_DIR, 'contract', 'otel-export-thread.js')))
    : bundleSources(path.join('contract', 'otel-export-thread.ts')).then(
        (text) => new URL(`data:text/javascript;base64,${Buffer.from(text).toString('base64')}`),
      );
  return script;
}
