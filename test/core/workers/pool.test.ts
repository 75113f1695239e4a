import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { nextEvent, until } from '../../helpers.js';
import { CORE, pluginHost } from '../../plugin-host.js';

/**
 * The pool of threads: where a run goes, what becomes of runs that share a thread with a
 * handler that had to be terminated, and plugin versions reaching every thread.
 */

const spin = `
import { writeFileSync } from 'node:fs';
import { threadId } from 'node:worker_threads';
export default {
  name: 'spin',
  timeout: '1s',
  handler: (ctx: { attempt: number; params: { mark: string } }) => {
    writeFileSync(ctx.params.mark + '.' + ctx.attempt, String(threadId));
    const end = Date.now() + 60_000;
    while (Date.now() < end) {}
    return 'spun';
  },
};
`;

/** Waits for a release mark, then answers with its version and thread. */
const held = (label: string): string => `
import { existsSync } from 'node:fs';
import { threadId } from 'node:worker_threads';
import { label } from './lib/label.js';
export default {
  name: 'held',
  concurrency: 10,
  handler: (ctx: { params: { release: string } }) => new Promise((resolve) => {
    const poll = setInterval(() => {
      if (existsSync(ctx.params.release)) { clearInterval(poll); resolve({ version: '${label}', helper: label(), threadId }); }
    }, 5);
  }),
};
`;

t.test('a burst of runs passes over a thread whose handler holds its CPU', async (t) => {
  const quick = `import { threadId } from 'node:worker_threads';\nexport default { name: 'quick', concurrency: 20, handler: async () => ({ threadId }) };\n`;
  const h = await pluginHost(t, { 'spin.ts': spin, 'quick.ts': quick }, { config: { workers: { grace: 200 } } });
  // Both threads have loaded what the burst runs, so no run waits on an import.
  await h.host.wait((await h.host.trigger('quick')).runId);
  const { runId } = await h.host.trigger('spin', { params: { mark: h.mark('spin') } });
  const spinThread = Number(await h.marked('spin.1'));
  // The precondition: the spinning thread has been silent past the pool's stall bound (50 ms).
  await new Promise((r) => setTimeout(r, 150));
  const burst = await Promise.all(Array.from({ length: 8 }, () => h.host.trigger('quick')));
  const runs = await Promise.all(burst.map((b) => h.host.wait(b.runId)));
  t.ok(
    runs.every((r) => r.status === 'succeeded' && (r.result as { threadId: number }).threadId !== spinThread),
    'every run of the burst ran, on the other thread',
  );
  t.equal((await h.host.run(runId))!.status, 'running', 'while the handler still spins');
});

t.test('runs placed on a thread just as its handler went on the CPU move to another thread, not wait behind it', async (t) => {
  const spinFor = `import { writeFileSync } from 'node:fs';
import { threadId } from 'node:worker_threads';
export default {
  name: 'spin-for',
  concurrency: 10,
  handler: (ctx: { params: { ms: number; mark?: string } }) => {
    if (ctx.params.mark) writeFileSync(ctx.params.mark, String(threadId));
    const end = Date.now() + ctx.params.ms;
    while (Date.now() < end) {}
    return threadId;
  },
};
`;
  const quick = `import { threadId } from 'node:worker_threads';\nexport default { name: 'quick', concurrency: 20, handler: async () => ({ threadId }) };\n`;
  const h = await pluginHost(t, { 'spin-for.ts': spinFor, 'quick.ts': quick }, { config: { jobs: { 'spin-for': { timeout: '30s' } } } });
  // Both threads have both plugins loaded: a run starts there in the turn its batch is read.
  const warm = await Promise.all([
    h.host.trigger('spin-for', { params: { ms: 0 } }),
    h.host.trigger('spin-for', { params: { ms: 0 } }),
    h.host.trigger('quick'),
    h.host.trigger('quick'),
  ]);
  await Promise.all(warm.map((w) => h.host.wait(w.runId)));
  // In one go, as a schedule firing several jobs at once places them: before the pool can know the
  // spinning thread is held, some quick runs go to it (it has the fewest), behind the spin.
  const [spinning, ...burst] = await Promise.all([
    h.host.trigger('spin-for', { params: { ms: 30_000, mark: h.mark('spin') } }),
    ...Array.from({ length: 6 }, () => h.host.trigger('quick')),
  ]);
  await h.marked('spin');
  // Bounded far below the spin (30 s): a run held behind it would not end in time. (The pool
  // gives them up once the thread has not answered for a second.)
  const runs = await Promise.all(burst.map((b) => h.host.wait(b.runId, { timeout: 10_000 })));
  t.same(
    runs.map((r) => r.status),
    Array(6).fill('succeeded'),
  );
  t.equal((await h.host.run(spinning!.runId))!.status, 'running', 'while the handler still spins');
});

