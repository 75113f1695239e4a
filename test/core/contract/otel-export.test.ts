import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import t from 'tap';
import { exportThreadScript, ThreadSpanExporter } from '../../../core/contract/otel-export.js';
import { otlpOnly, otlpProtocol, otlpTimeoutMs } from '../../../core/contract/otel-sdk.js';
import { childEnv } from '../../e2e/project.js';
import { type Tap, tempDir } from '../../helpers.js';
import { closedPort } from '../../live-host.js';

/**
 * The span export thread of `jobhost start` (`otel-export.ts`): what the SDK's OTLP exporter sends
 * from the thread is byte for byte what it sends from the main thread, for spans with everything
 * a span can carry; a collector out of reach fails the batch (the batch processor counts it); a
 * thread that dies fails only what it held, and after three deaths the main thread exports.
 */

const API = import.meta.resolve('@opentelemetry/api');
const HTTP_JSON = import.meta.resolve('@opentelemetry/exporter-trace-otlp-http');
const HTTP_PROTOBUF = import.meta.resolve('@opentelemetry/exporter-trace-otlp-proto');

type ExportResult = { code: number; error?: Error };

/** A batch's deadline in most tests: far past anything they wait for. */
const DEADLINE = 30_000;

/** A collector that keeps each request's raw body, and answers 200 (or `status` with `body`). */
async function collector(t: Tap, status = 200, body?: string): Promise<{ url: string; bodies: Buffer[] }> {
  const bodies: Buffer[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks));
      res
        .writeHead(status, { 'content-type': req.headers['content-type'] ?? 'application/json' })
        .end(body ?? (req.headers['content-type']?.includes('json') ? '{}' : ''));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, bodies };
}

/** Spans with every field an exporter reads: kinds, a remote parent with a trace state, a local parent, links, events, error status, dropped counts, two scopes, a resource with a schema URL. */
function spans(): ReadableSpan[] {
  const memory = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes(
      { 'service.name': 'export-test', 'host.name': 'h1', 'deployment.tier': 3 },
      { schemaUrl: 'https://opentelemetry.io/schemas/1.30.0' },
    ),
    spanProcessors: [new SimpleSpanProcessor({ exporter: memory })],
    spanLimits: { attributeCountLimit: 4 },
  });
  const jobs = provider.getTracer('jobhost', '1.2.3');
  const app = provider.getTracer('app');
  const remote = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: '00f067aa0ba902b7',
    traceFlags: 1,
    isRemote: true,
    traceState: new TraceState('vendor=value,other=x'),
  });
  const trigger = jobs.startSpan(
    'jobhost.trigger noop',
    { kind: SpanKind.PRODUCER, attributes: { 'jobhost.job': 'noop', 'jobhost.run.id': 'r1', list: [1, 2, 3] } },
    remote,
  );
  const attempt = jobs.startSpan(
    'jobhost.attempt noop',
    {
      kind: SpanKind.CONSUMER,
      attributes: { 'jobhost.attempt': 2, ok: false, ratio: 0.5, a: 'a', b: 'b', c: 'c' },
      links: [{ context: trigger.spanContext(), attributes: { why: 'retry' } }, { context: trace.getSpanContext(remote)! }],
    },
    trace.setSpan(ROOT_CONTEXT, trigger),
  );
  attempt.addEvent('exception', { 'exception.message': 'boom' });
  attempt.addEvent('plain');
  attempt.setStatus({ code: SpanStatusCode.ERROR, message: 'HANDLER_ERROR: boom' });
  attempt.end();
  app.startSpan('handler-work', { startTime: [1_700_000_000, 999_999_999] }, trace.setSpan(ROOT_CONTEXT, attempt)).end([1_700_000_001, 1]);
  trigger.setStatus({ code: SpanStatusCode.OK });
  trigger.end();
  app.startSpan('root').end();
  // A caller's trace state that serializes to nothing stays an (empty) trace state.
  app.startSpan('empty-state', {}, trace.setSpanContext(ROOT_CONTEXT, { ...trace.getSpanContext(remote)!, traceState: new TraceState('') })).end();
  return memory.getFinishedSpans();
}

function exportVia(exporter: { export(spans: ReadableSpan[], done: (r: ExportResult) => void): void }, batch: ReadableSpan[]): Promise<ExportResult> {
  return new Promise((resolve) => exporter.export(batch, resolve));
}

