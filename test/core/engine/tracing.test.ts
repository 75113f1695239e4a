import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import t from 'tap';
import type { Run } from '../../../core/contract/run.js';
import { finalOn, startCluster } from '../../cluster.js';
import { captureLogger, startServer, until } from '../../helpers.js';
import { pluginHost } from '../../plugin-host.js';
import { startRedis } from '../../redis.js';

/**
 * Tracing (SPEC §15) in process, with the real OpenTelemetry Node SDK and an in-memory exporter:
 * an HTTP trigger continues the caller's trace, a run and each attempt are spans, the handler
 * runs inside its attempt's span, the run records its trace id and its events and log lines
 * carry it, on one host and across a cluster. The first test runs before any SDK is set up.
 */

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE}-${CALLER}-01`;

const jobs = (marks: string[]): object[] => [
  {
    name: 'traced',
    isolation: 'inline',
    handler: async (ctx: { log: { info(msg: string): void } }) => {
      await trace.getTracer('app').startActiveSpan('handler-work', async (span) => {
        ctx.log.info('inside the handler');
        await new Promise((r) => setImmediate(r));
        span.end();
      });
      marks.push('ran');
      return { ok: true };
    },
  },
  {
    name: 'on-event',
    isolation: 'inline',
    on: ['order.placed'],
    handler: () => 'seen',
  },
  {
    name: 'flaky',
    isolation: 'inline',
    retry: { attempts: 2, delay: '1ms' },
    handler: (ctx: { attempt: number }) => {
      if (ctx.attempt === 1) throw new Error('first attempt fails');
      return 'second time lucky';
    },
  },
  {
    name: 'broken',
    isolation: 'inline',
    handler: () => {
      throw new Error('always');
    },
  },
  {
    name: 'stuck',
    isolation: 'inline',
    timeout: '1s',
    handler: (ctx: { signal: AbortSignal }) =>
      new Promise((_, reject) => {
        marks.push('started');
        ctx.signal.addEventListener('abort', () => {
          marks.push('aborted');
          reject(ctx.signal.reason);
        });
      }),
  },
];

const byName = (spans: ReadableSpan[], name: string): ReadableSpan[] => spans.filter((s) => s.name === name);

t.test('without an SDK a run carries no trace fields, whatever the caller sends', async (t) => {
  const s = await startServer(t, { plugins: jobs([]) as never });
  const res = await s.request('POST', '/jobs/traced/run', { headers: { traceparent: TRACEPARENT } });
  t.equal(res.status, 202);
  const runId = res.json['runId'] as string;
  await until(async () => (await s.host.run(runId))?.status === 'succeeded', 5000, 'the run to succeed');
  const run = (await s.host.run(runId))!;
  t.notOk('traceId' in run, 'no traceId');
  t.notOk('traceparent' in run, 'no traceparent');
  t.notOk(
    s.events.some((e) => 'traceId' in e.data),
    'no event carries a traceId',
  );
});

const exporter = new InMemorySpanExporter();
let sdk: NodeSDK | undefined;

/** The SDK, from the second test on (tap runs the tests of a file in order). */
function withSdk(): void {
  if (sdk) return exporter.reset();
  // Beside the in-memory exporter, a batch exporter to a collector nobody listens on: no test may
  // be slowed or failed by it (an unreachable collector never touches a run).
  const dead = new OTLPTraceExporter({ url: 'http://127.0.0.1:9/v1/traces' });
  sdk = new NodeSDK({
    spanProcessors: [new SimpleSpanProcessor({ exporter }), new BatchSpanProcessor({ exporter: dead, scheduledDelayMillis: 10 })],
    instrumentations: [],
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  // Its last export to the dead collector fails: that is the point.
  t.teardown(() => sdk?.shutdown().catch(() => undefined));
}

t.test("an HTTP trigger continues the caller's trace: trigger, attempt and run spans, the handler's own span", async (t) => {
  withSdk();
  const marks: string[] = [];
  const { logger, lines } = captureLogger();
  const s = await startServer(t, { plugins: jobs(marks) as never, logger });
  const logEvents: { traceId?: string; lines: { msg: string }[] }[] = [];
  s.host.on('run.log', (e) => logEvents.push(e.data));
  const res = await s.request('POST', '/jobs/traced/run', { headers: { traceparent: TRACEPARENT } });
  t.equal(res.status, 202);
  const runId = res.json['runId'] as string;
  await until(() => byName(exporter.getFinishedSpans(), 'jobhost.run traced').length === 1, 5000, 'the run span');

  const spans = exporter.getFinishedSpans();
  const [trigger] = byName(spans, 'jobhost.trigger traced');
  const [attempt] = byName(spans, 'jobhost.attempt traced');
  const [work] = byName(spans, 'handler-work');
  const [runSpan] = byName(spans, 'jobhost.run traced');
  t.ok(trigger && attempt && work && runSpan, 'four spans');
  t.equal(trigger!.spanContext().traceId, TRACE, "the trigger span is in the caller's trace");
  t.equal(trigger!.parentSpanContext?.spanId, CALLER, "its parent is the caller's span");
  t.equal(trigger!.kind, SpanKind.PRODUCER);
  t.equal(trigger!.attributes['jobhost.run.id'], runId);
  t.equal(attempt!.spanContext().traceId, TRACE);
  t.equal(attempt!.parentSpanContext?.spanId, trigger!.spanContext().spanId, "the attempt is the trigger's child");
  t.equal(attempt!.kind, SpanKind.CONSUMER);
  t.equal(attempt!.attributes['jobhost.attempt'], 1);
  t.equal(work!.parentSpanContext?.spanId, attempt!.spanContext().spanId, "the handler's span is the attempt's child");
  t.equal(work!.spanContext().traceId, TRACE);

  const run = (await s.request('GET', `/runs/${runId}`)).json as unknown as Run;
  t.equal(run.traceId, TRACE, 'GET /runs/:id shows the trace id');
  t.equal(run.traceparent, `00-${TRACE}-${trigger!.spanContext().spanId}-01`, "and the trigger span's traceparent");
  t.equal(runSpan!.parentSpanContext?.spanId, trigger!.spanContext().spanId, "the run span is the trigger's child too");
  t.same(
    [runSpan!.attributes['jobhost.run.id'], runSpan!.attributes['jobhost.run.status'], runSpan!.attributes['jobhost.run.source']],
    [runId, 'succeeded', 'http'],
  );
  const ms = (hr: [number, number]): number => hr[0] * 1000 + hr[1] / 1e6;
  t.equal(Math.round(ms(runSpan!.startTime)), Date.parse(run.createdAt), 'the run span starts when the run was created');
  t.equal(Math.round(ms(runSpan!.endTime)), Date.parse(run.endedAt!), 'and ends when it ended');

  const runEvents = s.events.filter((e) => e.type.startsWith('run.') && 'runId' in e.data && e.data.runId === runId);
  t.same(
    runEvents.map((e) => [e.type, (e.data as { traceId?: string }).traceId]),
    [
      ['run.queued', TRACE],
      ['run.started', TRACE],
      ['run.succeeded', TRACE],
    ],
    'every run event carries the trace id',
  );
  t.same(
    logEvents.map((d) => [d.traceId, d.lines.map((l) => l.msg)]),
    [[TRACE, ['inside the handler']]],
    'its run.log event carries the trace id too',
  );
  const line = lines.find((l) => l['msg'] === 'inside the handler');
  t.same([line?.['trace_id'], line?.['span_id']], [TRACE, attempt!.spanContext().spanId], "the handler's log line carries the trace and the attempt span");
});

const THREADED = `export default {
  name: 'threaded',
  async handler() {
    // What a plugin's import of '@opentelemetry/api' reaches: the API's global registry (a plugin
    // file in a temp dir has no node_modules to import it from).
    const api = globalThis[Symbol.for('opentelemetry.js.api.1')];
    if (!api?.trace) throw new Error('no tracer in this thread');
    const tracer = api.trace.getTracer('plugin');
    await tracer.startActiveSpan('thread-work', async (outer) => {
      outer.setAttribute('rows', 42);
      outer.addEvent('halfway', { at: 'half' });
      await tracer.startActiveSpan('thread-inner', async (inner) => inner.end());
      outer.end();
    });
    return 'ok';
  },
};
`;

t.test("a handler in a worker thread: its spans reach the application's SDK, children of the attempt, with their ids and attributes", async (t) => {
  withSdk();
  // A plugin file: the default isolation, a worker thread, which cannot share the SDK this test set up in code.
  const h = await pluginHost(t, { 'threaded.mjs': THREADED });
  const caller = trace.getTracer('test').startSpan('caller');
  const { runId } = await context.with(trace.setSpan(context.active(), caller), () => h.host.trigger('threaded'));
  caller.end();
  const run = await h.host.wait(runId);
  t.equal(run.status, 'succeeded', 'the handler found a tracer in its thread');
  await until(() => byName(exporter.getFinishedSpans(), 'thread-work').length === 1, 5000, "the thread's span");
  const spans = exporter.getFinishedSpans();
  const [attempt] = byName(spans, 'jobhost.attempt threaded');
  const [work] = byName(spans, 'thread-work');
  const [inner] = byName(spans, 'thread-inner');
  t.equal(attempt!.attributes['jobhost.run.id'], runId);
  t.equal(work!.spanContext().traceId, caller.spanContext().traceId, "in the caller's trace");
  t.equal(work!.parentSpanContext?.spanId, attempt!.spanContext().spanId, "the attempt's child");
  t.equal(inner!.parentSpanContext?.spanId, work!.spanContext().spanId, 'and its own child, by the ids made in the thread');
  t.equal(work!.attributes['rows'], 42);
  t.same(
    work!.events.map((e) => [e.name, e.attributes]),
    [['halfway', { at: 'half' }]],
  );
  t.equal(work!.instrumentationScope.name, 'plugin');
  t.same(work!.resource.attributes, attempt!.resource.attributes, "under the application's resource");
  t.ok(work!.endTime[0] > 0 && work!.duration[0] >= 0, 'with its times');
});

t.test("an app event over HTTP continues the caller's trace in the runs it enqueues", async (t) => {
  withSdk();
  const s = await startServer(t, { plugins: jobs([]) as never });
  const res = await s.request('POST', '/events/order.placed', { headers: { traceparent: TRACEPARENT }, body: { id: 7 } });
  t.equal(res.status, 202);
  const [runId] = res.json['enqueued'] as string[];
  t.ok(runId, 'a run enqueued');
  await s.host.wait(runId!);
  t.equal((await s.host.run(runId!))?.traceId, TRACE, "the run is in the caller's trace");
  await until(() => byName(exporter.getFinishedSpans(), 'jobhost.run on-event').length === 1, 5000, 'the run span');
  const [trigger] = byName(exporter.getFinishedSpans(), 'jobhost.trigger on-event');
  t.equal(trigger!.parentSpanContext?.spanId, CALLER, "the trigger span's parent is the caller's span");
});

t.test("a bulk retry over HTTP continues the caller's trace in every replay, as a single retry does", async (t) => {
  withSdk();
  const s = await startServer(t, { plugins: jobs([]) as never });
  const failed: string[] = [];
  for (let i = 0; i < 2; i++) failed.push((await s.host.trigger('broken')).runId);
  for (const id of failed) t.equal((await s.host.wait(id)).status, 'failed');
  const res = await s.request('POST', '/runs/retry', { headers: { traceparent: TRACEPARENT }, body: { job: 'broken' } });
  t.equal(res.status, 200);
  const replays = (res.json['runs'] as Array<{ newRunId?: string }>).map((i) => i.newRunId);
  t.equal(replays.length, 2);
  for (const id of replays) t.equal((await s.host.run(id!))?.traceId, TRACE, "the replay is in the caller's trace");
  const triggers = byName(exporter.getFinishedSpans(), 'jobhost.trigger broken').filter((sp) => sp.spanContext().traceId === TRACE);
  t.equal(triggers.length, 2);
  t.ok(
    triggers.every((sp) => sp.parentSpanContext?.spanId === CALLER),
    "each replay's trigger span is a child of the caller's span",
  );
});

t.test('a malformed traceparent is ignored: the run starts a trace of its own', async (t) => {
  withSdk();
  const s = await startServer(t, { plugins: jobs([]) as never });
  const res = await s.request('POST', '/jobs/traced/run', { headers: { traceparent: `00-${TRACE}-zz-01` } });
  t.equal(res.status, 202);
  const run = (await s.host.run(res.json['runId'] as string))!;
  t.match(run.traceId, /^[0-9a-f]{32}$/);
  t.not(run.traceId, TRACE);
  const [trigger] = byName(exporter.getFinishedSpans(), 'jobhost.trigger traced');
  t.equal(trigger?.parentSpanContext, undefined, 'a root span');
});

t.test('a trigger without a caller starts a trace; a failed attempt is an error span, the retry another child', async (t) => {
  withSdk();
  const s = await startServer(t, { plugins: jobs([]) as never });
  const { runId } = await s.host.trigger('flaky');
  await until(
    async () => {
      await s.clock.advance(1);
      return (await s.host.run(runId))?.status === 'succeeded';
    },
    5000,
    'the retried run to succeed',
  );
  await until(() => byName(exporter.getFinishedSpans(), 'jobhost.attempt flaky').length === 2, 5000, 'two attempt spans');
  const spans = exporter.getFinishedSpans();
  const [runSpan] = byName(spans, 'jobhost.trigger flaky');
  t.equal(runSpan?.parentSpanContext, undefined, 'a root span');
  const attempts = byName(spans, 'jobhost.attempt flaky').sort((a, b) => Number(a.attributes['jobhost.attempt']) - Number(b.attributes['jobhost.attempt']));
  t.same(
    attempts.map((a) => [a.attributes['jobhost.attempt'], a.parentSpanContext?.spanId, a.status.code]),
    [
      [1, runSpan!.spanContext().spanId, SpanStatusCode.ERROR],
      [2, runSpan!.spanContext().spanId, SpanStatusCode.UNSET],
    ],
  );
  t.equal(attempts[0]!.attributes['jobhost.error.code'], 'HANDLER_ERROR');
  t.equal((await s.host.run(runId))?.traceId, runSpan!.spanContext().traceId);
});

t.test("an attempt that times out ends its span with the error, and its handler's signal is aborted", async (t) => {
  withSdk();
  const marks: string[] = [];
  const s = await startServer(t, { plugins: jobs(marks) as never });
  const { runId } = await s.host.trigger('stuck');
  await until(() => marks.includes('started'), 5000, 'the handler to start');
  await until(
    async () => {
      await s.clock.advance(1000);
      return (await s.host.run(runId))?.status === 'failed';
    },
    5000,
    'the run to time out',
  );
  t.ok(marks.includes('aborted'), "the abort reached the handler's signal through the traced attempt");
  await until(() => byName(exporter.getFinishedSpans(), 'jobhost.attempt stuck').length === 1, 5000, 'the attempt span');
  const [attempt] = byName(exporter.getFinishedSpans(), 'jobhost.attempt stuck');
  t.equal(attempt!.status.code, SpanStatusCode.ERROR);
  t.equal(attempt!.attributes['jobhost.error.code'], 'TIMEOUT');
  await until(() => byName(exporter.getFinishedSpans(), 'jobhost.run stuck').length === 1, 5000, 'the run span');
  t.equal(byName(exporter.getFinishedSpans(), 'jobhost.run stuck')[0]!.attributes['jobhost.error.code'], 'TIMEOUT');
});

t.test('a refused trigger ends its span with an error and records nothing', async (t) => {
  withSdk();
  const s = await startServer(t, { plugins: jobs([]) as never });
  await s.host.disable('traced');
  const res = await s.request('POST', '/jobs/traced/run', { headers: { traceparent: TRACEPARENT } });
  t.equal(res.status, 409);
  const [span] = byName(exporter.getFinishedSpans(), 'jobhost.trigger traced');
  t.equal(span?.status.code, SpanStatusCode.ERROR);
  t.match(span?.status.message, /^SKIPPED: disabled/);
  t.notOk('jobhost.run.id' in span!.attributes, 'it names no run: none was made');
  await s.host.enable('traced');
  const ok = await s.request('POST', '/jobs/traced/run', { headers: { traceparent: TRACEPARENT } });
  const accepted = byName(exporter.getFinishedSpans(), 'jobhost.trigger traced')[1];
  t.equal(accepted?.attributes['jobhost.run.id'], ok.json['runId'], 'an accepted trigger names its run');
});

t.test('cluster: the attempt is a child of the trigger span, through the run record in Redis', async (t) => {
  withSdk();
  const redis = await startRedis(t);
  const marks: string[] = [];
  const [h0, h1] = await startCluster(t, redis, 2, { plugins: jobs(marks) as never });
  const { runId } = await trace.getTracer('app').startActiveSpan('caller', (span) => {
    const result = h0!.host.trigger('traced');
    span.end();
    return result;
  });
  const run = await finalOn(h1!.host, runId);
  t.equal(run.status, 'succeeded');
  t.match(run.traceId, /^[0-9a-f]{32}$/, 'the run came back from Redis with its trace');
  await until(() => byName(exporter.getFinishedSpans(), 'handler-work').length === 1, 5000, 'the handler span');
  const spans = exporter.getFinishedSpans();
  const [callerSpan] = spans.filter((s) => s.name === 'caller' && s.spanContext().traceId === run.traceId);
  const [runSpan] = byName(spans, 'jobhost.trigger traced');
  const [attempt] = byName(spans, 'jobhost.attempt traced');
  const [work] = byName(spans, 'handler-work');
  t.ok(callerSpan, "the run is in the caller's trace");
  t.equal(runSpan?.parentSpanContext?.spanId, callerSpan?.spanContext().spanId);
  t.equal(attempt?.parentSpanContext?.spanId, runSpan?.spanContext().spanId, "the attempt (its run read from Redis) is the trigger span's child");
  t.equal(attempt?.attributes['jobhost.host'], run.host, 'on the host that ran it');
  t.equal(work?.parentSpanContext?.spanId, attempt?.spanContext().spanId);
  t.equal((await h0!.host.run(runId))?.traceId, run.traceId, 'both hosts show the trace id');
});
