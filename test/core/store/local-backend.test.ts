import t from 'tap';
import type { ExecutableJob } from '../../../core/contract/attempt.js';
import { type AdmissionRules, type Backend, MISSED_WATCHES_MAX } from '../../../core/contract/backend.js';
import { createManualClock, isoTime } from '../../../core/contract/clock.js';
import type { AnyHostEvent } from '../../../core/contract/events.js';
import { silentLogger } from '../../../core/contract/logger.js';
import type { JobContext } from '../../../core/contract/plugin.js';
import { DEFAULT_RETRY } from '../../../core/contract/retry.js';
import type { Run } from '../../../core/contract/run.js';
import { Bus } from '../../../core/engine/bus.js';
import { InlineExecutor } from '../../../core/engine/executor.js';
import { RunEvents } from '../../../core/engine/run-events.js';
import { createLocalBackend } from '../../../core/store/local-backend.js';
import { gate, type Tap, tempDir, until } from '../../helpers.js';

/**
 * The local backend through the `Backend` interface alone, with the engine's real executor and
 * run events on a real bus, and a real store directory: what a second backend must also do.
 */

const T0 = Date.UTC(2026, 0, 5, 12, 0, 0);
const ALLOW: AdmissionRules = { enabled: true, configEnabled: true, once: false, cooldownMs: 0, overlap: 'allow' };

let seq = 0;
function runOf(job: string, extra: Partial<Run> = {}): Run {
  const at = isoTime(T0);
  return {
    id: `0000run${String(++seq).padStart(5, '0')}`,
    job,
    status: 'queued',
    source: 'api',
    params: {},
    priority: 0,
    key: null,
    queue: 'default',
    createdAt: at,
    runAt: at,
    startedAt: null,
    endedAt: null,
    durationMs: null,
    progress: { fraction: 0, text: null },
    attempts: [],
    maxAttempts: 1,
    result: null,
    error: null,
    retryOf: null,
    event: null,
    ...extra,
  };
}

interface Harness {
  backend: Backend;
  events: AnyHostEvent[];
  types(runId: string): string[];
}

/** A backend on `dir`, opened with the engine's real executor and observer; closed at teardown. */
async function open(
  t: Tap,
  dir: string,
  jobs: Record<string, Partial<ExecutableJob> & { handler: ExecutableJob['handler'] }>,
  before?: (b: Backend) => void,
): Promise<Harness> {
  const clock = createManualClock(T0);
  const logger = silentLogger();
  const bus = new Bus({ clock, logger });
  const events: AnyHostEvent[] = [];
  bus.on('*', (e) => events.push(e));
  const backend = createLocalBackend({
    dir,
    fsync: true,
    keepRuns: 1000,
    keepDays: 30,
    concurrency: 8,
    queues: { default: 1 },
    clock,
    random: () => 0.5,
    logger,
    hostId: 'test-host',
  });
  const executor = new InlineExecutor({
    logger,
    reader: { runs: (q) => backend.listRuns(q ?? {}), run: (id) => backend.getRun(id), stats: () => ({}) as never },
    publish: () => undefined,
  });
  const observer = new RunEvents({ bus });
  const job = (name: string): ExecutableJob | undefined => {
    const j = jobs[name];
    return j && { name, concurrency: 1, queue: 'default', timeoutMs: 0, retry: DEFAULT_RETRY, once: false, cooldownMs: 0, ...j };
  };
  before?.(backend);
  await backend.open({
    job,
    executor,
    observer,
    flagsChanged: () => undefined,
    relay: () => undefined,
    describe: () => ({ url: null, startedAt: '', jobs: [] }),
    deliver: () => Promise.resolve({ status: 'delivered' }),
    deliveryChanged: () => undefined,
  });
  backend.start();
  t.teardown(async () => {
    await backend.drain(0);
    await backend.close();
  });
  const types = (runId: string): string[] => events.filter((e) => 'runId' in e.data && e.data.runId === runId).map((e) => e.type);
  return { backend, events, types };
}

async function finished(h: Harness, runId: string): Promise<Run> {
  for (let i = 0; i < 100; i++) {
    const run = await h.backend.getRun(runId);
    if (run && (run.status === 'succeeded' || run.status === 'failed' || run.status === 'canceled')) return run;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`run ${runId} did not finish`);
}

