import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { captureLogger, nextEvent, startHost } from '../../helpers.js';
import { CORE, pluginHost } from '../../plugin-host.js';

/**
 * Where an attempt runs: a plugin file in a worker thread by default; a plugin registered in
 * code, one that says `isolation: 'inline'`, or one the config sets to inline, in the host's
 * main thread, as before worker threads.
 */

const where = (name: string, extra = ''): string =>
  `import { isMainThread, threadId } from 'node:worker_threads';\nexport default { name: '${name}', ${extra} handler: () => ({ isMainThread, threadId }) };\n`;

t.test('a plugin file runs in a worker thread; one that says inline runs in the main thread', async (t) => {
  const h = await pluginHost(t, { 'threaded.ts': where('threaded'), 'local.ts': where('local', "isolation: 'inline',") });
  t.equal(h.host.job('threaded')!.isolation, 'worker');
  t.equal(h.host.job('local')!.isolation, 'inline');
  t.match((await h.host.wait((await h.host.trigger('threaded')).runId)).result, { isMainThread: false });
  t.match((await h.host.wait((await h.host.trigger('local')).runId)).result, { isMainThread: true, threadId: 0 });
});

t.test('inline is as before: a handler that spins past its timeout holds the thread and still ends succeeded', async (t) => {
  const h = await pluginHost(t, {
    'spin-inline.ts': `export default { name: 'spin-inline', isolation: 'inline', timeout: '100ms', handler: () => { const end = Date.now() + 300; while (Date.now() < end) {} return 'spun'; } };\n`,
  });
  const t0 = Date.now();
  const { runId } = await h.host.trigger('spin-inline');
  const run = await h.host.wait(runId);
  t.match(run, { status: 'succeeded', result: 'spun' }, 'the timeout never got a turn: the trade-off the README names');
  t.ok(Date.now() - t0 >= 300, 'the main thread was held for the whole spin');
  t.equal(h.host.workerStats().threads, 0, 'no worker thread was started');
});

t.test('a plugin registered in code runs inline, and the log says so once', async (t) => {
  const { logger, lines } = captureLogger();
  const { host } = await startHost(t, { logger });
  const body = { handler: async () => (await import('node:worker_threads')).isMainThread };
  host.register({ name: 'coded', ...body });
  host.register({ name: 'coded', description: 'again', ...body });
  host.register({ name: 'quiet', isolation: 'inline', ...body });
  t.equal(host.job('coded')!.isolation, 'inline');
  t.equal((await host.wait((await host.trigger('coded')).runId)).result, true);
  const notes = lines.filter((l) => typeof l['msg'] === 'string' && (l['msg'] as string).includes('runs inline'));
  t.match(notes, [{ level: 20, job: 'coded' }], 'once (debug) for the job that asked for a worker, none for the one that said inline');
});

t.test('jobs.<name>.isolation and defaults.isolation in the config; an edit moves the job', async (t) => {
  const h = await pluginHost(t, { 'moved.ts': where('moved'), 'other.ts': where('other') }, { config: { jobs: { moved: { isolation: 'inline' } } } });
  t.equal(h.host.job('moved')!.isolation, 'inline');
  t.equal(h.host.job('other')!.isolation, 'worker');
  t.match((await h.host.wait((await h.host.trigger('moved')).runId)).result, { isMainThread: true });

  const updated = nextEvent(h.host, (e) => e.type === 'job.updated' && e.data.job === 'moved');
  h.host.applyConfig({ workers: { size: 2, grace: 1000 }, jobs: { moved: {} } });
  t.match((await updated).data, { changed: ['isolation'] });
  t.match((await h.host.wait((await h.host.trigger('moved')).runId)).result, { isMainThread: false }, 'the next run is in a thread');

  h.host.applyConfig({ workers: { size: 2, grace: 1000 }, defaults: { isolation: 'inline' } });
  t.equal(h.host.job('other')!.isolation, 'inline');
  t.match((await h.host.wait((await h.host.trigger('other')).runId)).result, { isMainThread: true });
  t.throws(() => h.host.applyConfig({ jobs: { moved: { isolation: 'thread' } } }), { code: 'CONFIG_INVALID', message: /^jobs\.moved\.isolation: / });
});

t.test('in a thread, the plugin API is there and the host-side API says why it is not', async (t) => {
  const plugin = `
import { definePlugin, HostError, parseDuration, createHost } from '${CORE}';
export default definePlugin({
  name: 'api',
  handler: () => {
    let hostSide = '';
    try { void createHost; } catch (err) { hostSide = (err as Error).message; }
    return { ms: parseDuration('2s'), error: new HostError('TIMEOUT', 'x').code, hostSide };
  },
});
`;
  const h = await pluginHost(t, { 'api.ts': plugin });
  const run = await h.host.wait((await h.host.trigger('api')).runId);
  t.match(run.result, {
    ms: 2000,
    error: 'TIMEOUT',
    hostSide: /createHost is not available to a handler in a worker thread; give the job isolation: 'inline'/,
  });
});

t.test('a worker runs the version the host loaded, not the file as it is on disk now', async (t) => {
  const h = await pluginHost(t, { 'kept.ts': where('kept') });
  // A broken edit: the host keeps its last good version, and no thread has loaded the job yet.
  const failed = nextEvent(h.host, (e) => e.type === 'plugin.error');
  writeFileSync(path.join(h.plugins, 'kept.ts'), 'export default {\n');
  await failed;
  t.match((await h.host.wait((await h.host.trigger('kept')).runId)).result, { isMainThread: false });
});

t.test('a plugin file that loads differently in a thread fails its attempts there with a code', async (t) => {
  const twoFaced = `import { isMainThread } from 'node:worker_threads';\nexport default isMainThread ? { name: 'two-faced', handler: () => 1 } : { name: 'someone-else', handler: () => 2 };\n`;
  const throws = `import { isMainThread } from 'node:worker_threads';\nif (!isMainThread) throw new Error('not in a thread');\nexport default { name: 'throws-in-thread', handler: () => 1 };\n`;
  const h = await pluginHost(t, { 'two-faced.ts': twoFaced, 'throws.ts': throws });
  t.match(await h.host.wait((await h.host.trigger('two-faced')).runId), {
    status: 'failed',
    error: { code: 'PLUGIN_INVALID', message: /no longer exports a handler for job "two-faced"/ },
  });
  t.match(await h.host.wait((await h.host.trigger('throws-in-thread')).runId), {
    status: 'failed',
    error: { code: 'PLUGIN_IMPORT_FAILED', message: /not in a thread/ },
  });
});
