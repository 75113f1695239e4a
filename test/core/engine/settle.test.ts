import t from 'tap';
import { silentLogger } from '../../../core/contract/logger.js';
import { createHost } from '../../../core/engine/host.js';
import { createServer } from '../../../core/server/server.js';
import { startHost, type Tap, tempDir } from '../../helpers.js';

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
