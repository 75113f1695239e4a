/**
 * Delivered notifications: what a webhook destination costs the engine, a receiver that is down
 * with 100,000 deliveries pending, and how soon a delivery reaches its receiver.
 * - failing runs/s (disk store, 1,024 triggers in flight, the handler inline, as the engine bench)
 *   with every run notifying a webhook (a `node:http` receiver in a child process answering 200),
 *   against the same runs of a job without `notify` on the same config; deliveries/s and whether
 *   all of them arrived (waited for, bounded); rounds interleaved, medians reported;
 * - the receiver down (a closed port), `notifications.retry` of an hour: RSS growth from before a
 *   burst of 100,000 failing runs to after all their deliveries are recorded and attempted once,
 *   and `GET /health` p99 (a real server on port 0, one request at a time) with them pending,
 *   against the same with nothing pending; each in a child process of its own, beside the same
 *   burst without notifications (what the runs alone cost);
 * - `notification` event (and the run's end) → the request at a local receiver, p50 / p99, a few
 *   thousand deliveries at a modest pace.
 * Goals: notify / none ≥ 0.9; RSS growth ≤ 50 MB with 100,000 pending; /health p99 unchanged.
 * Run: `npm run bench -- notify` (or `npx tsx bench/notify.ts [runs] [pending]`).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { createHost, createServer, type Host, silentLogger } from '../core/index.js';
import { WINDOW } from './runs.js';
import { benchDir, fmt, header, percentile, row } from './util.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * A host (store on disk, history kept) with `fail`, a job whose every run throws, notifying
 * destination `hook` when `notify`; `warm`, the same without notifications, warms the JIT.
 */
function failHost(dir: string, hookUrl: string, notify: boolean, notifications: Record<string, unknown> = {}): Host {
  const make = (extra: Record<string, unknown>): Host =>
    createHost({
      store: 'disk',
      config: {
        store: { dir, keepRuns: 1_000_000 },
        concurrency: 10_000,
        notifications: { destinations: { hook: { kind: 'webhook', url: hookUrl } }, ...extra, ...notifications },
      },
      logger: silentLogger(),
    });
  let host: Host;
  try {
    // Storm control (`notifications.throttle`, where the host has it) would fold a burst of one
    // job's failures into one message a window: off, so that every run's notification is sent.
    host = make({ throttle: 0 });
  } catch {
    host = make({});
  }
  const fail = (): never => {
    throw new Error('disk on fire');
  };
  host.register({ name: 'fail', concurrency: 10_000, ...(notify && { notify: { on: ['failed'], to: ['hook'] } }), handler: fail });
  host.register({ name: 'warm', concurrency: 10_000, handler: fail });
  return host;
}

/** `runs` runs of `job` through trigger() → run.failed, WINDOW triggers in flight: runs/s. */
async function pumpFailed(host: Host, job: string, runs: number): Promise<number> {
  let done = 0;
  let allDone!: () => void;
  const finished = new Promise<void>((resolve) => (allDone = resolve));
  const off = host.on('run.failed', (e) => {
    if (e.data.job === job && ++done === runs) allDone();
  });
  const t0 = performance.now();
  let sent = 0;
  const producer = async (): Promise<void> => {
    while (sent < runs) {
      sent++;
      await host.trigger(job);
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, producer));
  await finished;
  off();
  await host.flush();
  return (runs / (performance.now() - t0)) * 1000;
}

/** Waits (polling, at most `ms`) until `done()`; false when it timed out. */
async function until(done: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!done()) {
    if (performance.now() > end) return false;
    await sleep(20);
  }
  return true;
}

const outcomes = (host: Host, status: 'delivered' | 'retrying' | 'dead'): number => host.deliveries.counts()['hook']?.[status] ?? 0;

// ---------------------------------------------------------------------------------------------
// 1. Throughput with every run notifying a webhook, against no notifications.

interface Receiver {
  url: string;
  count(): Promise<number>;
  stop(): Promise<void>;
}

/** This file as a child process in `mode` (same tsx loader); resolves with its first message. */
function child<T>(args: string[]): { proc: ChildProcess; first: Promise<T> } {
  const proc = fork(fileURLToPath(import.meta.url), args, { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const first = new Promise<T>((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`bench child ${args.join(' ')} exited with ${code}`));
    proc.once('exit', onExit);
    proc.once('message', (m) => {
      proc.off('exit', onExit);
      resolve(m as T);
    });
  });
  return { proc, first };
}

