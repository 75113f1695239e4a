import { context, SpanKind, trace } from '@opentelemetry/api';

/**
 * The tracing benchmark's floor: what the SDK alone costs for the three spans of a run (a
 * producer span, a consumer child, an internal child with a start time given), with jobhost's
 * attributes, and nothing else. Batches of 1,024 "runs", each exported (`drain`) before the next:
 * unpaced, spans would outrun the exporter and be dropped, and their export never paid for.
 * Returns "runs"/s.
 */
export async function sdkFloor(runs: number, drain: () => Promise<void>): Promise<number> {
  const tracer = trace.getTracer('jobhost');
  const t0 = performance.now();
  for (let i = 0; i < runs; ) {
    for (const end = Math.min(runs, i + 1024); i < end; i++) {
      const runId = `0mwt91n1z0${i.toString(36).padStart(6, '0')}`;
      const created = Date.now();
      const trigger = tracer.startSpan(
        'jobhost.trigger noop',
        { kind: SpanKind.PRODUCER, attributes: { 'jobhost.job': 'noop', 'jobhost.run.id': runId, 'jobhost.run.source': 'api' } },
        context.active(),
      );
      trigger.end();
      const parent = trace.setSpanContext(context.active(), trigger.spanContext());
      tracer
        .startSpan(
          'jobhost.attempt noop',
          { kind: SpanKind.CONSUMER, attributes: { 'jobhost.job': 'noop', 'jobhost.run.id': runId, 'jobhost.attempt': 1 } },
          parent,
        )
        .end();
      tracer
        .startSpan(
          'jobhost.run noop',
          {
            kind: SpanKind.INTERNAL,
            startTime: created,
            attributes: { 'jobhost.job': 'noop', 'jobhost.run.id': runId, 'jobhost.run.source': 'api', 'jobhost.run.status': 'succeeded' },
          },
          parent,
        )
        .end();
    }
    await drain();
  }
  return (runs / (performance.now() - t0)) * 1000;
}
