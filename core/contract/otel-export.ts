import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import type { ExportThreadData, FromThread, ResourceDefinition, ScopeDefinition, ToThread } from './otel-export-wire.js';
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
 * starts another; after three deaths with no export answered between, the exporter gives up on
 * threads and exports in the main thread, as the SDK alone would.
 */

const FAILED = 1; // ExportResultCode.FAILED
const GIVE_UP_AFTER_DEATHS = 3;

/** The main thread's side: a `SpanExporter` whose `export` posts its batch to the thread. */
export class ThreadSpanExporter implements SpanExporter {
  readonly #script: URL;
  readonly #data: ExportThreadData;
  readonly #diag: (message: string) => void;
  #worker: Worker | undefined;
  /** The resources and scopes the current thread knows, by identity (the SDK keeps one object each). */
  readonly #resources = new Map<object, number>();
  readonly #scopes = new Map<object, number>();
  #nextId = 0;
  readonly #pending = new Map<number, (result: ExportResult) => void>();
  #idle: Array<() => void> = [];
  #deaths = 0;
  #fallback: Promise<SpanExporter> | undefined;
  #shutdown: Promise<void> | undefined;

  /** `diag` reports what the thread's exporter warns about, and a thread's death. */
  constructor(script: URL, data: ExportThreadData, diag: (message: string) => void) {
    this.#script = script;
    this.#data = data;
    this.#diag = diag;
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
    this.#pending.set(id, done);
    // Held while it holds a batch, as the SDK's own exporter's request would hold the process.
    worker.ref();
    const resources: ResourceDefinition[] = [];
    const scopes: ScopeDefinition[] = [];
    const values = pack(spans, this.#resources, this.#scopes, resources, scopes);
    worker.postMessage({ type: 'export', id, resources, scopes, spans: values } satisfies ToThread);
  }

  /** Resolves once every batch handed over has been answered (sent, or failed). */
  forceFlush(): Promise<void> {
    if (this.#pending.size === 0) return this.#fallback ? this.#fallback.then((e) => e.forceFlush?.()) : Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
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
    // Idle, the thread never keeps the process alive: the SDK's shutdown flushes what is left.
    worker.unref();
    worker.on('message', (m: FromThread) => this.#receive(m));
    let error: Error | undefined;
    worker.on('error', (err) => {
      error = err;
    });
    worker.on('exit', (code) => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      this.#resources.clear();
      this.#scopes.clear();
      if (this.#shutdown) return this.#fail(new Error('the span export thread stopped'));
      const why = error?.message ?? `exit code ${code}`;
      this.#fail(new Error(`the span export thread stopped (${why})`));
      if (++this.#deaths >= GIVE_UP_AFTER_DEATHS) {
        this.#diag(`the span export thread stopped ${this.#deaths} times (${why}): exporting in the main thread from now on`);
        this.#fallback = import(this.#data.exporter).then((m: { OTLPTraceExporter: new () => SpanExporter }) => new m.OTLPTraceExporter());
      } else {
        this.#diag(`the span export thread stopped (${why}); the next batch starts another`);
      }
    });
    this.#worker = worker;
    return worker;
  }

  #receive(m: FromThread): void {
    if (m.type === 'diag') return this.#diag(m.message);
    if (m.type !== 'result') return;
    const done = this.#pending.get(m.id);
    if (!done) return;
    this.#pending.delete(m.id);
    this.#deaths = 0;
    done(m.code === FAILED ? { code: FAILED, error: new Error(m.error ?? 'span export failed') } : { code: m.code });
    this.#settled();
  }

  /** Fails every batch the thread held. */
  #fail(error: Error): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const done of pending) done({ code: FAILED, error });
    this.#settled();
  }

  #settled(): void {
    if (this.#pending.size > 0) return;
    this.#worker?.unref();
    const idle = this.#idle;
    this.#idle = [];
    for (const resolve of idle) resolve();
  }
}

/**
 * A batch of spans as flat values (`F` in `otel-export-wire.ts`), with the definitions of the
 * resources and scopes the thread does not know yet added to `newResources` and `newScopes`.
 */
function pack(
  spans: ReadableSpan[],
  resourceIds: Map<object, number>,
  scopeIds: Map<object, number>,
  newResources: ResourceDefinition[],
  newScopes: ScopeDefinition[],
): unknown[] {
  const out: unknown[] = [];
  for (const span of spans) {
    let resource = resourceIds.get(span.resource);
    if (resource === undefined) {
      resource = resourceIds.size + 1;
      resourceIds.set(span.resource, resource);
      newResources.push([resource, { ...span.resource.attributes }, span.resource.schemaUrl]);
    }
    let scope = scopeIds.get(span.instrumentationScope);
    if (scope === undefined) {
      scope = scopeIds.size + 1;
      scopeIds.set(span.instrumentationScope, scope);
      newScopes.push([scope, { ...span.instrumentationScope }]);
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
      ctx.traceState?.serialize() ?? '',
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
    out.push(c.traceId, c.spanId, c.traceFlags, c.isRemote, c.traceState?.serialize() ?? '', link.attributes, link.droppedAttributesCount ?? 0);
  }
  return out;
}

let script: Promise<URL> | undefined;

/** The URL to start the export thread from: the package's prebuilt bundle, or `otel-export-thread.ts` bundled by esbuild (once per process). */
export function exportThreadScript(): Promise<URL> {
  script ??= (async () => {
    if (BUILT) return pathToFileURL(path.join(CODE_DIR, 'contract', 'otel-export-thread.js'));
    const { build } = await import('esbuild');
    const out = await build({
      entryPoints: [path.join(CODE_DIR, 'contract', 'otel-export-thread.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      write: false,
      logLevel: 'silent',
    });
    return new URL(`data:text/javascript;base64,${Buffer.from(out.outputFiles[0]!.text).toString('base64')}`);
  })();
  return script;
}
