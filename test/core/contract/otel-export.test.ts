import { context, DiagLogLevel, diag, SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import t, { type Test } from 'tap';
import { ThreadBatchSpanProcessor } from '../../../core/contract/otel-export.js';
import { until } from '../../helpers.js';
import { closedPort } from '../../live-host.js';
import { type HttpReceiver, httpReceiver } from '../../receivers.js';

/**
 * The export thread of `jobhost start` (otel-export.ts): what it sends a collector is what the
 * SDK's own BatchSpanProcessor sends for the same spans (OTLP/JSON, to compare), every attribute,
 * event, link, status, parent and resource included; a full queue drops with the SDK's counted
 * warning; a collector out of reach is a warning from the thread, never an error thrown here.
 */

const JSON_EXPORTER = import.meta.resolve('@opentelemetry/exporter-trace-otlp-http');

interface Body {
  resourceSpans?: Array<{ resource?: unknown; scopeSpans?: Array<{ scope?: unknown; spans?: Array<Record<string, unknown>> }> }>;
}

/** Every span a receiver got, with its resource and scope, in spanId order. */
function spansOf(receiver: HttpReceiver): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const r of receiver.received) {
    for (const rs of (r.json as Body).resourceSpans ?? []) {
      for (const ss of rs.scopeSpans ?? []) for (const span of ss.spans ?? []) out.push({ ...span, resource: rs.resource, scope: ss.scope });
    }
  }
  return out.sort((a, b) => String(a['spanId']).localeCompare(String(b['spanId'])));
}