t.test('a run canceled while it waits behind a handler on the CPU does not start when the pool moves it', async (t) => {
  const spinFor = `export default { name: 'spin-for', concurrency: 10, handler: (ctx: { params: { ms: number } }) => { const end = Date.now() + ctx.params.ms; while (Date.now() < end) {} return 1; } };\n`;
  // Writes when its handler starts, and whether its signal was aborted by then.
  const victim = `import { appendFileSync } from 'node:fs';
export default {
  name: 'victim',
  concurrency: 20,
  handler: (ctx: { runId: string; params: { log?: string }; signal: AbortSignal }) => new Promise((resolve, reject) => {
    if (!ctx.params.log) return resolve(0);
    appendFileSync(ctx.params.log, JSON.stringify({ runId: ctx.runId, aborted: ctx.signal.aborted, at: Date.now() }) + '\\n');
    const timer = setTimeout(() => resolve(1), 4000);
    ctx.signal.addEventListener('abort', () => { clearTimeout(timer); reject(ctx.signal.reason); });
  }),
};
`;
  // One thread (and room for one more): every run of the burst waits behind the spin there.
  const h = await pluginHost(
    t,
    { 'spin-for.ts': spinFor, 'victim.ts': victim },
    { config: { workers: { size: 1, max: 2 }, jobs: { 'spin-for': { timeout: '30s' } } } },
  );
  for (const job of ['spin-for', 'victim']) await h.host.wait((await h.host.trigger(job, { params: job === 'spin-for' ? { ms: 0 } : {} })).runId);
  const log = h.mark('victims');
  const [, ...victims] = await Promise.all([
    h.host.trigger('spin-for', { params: { ms: 30_000 } }),
    ...Array.from({ length: 4 }, () => h.host.trigger('victim', { params: { log } })),
  ]);
  await until(() => h.host.workerStats().running === 5, 5000, 'all in threads');
  for (const v of victims) t.equal((await h.host.cancel(v.runId)).status, 'canceled');
  // Once the pool gives them up (a second without an answer from that thread), they end there
  // without a start: their abort went to the thread they leave.
  await until(() => h.host.workerStats().running === 1, 15_000, 'only the spin left in threads');
  t.equal(h.read('victims'), null, 'no handler of a canceled run started');
});

t.test('a run that shared a thread with a handler that had to be terminated starts again on a fresh one', async (t) => {
  const patient = `
import { appendFileSync, readFileSync } from 'node:fs';
export default {
  name: 'patient',
  handler: (ctx: { params: { mark: string } }) => {
    appendFileSync(ctx.params.mark, 'start;');
    const starts = readFileSync(ctx.params.mark, 'utf8').split(';').length - 1;
    // The first start waits for ever: only a second start can finish the run.
    return starts === 1 ? new Promise(() => {}) : { starts };
  },
};
`;
  const h = await pluginHost(t, { 'spin.ts': spin, 'patient.ts': patient }, { config: { workers: { size: 1 } } });
  const waiting = await h.host.trigger('patient', { params: { mark: h.mark('patient') } });
  await h.marked('patient');
  const spinning = await h.host.trigger('spin', { params: { mark: h.mark('spin') } });
  await h.marked('spin.1');
  await h.clock.advance(1000);
  t.match(await h.host.wait(spinning.runId), { status: 'failed', error: { code: 'TIMEOUT' } });
  // The grace ends the spinning thread; what follows (its replacement, the bystander's new start)
  // may arm a timer only after that, later on a loaded machine: a single advance then left the
  // run waiting for ever (seen in CI). So the clock moves a second every 250 ms of real time until
  // the run ends, 60 s of it at most (far below the bystander's own timeout).
  let advanced = 0;
  let last = 0;
  await until(
    async () => {
      const r = await h.host.run(waiting.runId);
      if (r?.status === 'succeeded' || r?.status === 'failed') return true;
      if (advanced < 60_000 && Date.now() - last >= 250) {
        last = Date.now();
        advanced += 1000;
        await h.clock.advance(1000);
      }
      return false;
    },
    60_000,
    'the bystander to end',
  );
  const run = await h.host.wait(waiting.runId);
  t.match(run, { status: 'succeeded', result: { starts: 2 } }, 'the bystander ran again and finished');
  t.equal(run.attempts.length, 1, 'as the same attempt: it did nothing wrong');
  t.match(h.host.workerStats(), { threads: 1, restarts: { grace: 1 } });
});

