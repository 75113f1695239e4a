import { createRequire } from 'node:module';
import t from 'tap';

// What `jobhost start` loads before it serves: only what every host needs. A notification
// destination's client (standardwebhooks here, CommonJS so the require cache shows it; nodemailer
// likewise, ESM) is loaded by the first delivery that uses it.
t.test('starting the app module loads no notification client', async (t) => {
  const cache = createRequire(import.meta.url).cache;
  const loaded = (pkg: string): boolean => Object.keys(cache).some((file) => file.includes(`/node_modules/${pkg}/`));
  t.notOk(loaded('standardwebhooks'), 'not loaded before');
  await import('../../../core/loader/app.js');
  t.ok(loaded('fastify'), 'the app module and its server did load');
  t.notOk(loaded('standardwebhooks'), 'standardwebhooks is not loaded by the start');
  // Nothing has set OpenTelemetry up in this process: the API is loaded once something does (SPEC §15).
  t.notOk(loaded('@opentelemetry/api'), 'nor is the OpenTelemetry API');
  const { send } = await import('../../../core/notify/send.js');
  t.type(send, 'function');
  t.notOk(loaded('standardwebhooks'), 'nor by the notification module itself');
});

t.test('runs on a host that nothing traces load no OpenTelemetry API; once something sets it up, the runs are traced', async (t) => {
  const cache = createRequire(import.meta.url).cache;
  const loaded = (): boolean => Object.keys(cache).some((file) => file.includes('/node_modules/@opentelemetry/api/'));
  const { startHost } = await import('../../helpers.js');
  const { host } = await startHost(t);
  host.register({ name: 'quiet', handler: () => 'done' });
  const run = await host.wait((await host.trigger('quiet')).runId);
  t.equal(run.status, 'succeeded');
  t.notOk(loaded(), 'a run untraced, the API never loaded');
  t.equal(run.traceId, undefined, 'and the run has no trace fields');

  // An application sets an SDK up after the host started: the next run is traced.
  const api = await import('@opentelemetry/api');
  const { TracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = await import('@opentelemetry/sdk-trace');
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  t.ok(api.trace.setGlobalTracerProvider(provider), 'the SDK registered');
  t.teardown(() => api.trace.disable());
  const traced = await host.wait((await host.trigger('quiet')).runId);
  t.match(traced.traceId, /^[0-9a-f]{32}$/, 'the next run records its trace');
  t.ok(
    exporter.getFinishedSpans().some((s) => s.name === 'jobhost.trigger quiet'),
    "and the trigger's span was exported",
  );
});