for (const [protocol, module] of [
  ['http/json', HTTP_JSON],
  ['http/protobuf', HTTP_PROTOBUF],
] as const) {
  t.test(`${protocol}: the thread sends exactly what the SDK's exporter sends from the main thread`, async (t) => {
    const { url, bodies } = await collector(t);
    const batch = spans();
    t.equal(batch.length, 5);
    const { OTLPTraceExporter } = (await import(module)) as { OTLPTraceExporter: new (c: { url: string }) => ThreadSpanExporter };
    const direct = new OTLPTraceExporter({ url });
    t.same(await exportVia(direct, batch), { code: 0 }, 'sent from the main thread');
    t.same(await exportVia(direct, batch.slice(1)), { code: 0 });
    process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] = url;
    t.teardown(() => delete process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']);
    const diag: string[] = [];
    const threaded = new ThreadSpanExporter(await exportThreadScript(), { api: API, exporter: module }, (m) => diag.push(m), DEADLINE);
    t.teardown(() => threaded.shutdown());
    t.same(await exportVia(threaded, batch), { code: 0 }, 'sent from the thread');
    // The same spans again: the resource and scopes are named by number now, not sent again.
    t.same(await exportVia(threaded, batch.slice(1)), { code: 0 });
    t.equal(bodies.length, 4);
    t.ok(bodies[0]!.length > 200, `a real body (${bodies[0]!.length} bytes)`);
    t.ok(bodies[2]!.equals(bodies[0]!), 'byte for byte the same request');
    t.ok(bodies[3]!.equals(bodies[1]!), 'and the next batch too, its resource and scopes named by number');
    if (protocol === 'http/json') {
      const sent = JSON.parse(bodies[3]!.toString()) as { resourceSpans: Array<{ resource: { attributes: Array<{ key: string }> }; schemaUrl?: string }> };
      t.same(
        sent.resourceSpans[0]!.resource.attributes.map((a) => a.key),
        ['service.name', 'host.name', 'deployment.tier'],
      );
      t.equal(sent.resourceSpans[0]!.schemaUrl, 'https://opentelemetry.io/schemas/1.30.0');
      t.match(bodies[3]!.toString(), /"traceState":""/, 'the empty trace state kept');
    }
    t.same(diag, []);
  });
}

t.test('a collector out of reach fails the batch with the reason, and the next batch is tried again', async (t) => {
  process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] = `http://127.0.0.1:${await closedPort()}/v1/traces`;
  process.env['OTEL_EXPORTER_OTLP_TIMEOUT'] = '2000';
  t.teardown(() => {
    delete process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'];
    delete process.env['OTEL_EXPORTER_OTLP_TIMEOUT'];
  });
  const diag: string[] = [];
  const threaded = new ThreadSpanExporter(await exportThreadScript(), { api: API, exporter: HTTP_JSON }, (m) => diag.push(m), DEADLINE);
  t.teardown(() => threaded.shutdown());
  for (let i = 0; i < 2; i++) {
    const result = await exportVia(threaded, spans());
    t.equal(result.code, 1, 'failed');
    t.match(result.error?.message, /ECONNREFUSED/, `why: ${result.error?.message}`);
  }
  await threaded.forceFlush();
  t.same(diag, [], 'a failed export is the batch processor to count, not a thread problem');
});

t.test("a collector that refuses a batch: its status and its answer reach the main thread's diagnostics", async (t) => {
  const { url, bodies } = await collector(t, 400, '{"message":"resource attribute too long"}');
  process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] = url;
  t.teardown(() => delete process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']);
  const threaded = new ThreadSpanExporter(await exportThreadScript(), { api: API, exporter: HTTP_JSON }, () => undefined, DEADLINE);
  t.teardown(() => threaded.shutdown());
  const result = await exportVia(threaded, spans());
  t.equal(bodies.length, 1);
  t.equal(result.code, 1);
  t.match(result.error, { name: 'OTLPExporterError', code: 400, data: /resource attribute too long/ });
});