t.test('an edited plugin or helper runs its new code on the next run in every thread', async (t) => {
  const h = await pluginHost(t, { 'held.ts': held('v1'), 'lib/label.ts': `export const label = (): string => 'helper 1';\n` });
  let round = 0;
  /** Two runs at once, so each thread takes one. */
  const pair = async (): Promise<Array<{ version: string; helper: string; threadId: number }>> => {
    const release = h.mark(`release-${++round}`);
    const ids = await Promise.all([h.host.trigger('held', { params: { release } }), h.host.trigger('held', { params: { release } })]);
    await until(() => h.host.workerStats().running === 2, 5000, 'both runs in threads');
    writeFileSync(release, 'go');
    const runs = await Promise.all(ids.map((r) => h.host.wait(r.runId)));
    return runs.map((r) => r.result as { version: string; helper: string; threadId: number });
  };
  const first = await pair();
  const threads = new Set(first.map((r) => r.threadId));
  t.equal(threads.size, 2, 'the two runs took both threads');
  t.same(
    first.map((r) => [r.version, r.helper]),
    [
      ['v1', 'helper 1'],
      ['v1', 'helper 1'],
    ],
  );

  let updated = nextEvent(h.host, (e) => e.type === 'job.updated' && e.data.job === 'held');
  writeFileSync(path.join(h.plugins, 'held.ts'), held('v2'));
  await updated;
  const second = await pair();
  t.same(
    second.map((r) => [r.version, r.helper]),
    [
      ['v2', 'helper 1'],
      ['v2', 'helper 1'],
    ],
    'both threads run the edited file',
  );
  t.same(new Set(second.map((r) => r.threadId)), threads, 'on the same threads: a reload restarts none');

  updated = nextEvent(h.host, (e) => e.type === 'job.updated' && e.data.job === 'held');
  writeFileSync(path.join(h.plugins, 'lib/label.ts'), `export const label = (): string => 'helper 2';\n`);
  await updated;
  const third = await pair();
  t.same(
    third.map((r) => [r.version, r.helper]),
    [
      ['v2', 'helper 2'],
      ['v2', 'helper 2'],
    ],
    'both threads run the edited helper',
  );
});

/** A plugin with top-level await, a helper and jobhost's index: it says what it awaited, got and where it is. */
const tla = (word: string): string => `import { threadId } from 'node:worker_threads';
import { definePlugin } from '${CORE}';
import { label } from './lib/label.mjs';
const awaited = await Promise.resolve('${word}');
export default definePlugin({ name: 'tla', handler: () => ({ awaited, helper: label(), url: import.meta.url, threadId }) });
`;

t.test('a plugin with top-level await runs in a thread the version the host loaded, not the file on disk', async (t) => {
  const h = await pluginHost(t, { 'tla.mjs': tla('good'), 'lib/label.mjs': `export const label = () => 'helper';\n` }, { config: { workers: { size: 1 } } });
  const file = path.join(h.plugins, 'tla.mjs');
  // Broken before any thread ran the good version: a thread that read the file now would fail.
  const errored = nextEvent(h.host, (e) => e.type === 'plugin.error' && e.data.file === 'plugins/tla.mjs');
  writeFileSync(file, tla('broken').slice(0, -5));
  t.match((await errored).data, { code: 'PLUGIN_IMPORT_FAILED', message: /Expected|Unexpected/ });
  let run = await h.host.wait((await h.host.trigger('tla')).runId);
  t.match(
    run,
    { status: 'succeeded', result: { awaited: 'good', helper: 'helper', url: pathToFileURL(file).href } },
    'the last good version, with its helper and its own import.meta',
  );
  t.not((run.result as { threadId: number } | null)?.threadId, 0, 'in a worker thread');
  const updated = nextEvent(h.host, (e) => e.type === 'job.updated' && e.data.job === 'tla');
  writeFileSync(file, tla('fixed'));
  await updated;
  run = await h.host.wait((await h.host.trigger('tla')).runId);
  t.match(run, { status: 'succeeded', result: { awaited: 'fixed', helper: 'helper' } }, 'the fixed file runs once it is loaded');
});

t.test('when every thread is held on the CPU, one more starts (up to workers.max) so other runs need not wait', async (t) => {
  const quick = `import { threadId } from 'node:worker_threads';\nexport default { name: 'quick', handler: () => ({ threadId }) };\n`;
  const h = await pluginHost(t, { 'spin.ts': spin, 'quick.ts': quick }, { config: { workers: { size: 1, max: 2, grace: 200 } } });
  const spinning = await h.host.trigger('spin', { params: { mark: h.mark('spin') } });
  const spinThread = Number(await h.marked('spin.1'));
  // The precondition: the one thread has stopped reading for over a second (the pool's bound for
  // starting another while a thread reads nothing at all: a thread that is merely busy reads its
  // messages within milliseconds).
  await new Promise((r) => setTimeout(r, 1200));
  const run = await h.host.wait((await h.host.trigger('quick')).runId);
  t.match(run, { status: 'succeeded' });
  t.not((run.result as { threadId: number }).threadId, spinThread, 'on a thread started for it');
  t.equal(h.host.workerStats().threads, 2, 'no more than workers.max');
  t.equal((await h.host.run(spinning.runId))!.status, 'running', 'while the handler still spins');
});

