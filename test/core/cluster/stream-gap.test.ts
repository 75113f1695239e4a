import t from 'tap';
import { WebSocket } from 'ws';
import type { AnyHostEvent } from '../../../core/contract/events.js';
import { silentLogger } from '../../../core/contract/logger.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { createHost, type Host } from '../../../core/engine/host.js';
import { createServer } from '../../../core/server/server.js';
import { finalOn, freshPrefix } from '../../cluster.js';
import { captureLogger, until } from '../../helpers.js';
import { startRedis } from '../../redis.js';
import { startTcpProxy } from '../../tcp-proxy.js';

/**
 * Stream lag (SPEC §11): a host whose reading of the capped cluster stream falls behind by more
 * than the stream keeps (here: cut off from Redis through a TCP proxy while the other host writes)
 * says so once reading resumes: `events.gap` to its WebSocket clients, a counter, `/ready`, a log line.
 */

/** A counter's value in a Prometheus text exposition (0 when absent). */
function counter(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

/** `entries-added` and `length` of a stream, from XINFO STREAM. */
function addedAndLength(flat: unknown[]): { added: number; length: number } {
  const info = new Map<string, unknown>();
  for (let i = 0; i + 1 < flat.length; i += 2) info.set(String(flat[i]), flat[i + 1]);
  return { added: Number(info.get('entries-added')), length: Number(info.get('length')) };
}

t.test('a host cut off while another writes past the stream cap: events.gap reaches its WebSocket clients, is counted and named by /ready', async (t) => {
  const redis = await startRedis(t);
  const proxy = await startTcpProxy(t, redis.port);
  const prefix = freshPrefix();
  const stream = `${prefix}:__cluster:events`;
  const start = async (id: string, url: string, logger = silentLogger()): Promise<Host> => {
    const host = createHost({
      // The smallest cap: Redis trims whole nodes of ~100 entries (MAXLEN ~), so a few hundred entries overrun it.
      config: { backend: { kind: 'redis', url, prefix, lockDuration: 1000, stalledInterval: 500, streamLength: 10 }, cluster: { id } },
      logger,
      random: () => 0.5,
      plugins: id === 'h1' ? [definePlugin({ name: 'tick', isolation: 'inline', concurrency: 20, handler: () => 'ok' })] : [],
    });
    t.teardown(() => host.stop({ graceMs: 0 }));
    await host.start();
    return host;
  };
  const log = captureLogger();
  const h0 = await start('h0', proxy.url, log.logger);
  const h1 = await start('h1', redis.url);
  const server = createServer(h0, { host: '127.0.0.1', port: 0 });
  const { url } = await server.listen();
  t.teardown(() => server.close());
  const h0All: AnyHostEvent[] = [];
  h0.on('*', (e) => void h0All.push(e));

  // A client that only asks for run events: the gap reaches it all the same.
  const received: Array<{ type: string; data: Record<string, unknown> }> = [];
  const socket = new WebSocket(`${url.replace('http', 'ws')}/events?type=run.*`);
  t.teardown(() => socket.terminate());
  socket.on('message', (raw) => received.push(JSON.parse(String(raw)) as { type: string; data: Record<string, unknown> }));
  await until(() => received.some((m) => m.type === 'hello'), 5000, 'the hello');

  // h0 is caught up: it has read the end of the last run h1 ran, the newest entry of the stream.
  const first = await h1.trigger('tick');
  await finalOn(h1, first.runId);
  await until(() => h0All.some((e) => e.type === 'run.succeeded' && e.data.runId === first.runId), 10_000, 'h0 to read the stream to its end');
  const client = redis.client();
  const before = addedAndLength((await client.xinfo('STREAM', stream)) as unknown[]);
  t.equal(counter(await (await fetch(`${url}/metrics`)).text(), 'jobhost_event_gaps_total'), 0, 'no gap yet');

  await proxy.cut();
  // h1 writes far past the cap while h0 cannot read.
  const ids: string[] = [];
  for (let i = 0; i < 300; i++) ids.push((await h1.trigger('tick')).runId);
  for (const id of ids) await finalOn(h1, id);
  const after = addedAndLength((await client.xinfo('STREAM', stream)) as unknown[]);
  const expected = after.added - after.length - before.added;
  t.ok(expected > 0, `entries h0 never read were trimmed (${expected})`);

  await proxy.restore();
  await until(() => received.some((m) => m.type === 'events.gap'), 20_000, 'events.gap on the WebSocket');
  const gap = received.find((m) => m.type === 'events.gap')!;
  t.match(gap.data, { job: null, lost: expected, from: String, to: String }, 'it says how many entries were lost, and where');
  t.equal(received.filter((m) => m.type === 'events.gap').length, 1, 'once');

  const metrics = await (await fetch(`${url}/metrics`)).text();
  t.equal(counter(metrics, 'jobhost_event_gaps_total'), 1, 'the gap is counted');
  t.equal(counter(metrics, 'jobhost_events_lost_total'), expected, 'and the entries lost');
  let warnings: Array<{ code: string; message: string }> = [];
  await until(
    async () => {
      warnings = ((await (await fetch(`${url}/ready`)).json()) as { warnings: typeof warnings }).warnings;
      return warnings.some((w) => w.code === 'EVENTS_LOST');
    },
    5000,
    '/ready to name the gap',
  );
  t.match(warnings.find((w) => w.code === 'EVENTS_LOST')?.message, new RegExp(`^${expected} stream entries`), '/ready names it');
  t.match(
    log.lines.find((l) => l['code'] === 'EVENTS_LOST'),
    { level: 40, host: 'h0', lost: expected },
    'logged as a warning',
  );
  t.notOk(h1.storeHealth().faults?.eventGaps, 'the host that wrote lost nothing');
});