t.test('a thread that dies fails what it held; another starts; after three deaths the main thread exports', async (t) => {
  const dir = tempDir(t);
  // An exporter that ends its thread on every batch, and in the main thread keeps what it gets.
  const file = path.join(dir, 'dying-exporter.mjs');
  writeFileSync(
    file,
    `import { isMainThread } from 'node:worker_threads';
export class OTLPTraceExporter {
  export(spans, done) {
    if (!isMainThread) process.exit(7);
    (globalThis.__exportedInMain ??= []).push(...spans.map((s) => s.name));
    done({ code: 0 });
  }
  shutdown() { return Promise.resolve(); }
}
`,
  );
  const diag: string[] = [];
  const threaded = new ThreadSpanExporter(await exportThreadScript(), { api: API, exporter: pathToFileURL(file).href }, (m) => diag.push(m), DEADLINE);
  t.teardown(() => threaded.shutdown());
  for (let death = 1; death <= 3; death++) {
    const result = await exportVia(threaded, spans());
    t.equal(result.code, 1, `batch ${death} failed with its thread`);
    t.match(result.error?.message, /the span export thread stopped \(exit code 7\)/);
  }
  t.match(diag, [/stopped .*the next batch starts another/, /stopped .*the next batch starts another/, /stopped 3 times .*exporting in the main thread/]);
  const batch = spans();
  t.same(await exportVia(threaded, batch), { code: 0 }, 'exported in the main thread');
  t.same(
    (globalThis as { __exportedInMain?: string[] }).__exportedInMain,
    batch.map((s) => s.name),
  );
  await threaded.shutdown();
  t.equal((await exportVia(threaded, batch)).code, 1, 'nothing is exported once shut down');
});

t.test('a thread that holds a batch past its deadline is ended: the batch fails, and the next goes to another thread', async (t) => {
  const dir = tempDir(t);
  // An exporter that never answers in a thread (a collector that never ends its answer, past the exporter's own timeout).
  const file = path.join(dir, 'hung-exporter.mjs');
  writeFileSync(
    file,
    `import { isMainThread } from 'node:worker_threads';
export class OTLPTraceExporter {
  export(spans, done) { if (isMainThread) done({ code: 0 }); }
  shutdown() { return Promise.resolve(); }
}
`,
  );
  const diag: string[] = [];
  const threaded = new ThreadSpanExporter(await exportThreadScript(), { api: API, exporter: pathToFileURL(file).href }, (m) => diag.push(m), 1200);
  t.teardown(() => threaded.shutdown());
  const t0 = performance.now();
  const result = await exportVia(threaded, spans());
  const waited = performance.now() - t0;
  t.equal(result.code, 1);
  t.match(result.error?.message, /^the span export thread stopped \(a batch unanswered after 1200 ms\)$/);
  t.ok(waited >= 1100 && waited < 10_000, `failed at its deadline (${Math.round(waited)} ms)`);
  t.same(diag.length, 1);
  t.match(diag[0], /the next batch starts another/);
  t.equal((await exportVia(threaded, spans())).code, 1, 'the next batch went to a new thread (which holds it too), not to the main thread');
  t.equal(diag.length, 2);
  t.match(diag[1], /the next batch starts another/);
});

t.test('forceFlush waits for the batches handed over before it, not for those after', async (t) => {
  const dir = tempDir(t);
  // Answers each batch 300 ms after it arrives.
  const file = path.join(dir, 'slow-exporter.mjs');
  writeFileSync(
    file,
    `export class OTLPTraceExporter {
  export(spans, done) { setTimeout(() => done({ code: 0 }), 300); }
  shutdown() { return Promise.resolve(); }
}
`,
  );
  const threaded = new ThreadSpanExporter(await exportThreadScript(), { api: API, exporter: pathToFileURL(file).href }, () => undefined, DEADLINE);
  t.teardown(() => threaded.shutdown());
  const answered: string[] = [];
  threaded.export(spans(), () => answered.push('first'));
  const flushed = threaded.forceFlush().then(() => answered.push('flush'));
  await new Promise((resolve) => setTimeout(resolve, 150));
  threaded.export(spans(), () => answered.push('second'));
  await flushed;
  t.same(answered, ['first', 'flush'], 'the flush ended with the first batch, the second still on its way');
  await threaded.forceFlush();
  t.same(answered, ['first', 'flush', 'second']);
});

t.test('the thread holds the process only while it holds a batch', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'slow-exporter.mjs');
  writeFileSync(
    file,
    `export class OTLPTraceExporter { export(spans, done) { setTimeout(() => done({ code: 0 }), 300); } shutdown() { return Promise.resolve(); } }\n`,
  );
  // Nothing else keeps this process alive (the thread's script is bundled here, so not even
  // esbuild's service): it must wait for the answer, then exit on its own.
  writeFileSync(path.join(dir, 'script-url'), (await exportThreadScript()).href);
  const script = path.join(dir, 'main.mts');
  writeFileSync(
    script,
    `import { ThreadSpanExporter } from ${JSON.stringify(pathToFileURL(path.resolve('core/contract/otel-export.ts')).href)};
import { readFileSync } from 'node:fs';
const exporter = new ThreadSpanExporter(new URL(readFileSync(${JSON.stringify(path.join(dir, 'script-url'))}, 'utf8')), { api: ${JSON.stringify(API)}, exporter: ${JSON.stringify(pathToFileURL(file).href)} }, () => undefined, 30000);
const span = { name: 's', kind: 0, spanContext: () => ({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1 }), startTime: [1, 0], endTime: [1, 5], status: { code: 0 }, attributes: {}, links: [], events: [], droppedAttributesCount: 0, droppedEventsCount: 0, droppedLinksCount: 0, resource: { attributes: {} }, instrumentationScope: { name: 'x' } };
exporter.export([span], (r) => {
  console.log('answered', r.code);
  // The thread is idle between the two: the second batch must hold the process again.
  setImmediate(() => exporter.export([span], (r) => console.log('answered', r.code)));
});
`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  t.equal(signal, null, 'it ended by itself, not killed as hanging');
  t.equal(code, 0, err);
  t.equal(out, 'answered 0\nanswered 0\n', 'and not before both batches were answered');
});