t.test('a handler that computes in slices, reading its messages between them, holds its thread too: a quick run starts on another', async (t) => {
  // Slices of 800 ms. The pool once judged a thread only by how long it had not read: between
  // slices this one reads, so at a slice's start it looked free and quick runs went behind the slice.
  const slices = `
import { renameSync, writeFileSync } from 'node:fs';
import { threadId } from 'node:worker_threads';
export default {
  name: 'slices',
  timeout: 0,
  handler: async (ctx: { signal: AbortSignal; params: { mark: string } }) => {
    for (let n = 1; !ctx.signal.aborted; n++) {
      writeFileSync(ctx.params.mark + '.tmp', threadId + ' ' + n + ' ' + Date.now());
      renameSync(ctx.params.mark + '.tmp', ctx.params.mark);
      const end = Date.now() + 800;
      while (Date.now() < end) {}
      await new Promise((r) => setImmediate(r));
    }
  },
};
`;
  const quick = `import { threadId } from 'node:worker_threads';\nexport default { name: 'quick', handler: () => ({ threadId }) };\n`;
  const h = await pluginHost(t, { 'slices.ts': slices, 'quick.ts': quick }, { config: { workers: { size: 1, max: 2, grace: 200 } } });
  await h.host.trigger('slices', { params: { mark: h.mark('slices') } });
  // The trigger goes in just after a slice began (the second or later): the thread has just read.
  let sliceThread = 0;
  await until(
    () => {
      const [thread, n, at] = h.read('slices')?.split(' ').map(Number) ?? [0, 0, 0];
      sliceThread = thread!;
      return n! >= 2 && Date.now() - at! <= 150;
    },
    15_000,
    'a slice (the second or later) begun up to 150 ms ago',
  );
  const run = await h.host.wait((await h.host.trigger('quick')).runId);
  t.match(run, { status: 'succeeded' });
  t.not((run.result as { threadId: number }).threadId, sliceThread, 'on a thread started for it, not queued behind the next slice');
  t.equal(h.host.workerStats().threads, 2, 'one more thread, no more than workers.max');
});

t.test(
  'threads lower their own scheduling priority (workers.nice), the main thread keeps its own',
  { skip: process.platform !== 'linux' && 'Linux only' },
  async (t) => {
    const nice = `import { getPriority } from 'node:os';\nexport default { name: 'nice', handler: () => getPriority(0) };\n`;
    const h = await pluginHost(t, { 'nice.ts': nice }, { config: { workers: { nice: 7 } } });
    const main = (await import('node:os')).getPriority(0);
    // Niceness is absolute; a process already nicer than 7 cannot lower it without privilege.
    t.equal((await h.host.wait((await h.host.trigger('nice')).runId)).result, Math.max(main, 7));
    t.equal((await import('node:os')).getPriority(0), main, 'the main thread is untouched');
  },
);

t.test('params a thread cannot receive fail that attempt only: the batch it shared goes on, the host stays up', async (t) => {
  const echo = `export default { name: 'echo', retry: { attempts: 1 }, handler: (ctx: { params: unknown }) => ctx.params };\n`;
  const h = await pluginHost(t, { 'echo.ts': echo });
  // What JSON takes (dropping it) but the structured clone refuses: a function, a WeakMap (an app's
  // own objects, an event's payload, a schema's transform). Both triggered in one turn, so both
  // attempts go out in the same flush.
  const failed = nextEvent(h.host, (e) => e.type === 'run.failed');
  const [bad, good] = await Promise.all([
    h.host.trigger('echo', { params: { n: 1, format: () => '#1', cache: new WeakMap() } }),
    h.host.trigger('echo', { params: { n: 2 } }),
  ]);
  const event = await failed;
  t.equal((event.data as { runId?: string }).runId, bad.runId);
  t.match(event.data, { error: { code: 'PARAMS_NOT_TRANSFERABLE', message: /cannot be sent to a worker thread/ } });
  t.match(await h.host.wait(bad.runId), { status: 'failed', params: { n: 1, cache: {} } }, 'read back as JSON keeps it');
  const goodRun = await h.host.wait(good.runId);
  t.equal(goodRun.status, 'succeeded');
  t.same(goodRun.result, { n: 2 });
  // The host goes on: the next run of the job runs.
  t.equal((await h.host.wait((await h.host.trigger('echo', { params: { n: 3 } })).runId)).status, 'succeeded');
});
