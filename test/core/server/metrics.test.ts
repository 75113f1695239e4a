import { once } from 'node:events';
import parsePrometheusTextFormat, { type MetricFamily, type Sample } from 'parse-prometheus-text-format';
import t from 'tap';
import { WebSocket } from 'ws';
import { gate, startServer, until } from '../../helpers.js';

const noop = (): undefined => undefined;

/** One family by name from a real Prometheus text parser's output. */
function family(families: MetricFamily[], name: string): MetricFamily {
  const found = families.find((f) => f.name === name);
  if (!found) throw new Error(`no metric ${name}`);
  return found;
}

function sample(f: MetricFamily, labels: Record<string, string> = {}): Sample | undefined {
  return f.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
}

t.test('GET /metrics: Prometheus text fed by the host', async (t) => {
  const s = await startServer(t);
  const { host, clock, request } = s;
  const release = gate();
  host.register({ name: 'ok', handler: noop });
  host.register({
    name: 'bad',
    handler: () => {
      throw new Error('x');
    },
  });
  host.register({ name: 'slow', overlap: 'skip', handler: () => release.promise });
  host.register({ name: 'off', enabled: false, handler: noop });
  host.register({
    name: 'flaky',
    retry: { attempts: 2, delay: '1h' },
    handler: () => {
      throw new Error('later');
    },
  });
  for (let i = 0; i < 2; i++) await host.wait((await host.trigger('ok')).runId);
  await host.wait((await host.trigger('bad')).runId);
  const flaky = await host.trigger('flaky');
  await until(async () => (await host.run(flaky.runId))!.attempts.length === 1, 5000, 'the first attempt');
  await host.trigger('slow');
  await t.rejects(host.trigger('slow'), { code: 'SKIPPED' });
  await t.rejects(host.trigger('off'), { code: 'SKIPPED' });
  host.pause();
  await host.trigger('ok');
  await host.trigger('ok', { delay: '1h' });
  host.bus.emit('plugin.error', { job: null, file: 'broken.ts', code: 'PLUGIN_IMPORT_FAILED', message: 'syntax' });
  host.bus.emit('config.error', { job: null, file: 'jobhost.json', code: 'CONFIG_INVALID', path: 'jobs.x', message: 'bad' });
  const socket = new WebSocket(`${s.url.replace('http', 'ws')}/events`);
  t.teardown(() => socket.terminate());
  await once(socket, 'open');
  await until(() => s.metrics().then((m) => m.includes('jobhost_ws_clients 1')), 5000, 'the socket to count');

  const res = await request('GET', '/metrics');
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const families = parsePrometheusTextFormat(res.text);

  const runs = family(families, 'jobhost_runs_total');
  t.equal(runs.type, 'COUNTER');
  t.equal(sample(runs, { job: 'ok', status: 'succeeded' })?.value, '2');
  t.equal(sample(runs, { job: 'bad', status: 'failed' })?.value, '1');
  t.equal(sample(family(families, 'jobhost_triggers_skipped_total'), { job: 'slow', reason: 'overlap' })?.value, '1');
  t.equal(sample(family(families, 'jobhost_triggers_skipped_total'), { job: 'off', reason: 'disabled' })?.value, '1');

  const duration = family(families, 'jobhost_run_duration_seconds');
  t.equal(duration.type, 'HISTOGRAM');
  t.ok(duration.metrics[0]?.buckets?.['+Inf'], 'the buckets parse');
  // parse-prometheus-text-format folds a histogram's label sets into one (like prom2json's flat
  // view), so the per-job series are read from the text it has just accepted as valid.
  t.match(res.text, /^jobhost_run_duration_seconds_count\{job="ok"\} 2$/m);
  t.match(res.text, /^jobhost_run_duration_seconds_bucket\{le="0\.005",job="ok"\} 2$/m, 'no-op runs on a manual clock take 0 s');
  t.match(res.text, /^jobhost_run_duration_seconds_count\{job="bad"\} 1$/m);

  t.equal(sample(family(families, 'jobhost_queue_depth'), { queue: 'default' })?.value, '1');
  t.equal(sample(family(families, 'jobhost_runs_running'))?.value, '1');
  t.equal(sample(family(families, 'jobhost_runs_delayed'))?.value, '2', 'a delayed trigger and a retry waiting');
  t.equal(sample(family(families, 'jobhost_run_retries_total'), { job: 'flaky' })?.value, '1');
  const lastSuccess = family(families, 'jobhost_job_last_success_timestamp_seconds');
  t.equal(Number(sample(lastSuccess, { job: 'ok' })?.value), clock.now() / 1000);
  t.notOk(sample(lastSuccess, { job: 'bad' }), 'no success, no sample');
  t.equal(sample(family(families, 'jobhost_plugin_errors_total'))?.value, '1');
  t.equal(sample(family(families, 'jobhost_config_errors_total'))?.value, '1');
  t.equal(sample(family(families, 'jobhost_ws_clients'))?.value, '1');
  t.equal(sample(family(families, 'jobhost_ws_cutoffs_total'))?.value, '0');
  t.equal(sample(family(families, 'jobhost_up'))?.value, '1');
  t.equal(sample(family(families, 'jobhost_events_total'), { type: 'run.succeeded' })?.value, '2');

  socket.terminate();
  await until(() => s.metrics().then((m) => m.includes('jobhost_ws_clients 0')), 5000, 'the socket to leave');
  release.open();
});

t.test('metrics stop following the bus once the server closes', async (t) => {
  const s = await startServer(t);
  const before = s.host.bus.listenerCount();
  await s.server.close();
  t.equal(s.host.bus.listenerCount(), before - 1);
});

t.test('GET /metrics passes promtool check metrics (Debian prometheus), notification metrics included', async (t) => {
  const { spawn } = await import('node:child_process');
  const hook = await import('../../receivers.js').then((r) => r.httpReceiver(t));
  const s = await startServer(t, {
    config: { notifications: { destinations: { hook: { kind: 'webhook', url: hook.url } } } },
    plugins: [
      {
        name: 'bad',
        isolation: 'inline',
        notify: { on: ['failed'], to: ['hook'] },
        handler: () => {
          throw new Error('x');
        },
      },
    ],
  });
  await s.host.wait((await s.host.trigger('bad')).runId);
  await hook.count(1);
  await until(async () => /jobhost_notification_deliveries_total\{destination="hook",outcome="delivered"\} 1/.test(await s.metrics()), 5000, 'counted');
  const text = await s.metrics();
  const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  child.stdin.end(text);
  const [code] = (await once(child, 'close')) as [number];
  t.equal(code, 0, `promtool: ${out.trim() || 'clean'}`);
  t.notMatch(out, /quantile/, 'no gauge with a quantile label');
});