t.test('a thread that cannot start at all: the main thread exports from the first batch on', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'exporter.mjs');
  writeFileSync(
    file,
    `export class OTLPTraceExporter {
  export(spans, done) { (globalThis.__exportedAtOnce ??= []).push(...spans.map((s) => s.name)); done({ code: 0 }); }
  shutdown() { return Promise.resolve(); }
}
`,
  );
  const diag: string[] = [];
  const broken = new URL('data:text/javascript,this is not a script');
  const threaded = new ThreadSpanExporter(broken, { api: API, exporter: pathToFileURL(file).href }, (m) => diag.push(m), DEADLINE);
  t.teardown(() => threaded.shutdown());
  const first = await exportVia(threaded, spans());
  t.equal(first.code, 1, 'the batch handed to the thread that never started failed');
  t.match(diag, [/the span export thread did not start .*exporting in the main thread from now on/]);
  const batch = spans();
  t.same(await exportVia(threaded, batch), { code: 0 });
  t.same(
    (globalThis as { __exportedAtOnce?: string[] }).__exportedAtOnce,
    batch.map((s) => s.name),
    'exported in the main thread',
  );
});

t.test('shutdown lets the thread finish what it is sending, and forceFlush waits for the batches handed over before it', async (t) => {
  const { url, bodies } = await collector(t);
  process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] = url;
  t.teardown(() => delete process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']);
  const threaded = new ThreadSpanExporter(await exportThreadScript(), { api: API, exporter: HTTP_JSON }, () => undefined, DEADLINE);
  const results: ExportResult[] = [];
  for (let i = 0; i < 3; i++) threaded.export(spans(), (r) => results.push(r));
  await threaded.forceFlush();
  t.equal(results.length, 3, 'every batch answered before forceFlush resolved');
  t.equal(bodies.length, 3);
  threaded.export(spans(), (r) => results.push(r));
  await threaded.shutdown();
  t.equal(bodies.length, 4, 'the batch handed over before shutdown was sent');
  t.same(results.at(-1), { code: 0 });
});

t.test('jobhost start hands the export to the thread only when OTLP is the sole exporter, with the protocol read as the SDK reads it', async (t) => {
  const cases: Array<[string | undefined, boolean]> = [
    [undefined, true],
    ['', true],
    ['otlp', true],
    [' otlp , ', true],
    ['null', true],
    ['otlp,otlp', true],
    ['otlp,none', false],
    ['console', false],
    ['otlp,zipkin', false],
  ];
  for (const [value, thread] of cases) t.equal(otlpOnly(value === undefined ? {} : { OTEL_TRACES_EXPORTER: value }), thread, `OTEL_TRACES_EXPORTER=${value}`);
  t.equal(otlpProtocol({}), 'http/protobuf');
  t.equal(otlpProtocol({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), 'grpc');
  t.equal(otlpProtocol({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: '  ', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), 'grpc', 'a blank variable is unset');
  t.equal(otlpProtocol({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), 'http/json');
  t.equal(
    otlpProtocol({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: ' http/json ' }),
    ' http/json ',
    'not trimmed, as the SDK (which then warns and uses http/protobuf)',
  );
  t.equal(otlpTimeoutMs({}), 10_000);
  t.equal(otlpTimeoutMs({ OTEL_EXPORTER_OTLP_TIMEOUT: '2500' }), 2500);
  t.equal(otlpTimeoutMs({ OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '700', OTEL_EXPORTER_OTLP_TIMEOUT: '2500' }), 700);
  for (const bad of ['Infinity', '-5', '0', 'soon', ' '])
    t.equal(otlpTimeoutMs({ OTEL_EXPORTER_OTLP_TIMEOUT: bad }), 10_000, `${JSON.stringify(bad)} is ignored`);
});
