/**
 * Before/after measurements of the engine and of HTTP triggers, for a change's cost: an older
 * commit is checked out (`git archive`) into a temp directory beside this tree, with this tree's
 * node_modules linked in, and rounds alternate between the two (A B A B ...), each in a fresh
 * process, so drift in the machine's load touches both alike. Each side runs its own tree's
 * bench/runs.ts (engine) or bench/serve.ts `jobhost-disk` (HTTP): what the commit had.
 *
 * `npx tsx bench/ab.ts <before> [after]` (or `BENCH_BEFORE=<ref> [BENCH_AFTER=<ref>] npm run
 * bench -- compare`): engine and HTTP throughput of `after` (default: this working tree) over
 * `before`, e.g. `npx tsx bench/ab.ts 6b0e00b^ 6b0e00b` for one commit's cost.
 */
import { execFileSync, fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import { fmt, header, mainThreadCpu, row, spawnServer } from './util.js';

/** This checkout's root. */
export const HERE = fileURLToPath(new URL('..', import.meta.url));

/** A commit's files in a temp directory (node_modules linked to this tree's), removed by `remove`. */
export function checkout(ref: string): { dir: string; commit: string; remove: () => void } {
  const commit = execFileSync('git', ['rev-parse', '--verify', `${ref}^{commit}`], { cwd: HERE, encoding: 'utf8' }).trim();
  const dir = mkdtempSync(path.join(os.tmpdir(), `jobhost-${commit.slice(0, 8)}-`));
  const tar = execFileSync('git', ['archive', '--format=tar', commit], { cwd: HERE, maxBuffer: 1 << 30 });
  mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['-x', '-C', dir], { input: tar });
  symlinkSync(path.join(HERE, 'node_modules'), path.join(dir, 'node_modules'));
  return { dir, commit, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** `git log --oneline -1` of a commit, for the report. */
export function describe(ref: string): string {
  return execFileSync('git', ['log', '--oneline', '-1', '--format=%h %s', ref], { cwd: HERE, encoding: 'utf8' }).trim().slice(0, 100);
}

export interface Round {
  /** runs/s (engine) or requests/s (HTTP). */
  rate: number;
  /** CPU per run or request, in µs: the whole process's (engine), the server's main thread's (HTTP). */
  cpuUs: number;
}

/** One engine round of `tree` in a fresh process (bench/engine-round.ts); `env` adds variables (OTEL_*). */
export function engineRound(tree: string, runs: number, warm: number, env: NodeJS.ProcessEnv = {}): Promise<Round> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(new URL('./engine-round.ts', import.meta.url)), [tree, String(runs), String(warm)], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let answer: Round | undefined;
    child.once('message', (m) => (answer = m as Round));
    child.once('exit', (code) => (answer ? resolve(answer) : reject(new Error(`engine round in ${tree} exited with ${code}`))));
  });
}

export interface HttpOptions {
  seconds: number;
  /** Node flags for the server process only (e.g. `--import bench/otel-preload.ts`). */
  execArgv?: string[];
  env?: NodeJS.ProcessEnv;
  headers?: Record<string, string>;
}

/**
 * One HTTP round: `tree`'s bench/serve.ts `jobhost-disk` in a child process, autocannon with 50
 * connections POSTing /jobs/noop/run (2 s of warm-up, then `seconds` measured).
 */
export async function httpRound(tree: string, options: HttpOptions): Promise<Round> {
  const server = await spawnServer('jobhost-disk', {
    script: path.join(tree, 'bench/serve.ts'),
    execArgv: options.execArgv ?? [],
    env: options.env ?? {},
  });
  const load = {
    url: `${server.url}/jobs/noop/run`,
    method: 'POST' as const,
    headers: { 'content-type': 'application/json', ...options.headers },
    body: JSON.stringify({ params: { source: 'bench' } }),
    connections: 50,
  };
  try {
    await autocannon({ ...load, duration: 2 });
    const cpu = mainThreadCpu(server.pid);
    const result = await autocannon({ ...load, duration: options.seconds });
    if (result.non2xx + result.errors > 0) console.error(`  (${tree}: ${result.non2xx} non-2xx, ${result.errors} errors)`);
    return { rate: result.requests.average, cpuUs: ((mainThreadCpu(server.pid) - cpu) * 1e6) / Math.max(1, result.requests.total) };
  } finally {
    await server.stop();
  }
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Rounds of several set-ups, interleaved: round r runs every set-up once, in order. */
export async function interleave<K extends string>(kinds: readonly K[], rounds: number, run: (kind: K) => Promise<Round>): Promise<Record<K, Round[]>> {
  const seen = Object.fromEntries(kinds.map((k) => [k, [] as Round[]])) as Record<K, Round[]>;
  for (let r = 0; r < rounds; r++) for (const kind of kinds) seen[kind].push(await run(kind));
  return seen;
}

/** The figures of one set-up's rounds: the median rate and CPU, and each round's rate. */
export function figures(rounds: readonly Round[], unit: string): string {
  const rates = rounds.map((r) => fmt(r.rate / 1000, 1)).join('/');
  return `${fmt(median(rounds.map((r) => r.rate)))} ${unit}   ${fmt(median(rounds.map((r) => r.cpuUs)), 1)} µs CPU each   (rounds: ${rates}k)`;
}

/**
 * Ratio lines of `after` over `before`: of median throughputs (the goal's figure), and of CPU
 * per run (before's / after's: steadier than throughput while other work shares the cores).
 */
export function ratios(label: string, after: readonly Round[], before: readonly Round[]): void {
  row(label, fmt(median(after.map((r) => r.rate)) / median(before.map((r) => r.rate)), 2));
  row(`${label}, by CPU per run`, fmt(median(before.map((r) => r.cpuUs)) / median(after.map((r) => r.cpuUs)), 2));
}

/** Engine and HTTP throughput of `afterRef` (default: this working tree) over `beforeRef`, ABAB. */
export async function compareBench(beforeRef: string, afterRef?: string, runs = 30_000, seconds = 5, rounds = 3): Promise<void> {
  const before = checkout(beforeRef);
  const after = afterRef ? checkout(afterRef) : { dir: HERE, commit: 'working tree', remove: () => undefined };
  header(`compare: ${afterRef ? describe(after.commit) : 'this working tree'} over ${describe(before.commit)}`);
  try {
    const trees = { before: before.dir, after: after.dir };
    const engine = await interleave(['before', 'after'] as const, rounds, (k) => engineRound(trees[k], runs, 10_000));
    row(`engine before (${fmt(runs)} runs, disk)`, figures(engine.before, 'runs/s'));
    row('engine after', figures(engine.after, 'runs/s'));
    ratios('engine: after / before', engine.after, engine.before);
    const http = await interleave(['before', 'after'] as const, rounds, (k) => httpRound(trees[k], { seconds }));
    row(`http before (${seconds} s, 50 connections)`, figures(http.before, 'req/s'));
    row('http after', figures(http.after, 'req/s'));
    ratios('http: after / before', http.after, http.before);
  } finally {
    before.remove();
    after.remove();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [beforeRef, afterRef] = process.argv.slice(2);
  if (!beforeRef) throw new Error('usage: npx tsx bench/ab.ts <before-ref> [after-ref]');
  await compareBench(beforeRef, afterRef);
}
