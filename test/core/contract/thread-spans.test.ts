import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import t from 'tap';
import type { ThreadSpan } from '../../../core/contract/otel-thread.js';
import { acceptThreadSpans } from '../../../core/contract/thread-spans.js';

/**
 * Spans a worker thread hands over (`acceptThreadSpans`) reach the SDK set up in this process,
 * through another copy of the API's proxy too; a processor that throws on one never throws out
 * of here (the pool reads the rest of the thread's batch after it), and drops the rest with one warning.
 */

const span = (name: string): ThreadSpan => ({
  name,
  kind: 0,
  context: { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: 1 },
  parent: { traceId: 'a'.repeat(32), spanId: 'c'.repeat(16), traceFlags: 1, isRemote: true },
  startTime: [1_700_000_000, 0],
  endTime: [1_700_000_001, 500],
  duration: [1, 500],
  status: { code: 0 },
  attributes: { rows: 42 },
  links: [],
  events: [],
  scope: { name: 'plugin' },
  droppedAttributesCount: 0,
  droppedEventsCount: 0,
  droppedLinksCount: 0,
});

t.test("through a proxy of another API copy to the SDK's processors; a throwing processor drops the rest, once warned", async (t) => {
  const exporter = new InMemorySpanExporter();
  let throwing = false;
  const provider = new TracerProvider({
    spanProcessors: [
      new SimpleSpanProcessor({ exporter }),
      {
        onStart: () => undefined,
        onEnd: () => {
          if (throwing) throw new Error('state from onStart missing');
        },
        forceFlush: () => Promise.resolve(),
        shutdown: () => Promise.resolve(),
      },
    ],
  });
  // What another copy of the API registers: its own proxy class, delegating to the SDK's provider.
  const foreignProxy = { getDelegate: () => provider, getTracer: (n: string, v?: string) => provider.getTracer(n, v) };
  trace.setGlobalTracerProvider(foreignProxy);
  t.teardown(() => trace.disable());
  const warnings: string[] = [];
  acceptThreadSpans([span('first')], (m) => warnings.push(m));
  const [got] = exporter.getFinishedSpans();
  t.equal(got?.name, 'first', 'the span reached the exporter');
  t.equal(got?.parentSpanContext?.spanId, 'c'.repeat(16));
  t.equal(got?.attributes['rows'], 42);
  t.same(warnings, []);

  throwing = true;
  t.doesNotThrow(() => acceptThreadSpans([span('second')], (m) => warnings.push(m)), 'a throwing processor does not throw out');
  acceptThreadSpans([span('third')], (m) => warnings.push(m));
  t.equal(warnings.length, 1, 'warned once');
  t.match(warnings[0], /spans were dropped: a span processor threw on one \(state from onStart missing\)/);
  t.same(
    exporter.getFinishedSpans().map((s) => s.name),
    ['first', 'second'],
    'the ones after it are dropped',
  );
});
