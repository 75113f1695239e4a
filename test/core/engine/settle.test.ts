import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { createManualClock, type ManualClock } from '../../../core/contract/clock.js';
import type { ConfigInput } from '../../../core/contract/config.js';
import { silentLogger } from '../../../core/contract/logger.js';
import { createHost, type Host } from '../../../core/engine/host.js';
import { createServer } from '../../../core/server/server.js';
import { startHost, type Tap, tempDir, until } from '../../helpers.js';
import { pluginHost } from '../../plugin-host.js';

/** Counts unhandled rejections while a test runs (tap's own listener stays; this one only counts). */
function watchRejections(t: Tap): () => unknown[] {
  const seen: unknown[] = [];
  const listener = (reason: unknown): void => void seen.push(reason);
  process.on('unhandledRejection', listener);
  t.teardown(() => void process.off('unhandledRejection', listener));
  return () => seen;
}

/** Two turns of the event loop: a rejection left unhandled is reported by then. */
const settleLoop = (): Promise<void> => new Promise((r) => setImmediate(() => setImmediate(r)));

t.test('a cancel that arrives once the store has closed answers 503 SHUTTING_DOWN, records nothing, and leaves no rejection', async (t) => {
  const rejections = watchRejections(t);
  const dir = tempDir(t);
  const { host, clock } = await startHost(t, { dir, plugins: [{ name: 'later', handler: () => 'ran' }] });
  const { runId } = await host.trigger('later', { delay: 3_600_000 });
  // A server the embedding application closes after the host: it still takes requests once the store is closed.
  const server = createServer(host, { host: '127.0.0.1', port: 0 });
  const { url } = await server.listen();
  t.teardown(() => server.close());

  await host.stop({ graceMs: 0 });
  const res = await fetch(`${url}/runs/${runId}/cancel`, { method: 'POST', headers: { 'content-type': 'application/json' } });
  t.equal(res.status, 503);
  t.match(await res.json(), { statusCode: 503, code: 'SHUTTING_DOWN', error: 'Service Unavailable' });
  await t.rejects(host.cancel(runId), { code: 'SHUTTING_DOWN' }, 'the library call says the same');
  await settleLoop();
  t.same(rejections(), [], 'no unhandled rejection');

  const again = createHost({ config: { store: { dir } }, clock, logger: silentLogger(), plugins: [{ name: 'later', handler: () => 'ran' }] });
  await again.start();
  t.teardown(() => again.stop({ graceMs: 0 }));
  t.match(await again.run(runId), { status: 'queued' }, 'the run is still queued on disk: no cancel was claimed');
});