t.test('an acknowledged add is on disk: a backend opened afresh on the directory has the run', async (t) => {
  const dir = tempDir(t);
  const first = await open(t, dir, {});
  const run = runOf('not-loaded-here');
  t.equal(await first.backend.add(run, ALLOW), undefined, 'admitted, and durable');
  t.same(first.types(run.id), ['run.queued']);
  await first.backend.drain(0);
  await first.backend.close();
  const second = await open(t, dir, {});
  t.match(await second.backend.getRun(run.id), { id: run.id, status: 'queued', job: 'not-loaded-here' });
  t.equal(second.backend.activeRuns('not-loaded-here').active, 1, 'it waits for a plugin that provides its job');
});

t.test('admission is checked with the add: a second add in the same tick sees the first', async (t) => {
  const h = await open(t, tempDir(t), {});
  const skip: AdmissionRules = { ...ALLOW, overlap: 'skip' };
  const a = runOf('solo');
  const b = runOf('solo');
  const [ra, rb] = await Promise.all([h.backend.add(a, skip), h.backend.add(b, skip)]);
  t.equal(ra, undefined);
  t.same(rb, { reason: 'overlap', detail: `run ${a.id} is already queued or running`, runId: a.id });
  t.equal(await h.backend.getRun(b.id), undefined, 'a refused run is not recorded');
  const keyed = [runOf('keyed', { key: 'k' }), runOf('keyed', { key: 'k' })];
  const refusals = await Promise.all(keyed.map((r) => h.backend.add(r, ALLOW)));
  t.same(
    refusals.map((r) => r?.reason),
    [undefined, 'duplicate'],
  );
  t.same(await h.backend.add(runOf('off'), { ...ALLOW, enabled: false }), { reason: 'disabled', detail: 'the job is disabled' });
});

t.test('the backend starts runs and reports every change in order; retries follow the policy', async (t) => {
  let calls = 0;
  const h = await open(t, tempDir(t), {
    flaky: {
      handler: () => {
        if (++calls === 1) throw new Error('first try fails');
        return { ok: true };
      },
      retry: { ...DEFAULT_RETRY, attempts: 2, delayMs: 0, jitter: 0 },
    },
  });
  const run = runOf('flaky', { maxAttempts: 2 });
  await h.backend.add(run, ALLOW);
  const done = await finished(h, run.id);
  t.equal(done.status, 'succeeded');
  t.same(done.result, { ok: true });
  t.same(
    done.attempts.map((a) => a.error?.code ?? null),
    ['HANDLER_ERROR', null],
  );
  t.same(h.types(run.id), ['run.queued', 'run.started', 'run.retrying', 'run.started', 'run.succeeded']);
  t.same(h.backend.jobState('flaky').counts, { succeeded: 1 }, 'the outcome is folded into the job state');
});

t.test('cancel of a running run aborts its attempt and ends it at once; a finished or unknown run is not canceled', async (t) => {
  const started = gate<AbortSignal>();
  const release = gate();
  const h = await open(t, tempDir(t), {
    slow: {
      handler: async (ctx: JobContext<never>) => {
        started.open(ctx.signal);
        await release.promise;
        return 'late';
      },
    },
  });
  const run = runOf('slow');
  await h.backend.add(run, ALLOW);
  const signal = await started.promise;
  const canceled = await h.backend.cancel(run.id, 'stop it');
  t.equal(canceled?.canceled, true);
  t.match(canceled?.run, { status: 'canceled', error: { code: 'CANCELED', message: 'stop it' } });
  t.equal(signal.aborted, true, "the handler's signal is aborted");
  release.open();
  await new Promise((r) => setImmediate(r));
  t.equal((await h.backend.getRun(run.id))?.status, 'canceled', 'the late result is ignored');
  t.same(h.types(run.id), ['run.queued', 'run.started', 'run.canceled']);
  t.equal((await h.backend.cancel(run.id, 'again'))?.canceled, false, 'already finished');
  t.equal(await h.backend.cancel('no-such-run', 'x'), undefined);
});

t.test('job flags: set before open they win over what is loaded; set after open they survive a restart', async (t) => {
  const dir = tempDir(t);
  const first = await open(t, dir, {});
  await first.backend.setJobFlags('a', { enabled: false, lastFireAt: 123 });
  await first.backend.drain(0);
  await first.backend.close();
  const second = await open(t, dir, {}, (b) => void b.setJobFlags('a', { enabled: true }));
  t.same(second.backend.jobState('a'), { enabled: true, lastFireAt: 123 });
  await second.backend.setJobFlags('a', { enabled: null });
  t.same(second.backend.jobState('a'), { lastFireAt: 123 }, 'null clears a flag');
});