/** A webhook receiver in a child process (so its work is not on the host's event loop): answers 200 "ok". */
async function spawnReceiver(): Promise<Receiver> {
  const { proc, first } = child<{ url: string }>(['receiver']);
  const { url } = await first;
  return {
    url,
    count: () =>
      new Promise<number>((resolve) => {
        proc.once('message', (m) => resolve((m as { count: number }).count));
        proc.send({ cmd: 'count' });
      }),
    stop: () =>
      new Promise<void>((resolve) => {
        proc.once('exit', () => resolve());
        proc.send({ cmd: 'stop' });
      }),
  };
}

async function receiverChild(): Promise<void> {
  let count = 0;
  const server = createHttpServer((req, res) => {
    req.resume();
    req.on('end', () => {
      count++;
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  const port = await listen(server);
  process.send!({ url: `http://127.0.0.1:${port}/hook` });
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'count') process.send!({ count });
    else {
      server.closeAllConnections();
      server.close(() => process.exit(0));
    }
  });
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

interface Round {
  runsPerSec: number;
  /** Notify rounds: deliveries recorded as delivered, requests the receiver saw, deliveries/s (from the first trigger to the last delivered). */
  delivered?: number;
  received?: number;
  deliveriesPerSec?: number;
  /** Time after the last run failed until every delivery was recorded (ms). */
  drainMs?: number;
}

/** A fresh host, `runs` failing runs; with `waitMs`, waits (bounded) for every delivery before it stops. */
async function throughputRound(receiver: Receiver, notify: boolean, runs: number, waitMs = 0): Promise<Round> {
  const { dir, remove } = benchDir();
  const host = failHost(dir, receiver.url, notify);
  await host.start();
  const before = await receiver.count();
  const t0 = performance.now();
  const runsPerSec = await pumpFailed(host, 'fail', runs);
  if (!notify || waitMs === 0) {
    // Deliveries still open are cut short by the stop.
    await host.stop();
    remove();
    return { runsPerSec };
  }
  const t1 = performance.now();
  await until(() => outcomes(host, 'delivered') + outcomes(host, 'dead') >= runs, waitMs);
  const t2 = performance.now();
  const delivered = outcomes(host, 'delivered');
  const received = (await receiver.count()) - before;
  await host.stop();
  remove();
  return { runsPerSec, delivered, received, deliveriesPerSec: (delivered / (t2 - t0)) * 1000, drainMs: t2 - t1 };
}

async function throughputPart(runs: number, rounds: number): Promise<void> {
  const receiver = await spawnReceiver();
  try {
    // Warm-up of both paths (and the receiver's connections), so neither figure pays for the JIT.
    await throughputRound(receiver, false, 20_000);
    await throughputRound(receiver, true, 10_000);
    const none: Round[] = [];
    const notify: Round[] = [];
    // Interleaved, so drift in the machine's load touches both alike. Deliveries are slower than
    // runs: only the last round waits for all of them (bounded), to keep the benchmark short.
    for (let r = 0; r < rounds; r++) {
      none.push(await throughputRound(receiver, false, runs));
      notify.push(await throughputRound(receiver, true, runs, r === rounds - 1 ? 60_000 : 0));
    }
    const last = notify.at(-1)!;
    const rates = (rs: Round[]): string => rs.map((x) => fmt(x.runsPerSec / 1000, 1)).join('/');
    const none50 = median(none.map((r) => r.runsPerSec));
    const notify50 = median(notify.map((r) => r.runsPerSec));
    row('failing runs/s, no notifications (median)', `${fmt(none50)} runs/s   (rounds: ${rates(none)}k)`);
    row('failing runs/s, each notifying a webhook (median)', `${fmt(notify50)} runs/s   (rounds: ${rates(notify)}k)`);
    row('notify / none', `${fmt(notify50 / none50, 2)}   (goal ≥ 0.9)`);
    row('deliveries/s, first trigger → last delivered', `${fmt(last.deliveriesPerSec!)} /s   (last round; notifications.concurrency 16)`);
    row('deliveries still arriving after the last run failed', `${fmt(last.drainMs! / 1000, 1)} s`);
    const all = last.delivered === runs && last.received === runs;
    row(
      'all delivered by the end (waited ≤ 60 s)',
      `${all ? 'yes' : 'NO'}   (${fmt(last.delivered!)} recorded delivered, ${fmt(last.received!)} received, of ${fmt(runs)})`,
    );
  } finally {
    await receiver.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// 2. The receiver down, 100,000 deliveries pending: RSS and /health, each variant in a process of its own.

interface PendingResult {
  idle: { p50: number; p99: number; n: number };
  burst: { p50: number; p99: number; n: number };
  pending: { p50: number; p99: number; n: number };
  rssBefore: number;
  rssAfter: number;
  heapBefore: number;
  heapAfter: number;
  /** Heap reserved (used or not) and memory outside the JS heap (buffers), before → after. */
  heapTotal: [number, number];
  external: [number, number];
  burstMs: number;
  attemptedMs: number;
  attempted: number;
  open: number;
}

/** GET /health one request at a time (`gapMs` apart) until `stop()` says so: latencies in ms, sorted. */
async function healthLoop(url: string, stop: () => boolean, gapMs = 0): Promise<number[]> {
  const out: number[] = [];
  while (!stop()) {
    const t0 = performance.now();
    const res = await fetch(`${url}/health`);
    await res.arrayBuffer();
    out.push(performance.now() - t0);
    if (gapMs > 0) await sleep(gapMs);
  }
  return out.sort((a, b) => a - b);
}

const stats = (ms: number[]): { p50: number; p99: number; n: number } => ({ p50: percentile(ms, 50), p99: percentile(ms, 99), n: ms.length });

async function pendingChild(notify: boolean, runs: number, seconds: number): Promise<void> {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const memory = (): { rss: number; heap: number; heapTotal: number; external: number } => {
    for (let i = 0; i < 3; i++) gc();
    const m = process.memoryUsage();
    return { rss: m.rss / 1e6, heap: m.heapUsed / 1e6, heapTotal: m.heapTotal / 1e6, external: m.external / 1e6 };
  };
  // A closed port: every attempt is refused at once.
  const probe = createHttpServer();
  const port = await listen(probe);
  await new Promise((r) => probe.close(r));

  const { dir, remove } = benchDir();
  // 64 attempts in flight, not the default 16: with the receiver down a slot is held by the
  // outcome's durable save more than by the attempt, and 100,000 attempts at 16 take minutes here.
  const host = failHost(dir, `http://127.0.0.1:${port}/hook`, notify, { retry: { delay: '1h', jitter: 0 }, concurrency: 64 });
  await host.start();
  const server = createServer(host, { host: '127.0.0.1', port: 0 });
  const { url } = await server.listen();
  await pumpFailed(host, 'warm', 20_000);
  await sleep(1000);
  const forSeconds = (s: number): (() => boolean) => {
    const end = performance.now() + s * 1000;
    return () => performance.now() > end;
  };
  // /health warmed up first (its JIT), so the idle figure is not its first requests'.
  await healthLoop(url, forSeconds(2));
  const idle = await healthLoop(url, forSeconds(seconds));

  const before = memory();
  const t0 = performance.now();
  let attempted = false;
  // Paced (a monitor's probe), so that it does not take the CPU the burst needs.
  const burstHealth = healthLoop(url, () => attempted, 10);
  await pumpFailed(host, 'fail', runs);
  const burstMs = performance.now() - t0;
  if (notify) await until(() => outcomes(host, 'retrying') + outcomes(host, 'dead') >= runs, 120_000);
  attempted = true;
  const attemptedMs = performance.now() - t0;
  const burst = await burstHealth;
  await host.flush();
  const after = memory();
  const pending = await healthLoop(url, forSeconds(seconds));
  const result: PendingResult = {
    idle: stats(idle),
    burst: stats(burst),
    pending: stats(pending),
    rssBefore: before.rss,
    rssAfter: after.rss,
    heapBefore: before.heap,
    heapAfter: after.heap,
    heapTotal: [before.heapTotal, after.heapTotal],
    external: [before.external, after.external],
    burstMs,
    attemptedMs,
    attempted: outcomes(host, 'retrying') + outcomes(host, 'dead'),
    open: host.deliveries.open(),
  };
  await server.close();
  await host.stop();
  remove();
  // Run by hand (`npx tsx bench/notify.ts pending notify 100000 3`, e.g. with --cpu-prof), it prints its figures.
  if (process.send) process.send(result, () => process.exit(0));
  else console.log(JSON.stringify(result, null, 1));
}

async function pendingPart(runs: number, seconds: number): Promise<void> {
  const run = async (notify: boolean): Promise<PendingResult> =>
    child<PendingResult>(['pending', notify ? 'notify' : 'none', String(runs), String(seconds)]).first;
  const none = await run(false);
  const down = await run(true);
  const ms = (s: { p50: number; p99: number; n: number }): string => `p50 ${fmt(s.p50, 2)} ms   p99 ${fmt(s.p99, 2)} ms   (${fmt(s.n)} requests)`;
  row(`${fmt(runs)} failing runs, no notifications: burst`, `${fmt(none.burstMs)} ms`);
  row(`  RSS / heap growth (after GC)`, `${fmt(none.rssAfter - none.rssBefore, 1)} / ${fmt(none.heapAfter - none.heapBefore, 1)} MB`);
  row(`${fmt(runs)} failing runs notifying a closed port: burst`, `${fmt(down.burstMs)} ms`);
  row(
    '  every delivery recorded and attempted once',
    `${fmt(down.attemptedMs)} ms   (${fmt(down.attempted)} attempted; ${fmt(down.open)} open afterwards, next attempt in 1 h)`,
  );
  row('  RSS / heap growth (after GC)', `${fmt(down.rssAfter - down.rssBefore, 1)} / ${fmt(down.heapAfter - down.heapBefore, 1)} MB`);
  const grew = (x: [number, number]): string => fmt(x[1] - x[0], 1);
  row(
    '  heap reserved / external (buffers) growth',
    `${grew(down.heapTotal)} / ${grew(down.external)} MB   (without notifications: ${grew(none.heapTotal)} / ${grew(none.external)})`,
  );
  row(
    'rss growth, 100k pending (MB)',
    `${fmt(down.rssAfter - down.rssBefore, 1)}   (goal ≤ 50; the same runs without notifications: ${fmt(none.rssAfter - none.rssBefore, 1)})`,
  );
  row('GET /health, nothing pending', ms(down.idle));
  row(`GET /health, ${fmt(down.open)} deliveries pending`, ms(down.pending));
  row('health p99 pending / idle', `${fmt(down.pending.p99 / down.idle.p99, 2)}   (goal ≈ 1; p50 ${fmt(down.pending.p50 / down.idle.p50, 2)})`);
  row('  nothing pending, after the same burst without notifications', ms(none.pending));
  row('GET /health while the burst is recorded and attempted', ms(down.burst));
  row('  the same burst without notifications', ms(none.burst));
}

// ---------------------------------------------------------------------------------------------
// 3. Notification → request at the receiver.

async function latencyPart(samples: number, gapMs: number): Promise<void> {
  const arrived = new Map<string, number>();
  const startedAt = new Map<string, number>();
  const server = createHttpServer((req, res) => {
    const t = performance.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const { runId } = JSON.parse(Buffer.concat(chunks).toString()) as { runId: string };
      arrived.set(runId, t);
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  const port = await listen(server);
  const { dir, remove } = benchDir();
  const host = failHost(dir, `http://127.0.0.1:${port}/hook`, true);
  await host.start();
  const notified = new Map<string, number>();
  const failed = new Map<string, number>();
  const offN = host.on('notification', (e) => notified.set(e.data.runId, performance.now()));
  const offF = host.on('run.failed', (e) => failed.set(e.data.runId, performance.now()));
  const warm = 200;
  const t0 = performance.now();
  const acks: Promise<unknown>[] = [];
  for (let i = 0; i < samples + warm; i++) {
    acks.push(host.trigger('fail').then(({ runId }) => startedAt.set(runId, i)));
    await sleep(gapMs);
  }
  await Promise.all(acks);
  const pace = ((samples + warm) / (performance.now() - t0)) * 1000;
  await until(() => arrived.size >= samples + warm, 30_000);
  offN();
  offF();
  const fromN: number[] = [];
  const fromF: number[] = [];
  for (const [runId, i] of startedAt) {
    const t = arrived.get(runId);
    if (i < warm || t === undefined) continue;
    fromN.push(t - notified.get(runId)!);
    fromF.push(t - failed.get(runId)!);
  }
  fromN.sort((a, b) => a - b);
  fromF.sort((a, b) => a - b);
  row('pace', `${fmt(pace)} failing runs/s, ${fmt(samples)} measured (after ${warm} to warm up), ${fmt(fromN.length)} arrived`);
  row(
    'notification event → request at the receiver',
    `p50 ${fmt(percentile(fromN, 50), 2)} ms   p99 ${fmt(percentile(fromN, 99), 2)} ms   max ${fmt(fromN.at(-1) ?? 0, 1)} ms`,
  );
  row('run.failed → request at the receiver', `p50 ${fmt(percentile(fromF, 50), 2)} ms   p99 ${fmt(percentile(fromF, 99), 2)} ms`);
  await host.stop();
  remove();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
}

// ---------------------------------------------------------------------------------------------
// 4. Storm control: a burst of failing runs with the default 1-minute throttle.

/** One host per variant, `runs` failing runs; the storm variant notifies with `notifications.throttle` 1m (the default). */
async function stormPart(runs: number): Promise<void> {
  const receiver = await spawnReceiver();
  const gc = (globalThis as { gc?: () => void }).gc;
  const rss = (): number => {
    gc?.();
    return process.memoryUsage().rss / 1e6;
  };
  try {
    const round = async (notify: boolean): Promise<{ runsPerSec: number; rssGrowth: number; received: number }> => {
      const { dir, remove } = benchDir();
      const host = failHost(dir, receiver.url, notify, { throttle: 60_000 });
      await host.start();
      const before = await receiver.count();
      const rss0 = rss();
      const runsPerSec = await pumpFailed(host, 'fail', runs);
      // The window's one message is on its way; give it a moment to land (bounded).
      if (notify) await until(() => outcomes(host, 'delivered') >= 1, 5_000);
      const rssGrowth = rss() - rss0;
      const received = (await receiver.count()) - before;
      await host.stop();
      remove();
      return { runsPerSec, rssGrowth, received };
    };
    await round(false);
    await round(true);
    const none = await round(false);
    const storm = await round(true);
    row(`${fmt(runs)} failing runs/s, no notifications`, `${fmt(none.runsPerSec)} runs/s   (RSS ${fmt(none.rssGrowth, 1)} MB)`);
    row(`${fmt(runs)} failing runs/s, each notifying, throttle 1m`, `${fmt(storm.runsPerSec)} runs/s   (RSS ${fmt(storm.rssGrowth, 1)} MB)`);
    row('storm: notify / none', `${fmt(storm.runsPerSec / none.runsPerSec, 2)}   (goal ≥ 0.9)`);
    row('storm: messages sent during the burst', `${fmt(storm.received)}   (the rest counted into the window's digest)`);
    row('storm: rss growth (MB)', `${fmt(storm.rssGrowth, 1)}   (without notifications: ${fmt(none.rssGrowth, 1)})`);
  } finally {
    await receiver.stop();
  }
}

export async function notifyBench(runs = 20_000, pending = 100_000): Promise<void> {
  header(`notify: ${fmt(runs)} failing runs each notifying a webhook, ${WINDOW} in flight, disk store, inline`);
  await throughputPart(runs, 3);
  header(`notify: receiver down (a closed port), ${fmt(pending)} deliveries pending (retry in 1 h, 64 in flight)`);
  await pendingPart(pending, 3);
  header('notify: notification → request at a local receiver');
  await latencyPart(2000, 2);
  header(`notify: storm control, ${fmt(pending)} failing runs, throttle 1m`);
  await stormPart(pending);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [mode, a, b, c] = process.argv.slice(2);
  if (mode === 'receiver') await receiverChild();
  else if (mode === 'pending') await pendingChild(a === 'notify', Number(b), Number(c));
  else if (mode === 'storm') await stormPart(Number(a ?? 100_000));
  else await notifyBench(Number(mode ?? 20_000), Number(a ?? 100_000));
}