function messages(t: Test): string[] {
  const seen: string[] = [];
  const keep = (m: string, ...args: unknown[]): void => void seen.push([m, ...args.map(String)].join(' '));
  const quiet = (): void => undefined;
  diag.setLogger({ error: keep, warn: keep, info: quiet, debug: quiet, verbose: quiet }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
  t.teardown(() => diag.disable());
  return seen;
}

t.test('the thread exports what the SDK exports, span for span', async (t) => {
  const viaThread = await httpReceiver(t);
  const viaSdk = await httpReceiver(t);
  process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] = `${viaThread.url}/v1/traces`;
  t.teardown(() => delete process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']);
  // An attribute still being detected: the resource goes to the thread once it is in.
  const resource = resourceFromAttributes({ 'service.name': 'export-test', 'host.id': new Promise<string>((r) => setTimeout(() => r('h-1'), 50)) });
  const provider = new TracerProvider({
    resource,
    spanProcessors: [
      new ThreadBatchSpanProcessor({ exporter: JSON_EXPORTER, scheduledDelayMillis: 20 }),
      new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${viaSdk.url}/v1/traces` }), scheduledDelayMillis: 20 }),
    ],
  });
  t.teardown(() => provider.shutdown());
  const tracer = provider.getTracer('jobhost');
  const other = provider.getTracer('plugin', '1.2.3');
  const caller = new W3CTraceContextPropagator().extract(
    context.active(),
    { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'vendor=abc,other=1' },
    { get: (c, k) => (c as Record<string, string>)[k], keys: (c) => Object.keys(c as object) },
  );
  const trigger = tracer.startSpan(
    'jobhost.trigger noop',
    { kind: SpanKind.PRODUCER, attributes: { 'jobhost.job': 'noop', 'jobhost.run.id': 'r1', n: 3, ratio: 0.5, ok: true, tags: ['a', 'b'] } },
    caller,
  );
  trigger.addEvent('acknowledged', { 'jobhost.store': 'disk' });
  trigger.end();
  const parent = trace.setSpan(context.active(), trigger);
  const attempt = tracer.startSpan(
    'jobhost.attempt noop',
    { kind: SpanKind.CONSUMER, links: [{ context: trigger.spanContext(), attributes: { why: 'retry' } }] },
    parent,
  );
  attempt.setStatus({ code: SpanStatusCode.ERROR, message: 'E_HANDLER: boom' });
  attempt.setAttribute('jobhost.error.code', 'E_HANDLER');
  attempt.end();
  tracer.startSpan('jobhost.run noop', { startTime: Date.now() - 1500, attributes: { 'jobhost.run.status': 'failed' } }, parent).end();
  other.startSpan('handler work', {}, trace.setSpan(context.active(), attempt)).end();
  // Not sampled: neither processor sends it.
  tracer
    .startSpan(
      'unsampled',
      {},
      trace.setSpanContext(context.active(), { traceId: '1'.repeat(32), spanId: '2'.repeat(16), traceFlags: TraceFlags.NONE, isRemote: true }),
    )
    .end();
  await provider.forceFlush();
  await until(() => spansOf(viaThread).length >= 4 && spansOf(viaSdk).length >= 4, 10_000, 'both exports');
  const got = spansOf(viaThread);
  t.equal(got.length, 4, 'four sampled spans, the unsampled one left out');
  t.same(got, spansOf(viaSdk), 'the same spans as the SDK sends: ids, parents, times, attributes, events, links, status, scope, resource');
  t.match(
    (got[0]!['resource'] as { attributes: unknown[] }).attributes,
    [{ key: 'service.name' }, { key: 'host.id', value: { stringValue: 'h-1' } }],
    'the resource with its late attribute',
  );
  const attemptSpan = got.find((s) => s['name'] === 'jobhost.attempt noop')!;
  t.match(attemptSpan, { status: { code: 2, message: 'E_HANDLER: boom' }, links: [{ traceId: '4bf92f3577b34da6a3ce929d0e0e4736' }] }, 'status and link kept');
  t.match(
    got.find((s) => s['name'] === 'jobhost.trigger noop'),
    { parentSpanId: '00f067aa0ba902b7', traceState: 'vendor=abc,other=1' },
  );
});

t.test('a full queue drops spans past it, with the SDK warning', async (t) => {
  const seen = messages(t);
  const collector = await httpReceiver(t);
  process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] = `${collector.url}/v1/traces`;
  t.teardown(() => delete process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']);
  const provider = new TracerProvider({
    spanProcessors: [new ThreadBatchSpanProcessor({ exporter: JSON_EXPORTER, maxQueueSize: 4, scheduledDelayMillis: 20 })],
  });
  t.teardown(() => provider.shutdown());
  const tracer = provider.getTracer('jobhost');
  // Ended in one turn: the first four go to the thread, which cannot have taken them yet.
  for (let i = 0; i < 10; i++) tracer.startSpan(`s${i}`).end();
  await provider.forceFlush();
  await until(() => spansOf(collector).length >= 4, 10_000, 'the four kept');
  t.same(
    spansOf(collector)
      .map((s) => s['name'])
      .sort(),
    ['s0', 's1', 's2', 's3'],
  );
  t.ok(
    seen.some((m) => m.includes('Dropped 6 spans because maxQueueSize reached')),
    'the drop is the warning jobhost counts',
  );
  // Taken by the thread: room again.
  tracer.startSpan('later').end();
  await provider.forceFlush();
  await until(() => spansOf(collector).length >= 5, 10_000, 'the later span');
});

t.test('a collector out of reach: a warning from the thread, and a bounded shutdown', async (t) => {
  const seen = messages(t);
  process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] = `http://127.0.0.1:${await closedPort()}/v1/traces`;
  t.teardown(() => delete process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']);
  const provider = new TracerProvider({
    spanProcessors: [new ThreadBatchSpanProcessor({ exporter: JSON_EXPORTER, scheduledDelayMillis: 20, exportTimeoutMillis: 2000 })],
  });
  let stopped = false;
  t.teardown(() => (stopped ? undefined : provider.shutdown()));
  provider.getTracer('jobhost').startSpan('lost').end();
  // The thread's own schedule exports it (no forceFlush here: a failed flush is the caller's to see).
  await until(() => seen.length > 0, 20_000, 'a diagnostic from the export thread');
  t.match(seen.join('\n'), /ECONNREFUSED|export|Export/i, 'says the export failed');
  const started = Date.now();
  await provider.shutdown();
  stopped = true;
  t.ok(Date.now() - started < 10_000, 'shutdown returns');
});