t.test("the missed rule's watches: kept past a reopen, the newest MISSED_WATCHES_MAX, dropped as their runs start, pruned once due", async (t) => {
  const dir = tempDir(t);
  const watch = (i: number, runId: string | null = `run-${i}`) => ({
    fireAt: T0 + i * 1000,
    deadline: T0 + i * 1000 + 3_600_000,
    runId,
    reason: runId ? '' : 'refused',
  });
  const a = await open(t, dir, {});
  for (let i = 0; i < MISSED_WATCHES_MAX + 5; i++) await a.backend.keepMissedWatch('tick', watch(i), T0 + i * 1000);
  await a.backend.dropMissedWatch('tick', watch(MISSED_WATCHES_MAX + 4));
  const kept = await a.backend.missedWatches('tick');
  t.equal(kept.length, MISSED_WATCHES_MAX - 1, 'the newest, less the one whose run started');
  t.same(kept[0], watch(5));
  await a.backend.drain(0);
  await a.backend.close();
  const b = await open(t, dir, {});
  t.same(await b.backend.missedWatches('tick'), kept, 'as kept, after a reopen');
  // A keep past every deadline prunes the ones due: the host that kept them was up to see them.
  await b.backend.keepMissedWatch('tick', watch(9999, null), T0 + 9999 * 1000);
  t.same(await b.backend.missedWatches('tick'), [watch(9999, null)]);
});

t.test("the slow rule's mark: once per run, past a reopen that queues the run again; the marks of ended runs go", async (t) => {
  const dir = tempDir(t);
  const hold = gate();
  const job = { handler: () => hold.promise };
  const run = runOf('long', { maxAttempts: 3 });
  const a = await open(t, dir, { long: job });
  await a.backend.add(run, ALLOW);
  await until(async () => (await a.backend.getRun(run.id))?.status === 'running', 5000, 'the run started');
  t.equal(await a.backend.claimSlow('long', run.id), true, 'the first claim tells it');
  t.equal(await a.backend.claimSlow('long', run.id), false, 'not twice');
  // A stop whose grace cuts the attempt short: the run waits, queued, for the next start.
  await a.backend.drain(0);
  await a.backend.close();

  const b = await open(t, dir, { long: job });
  await until(async () => (await b.backend.getRun(run.id))?.status === 'running', 5000, 'the run started again');
  t.equal(await b.backend.claimSlow('long', run.id), false, 'told before the restart: not again');
  // Marks of runs that are not live (ended, or never here) go as the next run is marked.
  t.equal(await b.backend.claimSlow('long', 'ended-run-1'), true);
  t.equal(await b.backend.claimSlow('long', 'ended-run-2'), true);
  t.same(b.backend.jobState('long').slowTold, [run.id, 'ended-run-2'], 'the live run keeps its mark; the ended one went');
  hold.open();
  await finished(b, run.id);
  t.same(b.backend.jobState('long').slowTold, ['ended-run-2'], "a run's end drops its own mark");
  t.equal(await b.backend.claimSlow('long', 'ended-run-3'), true);
  t.same(b.backend.jobState('long').slowTold, ['ended-run-3'], 'bounded by the runs still live');
  // Read back from the journal: the dropped marks stay dropped.
  await b.backend.drain(0);
  await b.backend.close();
  const c = await open(t, dir, { long: job });
  t.same(c.backend.jobState('long').slowTold, ['ended-run-3']);
});

t.test("a run that turned slow takes its mark with it when it ends: the job's flags carry none after", async (t) => {
  const dir = tempDir(t);
  const hold = gate();
  const run = runOf('long', { maxAttempts: 1 });
  const a = await open(t, dir, { long: { handler: () => hold.promise } });
  await a.backend.add(run, ALLOW);
  await until(async () => (await a.backend.getRun(run.id))?.status === 'running', 5000, 'the run started');
  t.equal(await a.backend.claimSlow('long', run.id), true);
  hold.open();
  await finished(a, run.id);
  t.same(a.backend.jobState('long').slowTold, [], 'no mark left');
  await a.backend.drain(0);
  await a.backend.close();
  const b = await open(t, dir, { long: { handler: () => undefined } });
  t.same(b.backend.jobState('long').slowTold ?? [], [], 'nor after a reopen (the journal read back)');
});