t.test('cancels racing a stop: each answer is either a cancel that is on disk or 503 SHUTTING_DOWN for a run left queued', async (t) => {
  const rejections = watchRejections(t);
  const dir = tempDir(t);
  const plugins = [{ name: 'later', handler: () => 'ran' }];
  const { host, clock } = await startHost(t, { dir, plugins });
  const ids: string[] = [];
  for (let i = 0; i < 80; i++) ids.push((await host.trigger('later', { delay: 3_600_000 })).runId);
  const server = createServer(host, { host: '127.0.0.1', port: 0 });
  const { url } = await server.listen();
  t.teardown(() => server.close());

  const answers = new Map<string, { status: number; code?: string }>();
  const cancel = async (id: string): Promise<void> => {
    const res = await fetch(`${url}/runs/${id}/cancel`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    const body = (await res.json()) as { code?: string };
    answers.set(id, { status: res.status, ...(body.code !== undefined && { code: body.code }) });
  };
  let done = false;
  const stopped = host.stop({ graceMs: 0 }).then(() => void (done = true));
  // One at a time while the stop goes on (before, during and after the store closes), the rest once it is over.
  const left = [...ids];
  while (!done && left.length > 1) await cancel(left.shift()!);
  await stopped;
  for (const id of left) await cancel(id);
  t.comment(`${answers.size - left.length} cancels raced the stop`);
  await settleLoop();
  t.same(rejections(), [], 'no unhandled rejection');
  const refused = [...answers.values()].filter((a) => a.status === 503);
  t.ok(refused.length > 0, 'the last cancels came after the store closed');
  t.ok(
    refused.every((a) => a.code === 'SHUTTING_DOWN'),
    'refused as SHUTTING_DOWN',
  );
  t.ok(
    [...answers.values()].every((a) => a.status === 200 || a.status === 503),
    'nothing else',
  );

  const again = createHost({ config: { store: { dir } }, clock, logger: silentLogger(), plugins });
  await again.start();
  t.teardown(() => again.stop({ graceMs: 0 }));
  for (const [id, answer] of answers) {
    const run = await again.run(id);
    if (answer.status === 200) t.equal(run?.status, 'canceled', `${id}: answered canceled, canceled on disk`);
    else t.equal(run?.status, 'queued', `${id}: refused, still queued`);
  }
});

/** A host not yet started whose stop may fail (startHost's teardown would take the rejection for the test's). */
function bareHost(t: Tap, options: { config: ConfigInput }): { host: Host; clock: ManualClock; of: (type: string) => unknown[] } {
  const clock = createManualClock(Date.UTC(2026, 0, 5, 12, 0, 0));
  const config = { ...options.config, store: { dir: tempDir(t), ...options.config.store } };
  const host = createHost({ config, clock, logger: silentLogger(), plugins: [{ name: 'later', handler: () => 'x' }] });
  const events: Array<{ type: string }> = [];
  host.on('*', (e) => void events.push(e));
  t.teardown(() => host.stop({ graceMs: 0 }).catch(() => undefined));
  return { host, clock, of: (type) => events.filter((e) => e.type === type) };
}

/** An application's own HTTP server, plugged into the host's lifecycle: a client holding a connection open keeps its close() from ever finishing. */
async function heldServer(t: Tap): Promise<{ server: http.Server; client: net.Socket }> {
  const server = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const client = net.connect(port, '127.0.0.1');
  await new Promise((resolve) => client.once('connect', resolve));
  // An idle keep-alive connection with a request half sent: close() waits for it.
  client.write('GET / HTTP/1.1\r\nHost: x\r\n');
  t.teardown(() => {
    client.destroy();
    server.closeAllConnections();
  });
  return { server, client };
}

t.test('a stop with a part that never closes still ends at grace + margin, the rest closed, and says so', async (t) => {
  const { server: appServer } = await heldServer(t);
  const { host, of } = bareHost(t, { config: { shutdown: { grace: 0, margin: 300 } } });
  host.use({
    name: 'app-server',
    start: () => Promise.resolve(),
    stop: () => new Promise<void>((resolve, reject) => appServer.close((err) => (err ? reject(err) : resolve()))),
  });
  const api = createServer(host, { host: '127.0.0.1', port: 0 });
  // Registered last, so it stops first: the hang comes after it.
  host.use({ name: 'http', start: async () => void (await api.listen()), stop: () => api.close() });
  await host.start();
  const { runId } = await host.trigger('later', { delay: 3_600_000 });

  const t0 = Date.now();
  const err = await host.stop().then(
    () => undefined,
    (e: unknown) => e,
  );
  const took = Date.now() - t0;
  t.match(err, { code: 'STOP_INCOMPLETE', details: { overdue: 'app-server', failed: [], deadlineMs: 300 } }, 'rejects, naming the part it gave up on');
  t.ok(took >= 300 && took < 300 + 2000, `ended at its deadline (${took} ms)`);
  t.equal(host.state, 'stopped');
  t.equal(of('host.stopped').length, 1, 'host.stopped was emitted');
  t.equal(api.url, null, 'the API server (stopped before the hang) is closed');
  await t.rejects(host.cancel(runId), { code: 'SHUTTING_DOWN' });
});

t.test('a part whose close throws: the stop goes on with the rest and rejects with STOP_INCOMPLETE naming it', async (t) => {
  const dir = tempDir(t);
  const { host, clock, of } = bareHost(t, { config: { store: { dir } } });
  // Closing a server that never listened throws ERR_SERVER_NOT_RUNNING.
  const never = http.createServer();
  host.use({
    name: 'never-listened',
    start: () => Promise.resolve(),
    stop: () => new Promise<void>((resolve, reject) => never.close((err) => (err ? reject(err) : resolve()))),
  });
  await host.start();
  const { runId } = await host.trigger('later', { delay: 3_600_000 });
  await t.rejects(host.stop({ graceMs: 0 }), { code: 'STOP_INCOMPLETE', details: { failed: ['never-listened'], overdue: null } });
  t.equal(host.state, 'stopped');
  t.equal(of('host.stopped').length, 1);
  // The store was closed (its lock released): a new host opens it and finds the run.
  const again = createHost({ config: { store: { dir } }, clock, logger: silentLogger(), plugins: [{ name: 'later', handler: () => 'x' }] });
  await again.start();
  t.teardown(() => again.stop({ graceMs: 0 }));
  t.match(await again.run(runId), { status: 'queued' });
});

t.test('host.wait: timeout (the host clock) and signal settle it, one bus listener serves every waiter, and the run goes on', async (t) => {
  const { host, clock } = await startHost(t, { plugins: [{ name: 'later', handler: () => 'ran' }] });
  const { runId } = await host.trigger('later', { delay: 60_000 });
  const listeners = host.bus.listenerCount();
  const controller = new AbortController();
  const waits = [...Array.from({ length: 50 }, () => host.wait(runId)), host.wait(runId, { timeout: 1000 }), host.wait(runId, { signal: controller.signal })];
  t.equal(host.bus.listenerCount(), listeners + 1, '52 waiters, one listener');
  const others = Promise.all(waits.slice(0, 50));
  const timedOut = t.rejects(waits[50]!, { code: 'WAIT_TIMEOUT', details: { runId, timeoutMs: 1000 } });
  controller.abort(new Error('the caller went away'));
  await t.rejects(waits[51]!, { message: 'the caller went away' }, 'the signal: its reason');
  await clock.advance(1000);
  await timedOut;
  await clock.advance(59_000);
  const runs = await others;
  t.ok(
    runs.every((r) => r.status === 'succeeded' && r.result === 'ran'),
    'the others resolve with the final run',
  );
  t.equal(host.bus.listenerCount(), listeners, 'no listener left behind');
  await t.rejects(host.wait('no-such-run'), { code: 'RUN_NOT_FOUND' });
  await t.rejects(host.wait(runId, { signal: AbortSignal.abort(new Error('already')) }), { message: 'already' });
});

t.test(
  'a host stopped while host.wait() and a cancel are pending: the wait rejects SHUTTING_DOWN, the cancel answers 503, nothing is left unhandled',
  async (t) => {
    const rejections = watchRejections(t);
    const { host } = bareHost(t, { config: {} });
    const api = createServer(host, { host: '127.0.0.1', port: 0 });
    host.use({ name: 'http', start: async () => void (await api.listen()), stop: () => api.close() });
    await host.start();
    const url = api.url!;
    const { runId } = await host.trigger('later', { delay: 60_000 });
    const waiting = host.wait(runId).then(
      (run) => ({ run }),
      (err: unknown) => ({ err }),
    );
    const stopping = new Promise<void>((resolve) => host.on('host.stopping', () => resolve()));
    const stopped = host.stop({ graceMs: 0 }).catch((err: unknown) => err);
    await stopping;
    // The server is still up until the engine has stopped; a cancel sent now is answered after the backend began closing or before.
    const res = await fetch(`${url}/runs/${runId}/cancel`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    const body = (await res.json()) as Record<string, unknown>;
    t.equal(await stopped, undefined, 'the stop itself succeeded');
    const outcome = await waiting;
    if (res.status === 200) {
      t.match(outcome, { run: { status: 'canceled' } }, 'the cancel came before the backend closed: the wait saw it');
    } else {
      t.equal(res.status, 503);
      t.match(body, { statusCode: 503, code: 'SHUTTING_DOWN', error: 'Service Unavailable' });
      t.match(outcome, { err: { code: 'SHUTTING_DOWN', details: { runId } } }, 'the wait rejects SHUTTING_DOWN');
    }
    if (res.status !== 200) await t.rejects(host.wait(runId), { code: 'SHUTTING_DOWN' }, 'a wait after the stop settles too');
    await settleLoop();
    t.same(rejections(), [], 'no unhandled rejection');
  },
);

t.test('reading the worker threads memory settles when a thread dies before it answers', async (t) => {
  const files = {
    // A handler that holds its thread: the thread cannot answer a memory read until it is terminated.
    'spin.ts': `import { writeFileSync } from 'node:fs';\nexport default { name: 'spin', handler: () => { writeFileSync(${JSON.stringify('MARK')}, 'in'); for (;;) {} } };\n`,
  };
  const ph = await pluginHost(t, {}, { config: { workers: { size: 2, grace: 300 } } });
  writeFileSync(path.join(ph.plugins, 'spin.ts'), files['spin.ts'].replace('MARK', ph.mark('spinning').replaceAll('\\', '/')));
  await until(() => ph.host.job('spin') !== undefined, 10_000, 'spin loaded');
  const { runId } = await ph.host.trigger('spin');
  await ph.marked('spinning');
  const threads = ph.host.workerStats().threads;
  const reading = ph.host.workerMemory();
  // The cancel aborts the handler; it does not let go, so its thread is terminated after the grace (the host's clock).
  await ph.host.cancel(runId);
  await ph.clock.advance(300);
  const heaps = await Promise.race([reading, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 15_000).unref())]);
  t.not(heaps, 'hung', 'the read settled');
  t.ok(Array.isArray(heaps) && heaps.length < threads, `the dead thread is left out (${JSON.stringify(heaps)} of ${threads} threads)`);
  t.ok(Array.isArray(heaps) && heaps.every((n) => n > 0), 'the live ones answered');
});
