import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A temp directory for one benchmark, removed by the returned function. */
export function benchDir(prefix = 'jobhost-bench-'): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

export function header(title: string): void {
  console.log(`\n## ${title}`);
}

export function row(label: string, value: string): void {
  console.log(`  ${label.padEnd(48)} ${value}`);
}

export interface ChildServer {
  url: string;
  pid: number;
  /** Sends a command and resolves with the child's next reply. */
  ask<T>(message: unknown): Promise<T>;
  stop(): Promise<void>;
}

/**
 * Starts `bench/serve.ts <kind>` in a child process (same tsx loader) and waits for its URL.
 * `options`: another tree's serve.ts (bench/ab.ts), node flags and environment for this server.
 */
export async function spawnServer(kind: string, options: { script?: string; execArgv?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<ChildServer> {
  const { fork } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  // BENCH_SERVER_ARGS adds node flags to the server only, e.g. '--cpu-prof --cpu-prof-dir=/tmp/p'.
  const extra = process.env['BENCH_SERVER_ARGS']?.split(' ').filter(Boolean) ?? [];
  const child = fork(options.script ?? fileURLToPath(new URL('./serve.ts', import.meta.url)), [kind], {
    execArgv: [...process.execArgv, ...extra, ...(options.execArgv ?? [])],
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const next = <T>(): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`bench server ${kind} exited with ${code}`));
      child.once('exit', onExit);
      child.once('message', (m) => {
        child.off('exit', onExit);
        resolve(m as T);
      });
    });
  const { url } = await next<{ url: string }>();
  return {
    url,
    pid: child.pid!,
    ask: <T>(message: unknown) => {
      const reply = next<T>();
      child.send(message as object);
      return reply;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.send({ cmd: 'stop' });
      }),
  };
}

/** CPU seconds (user + system) the process's main thread has used so far (Linux /proc). */
export function mainThreadCpu(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}
