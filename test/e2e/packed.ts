import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './project.js';

/**
 * The checkout as a user gets it: `npm pack`ed, then installed from the tarball into a project
 * of its own, its dependencies from the npm registry. Shared by the packing test and the start-up
 * benchmark.
 */

/**
 * The environment of a user's shell: none of what `npm test` and tap put into ours. tap's
 * NODE_OPTIONS would load its TypeScript loader into every child (hiding a build that needs tsx),
 * and the `npm_config_local_prefix` of `npm test` would point `npm install` back at this checkout.
 * Other `npm_config_*` stay: a registry mirror or cache set for CI applies here too.
 */
export function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm_package_|npm_lifecycle_|npm_config_local_prefix$|npm_config_call$|NODE_OPTIONS$|NODE_V8_COVERAGE$|TAP|_TAPJS)/i.test(key)) continue;
    env[key] = value;
  }
  // A warm cache, as a user who has installed packages before has: npm takes the metadata it
  // holds instead of asking the registry again for every package (~13 s of each install here).
  // A package it has never seen is still fetched.
  return { npm_config_prefer_offline: 'true', ...env, NO_COLOR: '1', ...extra };
}

export interface Done {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end, or kills it after `timeoutMs` (a hang guard, not a measurement). */
export function run(cmd: string, args: string[], cwd: string, options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Done> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { cwd, env: options.env ?? userEnv(), timeout: options.timeoutMs ?? 120_000, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, stdout, stderr: error && code === null ? `${stderr}\n${error.message}` : stderr });
      },
    );
  });
}

/** Whether the registry answers `npm ping` (the one reason the packing test may skip). */
export async function registryReachable(cwd: string): Promise<{ ok: boolean; why: string }> {
  const ping = await run('npm', ['ping'], cwd, { timeoutMs: 30_000 });
  return { ok: ping.code === 0, why: (ping.stderr || ping.stdout).trim().split('\n').slice(-3).join(' ') };
}

export interface Packed {
  tarball: string;
  /** Paths inside the package, as `npm pack --json` lists them. */
  files: string[];
}

/** `npm pack` of this checkout into `dest` (its prepack step builds dist/ first). */
export async function packCheckout(dest: string): Promise<Packed> {
  const res = await run('npm', ['pack', '--json', '--pack-destination', dest], ROOT, { timeoutMs: 300_000 });
  if (res.code !== 0) throw new Error(`npm pack failed (${res.code}): ${res.stderr}`);
  const [info] = JSON.parse(res.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  return { tarball: path.join(dest, info!.filename), files: info!.files.map((f) => f.path) };
}

/** `npm init -y` in `dir`, then `npm install` of the tarball, as a user would. */
export async function installProject(dir: string, tarball: string): Promise<void> {
  const init = await run('npm', ['init', '-y'], dir, { timeoutMs: 60_000 });
  if (init.code !== 0) throw new Error(`npm init failed: ${init.stderr}`);
  const res = await run('npm', ['install', '--no-audit', '--no-fund', tarball], dir, { timeoutMs: 600_000 });
  if (res.code !== 0) throw new Error(`npm install of the tarball failed (${res.code}): ${res.stderr}`);
}

/** The project's `package.json`, parsed. */
export function readPackage(dir: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
}

export function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
}

/** A `jobhost start` (or any server) child in its own process group, its stdout collected. */
export interface Served {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves once every process of the group has let go of stdout (npx, its shell, node). */
  closed: Promise<void>;
  /** Signals the whole group, as a terminal's Ctrl-C does: npx does not pass SIGTERM on. */
  signal(sig: NodeJS.Signals): void;
}

export function serve(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Served {
  const child = spawn(cmd, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const closed = new Promise<void>((resolve) => child.stdout!.on('close', () => resolve()));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    closed,
    signal(sig) {
      try {
        process.kill(-child.pid!, sig);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
    },
  };
}

/** Polls `url` until it answers 200; resolves with the milliseconds that took, from `since`. */
export async function until200(url: string, since: number, timeoutMs: number, alive: () => boolean): Promise<number> {
  const deadline = since + timeoutMs;
  for (;;) {
    const ok = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return performance.now() - since;
    if (!alive()) throw new Error(`the process ended before ${url} answered 200`);
    if (performance.now() > deadline) throw new Error(`no 200 from ${url} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
