import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { until } from '../helpers.js';
import { closedPort } from '../live-host.js';
import { httpReceiver } from '../receivers.js';
import { launchChromium, openPage } from './browser.js';
import { makeProject, runCli } from './project.js';

/**
 * `jobhost start` with the standard OTEL_* variables (SPEC §15): it sets up the Node SDK and the
 * OTLP exporter itself, an HTTP trigger continues the caller's trace, and the handler, in its
 * worker thread (the default isolation), runs inside its attempt's span, so a span it makes with
 * `@opentelemetry/api` is exported as that attempt's child. The collector is a local HTTP
 * receiver taking OTLP/JSON.
 */

const PLUGIN = `import { trace } from '@opentelemetry/api';
export default {
  name: 'traced',
  async handler(ctx) {
    await trace.getTracer('plugin').startActiveSpan('thread-work', async (span) => {
      ctx.log.info('working');
      span.end();
    });
    return 'done';
  },
};
`;

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER = '00f067aa0ba902b7';

interface OtlpSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
}

interface OtlpBody {
  resourceSpans?: Array<{
    resource?: { attributes?: Array<{ key: string; value: { stringValue?: string } }> };
    scopeSpans?: Array<{ spans?: OtlpSpan[] }>;
  }>;
}

t.test('jobhost start exports the trace of an HTTP trigger, the worker thread included', async (t) => {
  const collector = await httpReceiver(t);
  collector.fallback = { status: 200, headers: { 'content-type': 'application/json' }, body: '{}' };
  const dir = makeProject(t, { server: { port: 0 } }, { examples: false });
  writeFileSync(path.join(dir, 'plugins/traced.mjs'), PLUGIN);
  const app = runCli(t, dir, ['start'], {
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '100',
    OTEL_SERVICE_NAME: 'jobhost-e2e',
  });
  const started = await app.waitFor((l) => l.msg.startsWith('jobhost started'), 'the started line');
  t.ok(
    app.lines.some((l) => l.msg === 'OpenTelemetry tracing on (OTEL_* environment)'),
    'the host says tracing is on',
  );
  const url = started['url'] as string;
  const res = await fetch(`${url}/jobs/traced/run`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', traceparent: `00-${TRACE}-${CALLER}-01` },
    body: '{}',
  });
  t.equal(res.status, 202);
  const { runId } = (await res.json()) as { runId: string };

  const spans = (): OtlpSpan[] =>
    collector.received.flatMap((r) => ((r.json as OtlpBody).resourceSpans ?? []).flatMap((rs) => (rs.scopeSpans ?? []).flatMap((ss) => ss.spans ?? [])));
  const named = (name: string): OtlpSpan | undefined => spans().find((s) => s.name === name);
  // A worker thread loads its tracer on its first traced attempt: allow for a loaded machine.
  await until(
    () => ['jobhost.trigger traced', 'jobhost.attempt traced', 'thread-work', 'jobhost.run traced'].every((n) => named(n)),
    60_000,
    'the spans at the collector',
  );
  t.ok(
    collector.received.every((r) => r.path === '/v1/traces'),
    'OTLP traces path',
  );
  const run = named('jobhost.trigger traced')!;
  const attempt = named('jobhost.attempt traced')!;
  const work = named('thread-work')!;
  t.same([run.traceId, attempt.traceId, work.traceId], [TRACE, TRACE, TRACE], "one trace, the caller's");
  t.equal(run.parentSpanId, CALLER, "the trigger span's parent is the caller's span");
  t.equal(attempt.parentSpanId, run.spanId, "the attempt's parent is the trigger span");
  t.equal(named('jobhost.run traced')!.parentSpanId, run.spanId, 'so is the run span');
  t.equal(work.parentSpanId, attempt.spanId, "the handler's span, made in its worker thread, is the attempt's child");
  const services = collector.received.flatMap((r) =>
    ((r.json as OtlpBody).resourceSpans ?? []).map((rs) => rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue),
  );
  t.same([...new Set(services)], ['jobhost-e2e'], 'service.name from OTEL_SERVICE_NAME, in both threads');

  const stored = (await (await fetch(`${url}/runs/${runId}`)).json()) as { traceId?: string; status: string };
  t.equal(stored.traceId, TRACE, 'the run records the trace id');
  const line = app.lines.find((l) => l.msg === 'working');
  t.same(
    [line?.['trace_id'], line?.['span_id']],
    [TRACE, attempt.spanId],
    "the handler's log line (written in its thread) carries the trace and the attempt span",
  );
  const kept = (await (await fetch(`${url}/runs/${runId}/logs`)).json()) as { traceId?: string; lines: Array<{ msg: string }> };
  t.same([kept.traceId, kept.lines.map((l) => l.msg)], [TRACE, ['working']], 'the lines the run keeps name its trace too');

  // The run page shows the trace id, for a search in the tracing backend.
  const page = await openPage(t, await launchChromium(t, dir));
  await page.goto(`${url}/#/runs/${runId}`);
  t.equal(await page.textContent('[data-run-trace]'), TRACE, 'the dashboard run page shows the trace id');
  t.same(page.errors, []);

  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0, 'a clean stop with the SDK shut down');
});

t.test('a collector out of reach never touches a run: the export failures are a counted warning', async (t) => {
  const dir = makeProject(t, { server: { port: 0 } }, { examples: false });
  writeFileSync(path.join(dir, 'plugins/traced.mjs'), PLUGIN);
  const app = runCli(t, dir, ['start'], {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${await closedPort()}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '50',
  });
  const url = (await app.waitFor((l) => l.msg.startsWith('jobhost started'), 'the started line'))['url'] as string;
  const res = await fetch(`${url}/jobs/traced/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  const { runId } = (await res.json()) as { runId: string };
  await until(async () => ((await (await fetch(`${url}/runs/${runId}`)).json()) as { status: string }).status === 'succeeded', 60_000, 'the run to succeed');
  const warning = await app.waitFor((l) => l['code'] === 'TRACE_EXPORT', 'the export warning');
  t.equal(warning.level, 40, 'a warning');
  t.match(warning.msg, /^OpenTelemetry: .*\(runs are not affected\)$/);
  const metrics = await (await fetch(`${url}/metrics`)).text();
  const problems = Number(/^jobhost_trace_export_problems_total (\d+)/m.exec(metrics)?.[1] ?? 0);
  t.ok(problems >= 1, `counted (${problems})`);
  app.child.kill('SIGTERM');
  t.equal(await app.exited, 0, 'and the stop is not held up by the collector');
});
