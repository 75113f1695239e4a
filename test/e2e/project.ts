import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type Tap, tempDir, until } from '../helpers.js';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const BIN = path.join(ROOT, 'core/bin.mjs');

/**
 * A fresh project in a temp dir, laid out like a clone: core/ and node_modules/ linked from this
 * checkout, the example plugins copied, and a config file of the test's own.
 */
export function makeProject(t: Tap, config: object, options: { examples?: boolean } = {}): string {
  return createProject(tempDir(t, 'jobhost-e2e-'), config, options);
}

/** The same, in a directory the caller owns (benchmarks). */
export function createProject(dir: string, config: object, options: { examples?: boolean } = {}): string {
  symlinkSync(path.join(ROOT, 'core'), path.join(dir, 'core'));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }');
  mkdirSync(path.join(dir, 'config'));
  writeFileSync(path.join(dir, 'config/jobhost.json'), JSON.stringify(config, null, 2));
  if (options.examples !== false) cpSync(path.join(ROOT, 'plugins'), path.join(dir, 'plugins'), { recursive: true });
  else mkdirSync(path.join(dir, 'plugins'));
  return dir;
}

export interface LogLine {
  level: number;
  msg: string;
  event?: string;
  [key: string]: unknown;
}

/** A running `jobhost start` child, with its JSON log lines parsed as they come. */
export interface Running {
  child: ChildProcess;
  lines: LogLine[];
  stderr: () => string;
  /** Waits (bounded) for a log line matching, counting from `from` (default: the start). */
  waitFor(match: (l: LogLine) => boolean, what: string, options?: { from?: number; ms?: number }): Promise<LogLine>;
  exited: Promise<number | null>;
  /** When a line came in (Date.now() as its chunk was read, not when a wait found it). */
  arrivedAt(line: LogLine): number;
}

/**
 * The environment for a child jobhost. tap instruments children too, but the child runs under
 * tsx, whose transpiled code maps every line as covered: its coverage would inflate the suite's
 * figures, so it is switched off for children; and tap's process-info hook (in NODE_OPTIONS), the
 * test process's, is left out: a child would load it at every start (~0.15 s of CPU) to record
 * nothing.
 */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0', LOG_LEVEL: 'debug' };
  // What the machine's environment (or an app run in this process: it sets JOBHOST_URL) would
  // change in every child: a child gets only the settings its test gives it.
  for (const name of Object.keys(env)) if (name.startsWith('JOBHOST_') || name.startsWith('OTEL_')) delete env[name];
  const options = env['NODE_OPTIONS']?.replace(/"?--import=\S*@tapjs\/processinfo\S*?"?(?=\s|$)/g, '').trim();
  if (options) env['NODE_OPTIONS'] = options;
  else delete env['NODE_OPTIONS'];
  return { ...env, ...extra };
}

/** A child still running when the test ends is killed, and waited for, so no test leaves one behind. */
export function killAtTeardown(t: Tap, child: ChildProcess, exited: Promise<unknown>): void {
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
}

export function runCli(t: Tap, cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): Running {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  const arrived = new WeakMap<LogLine, number>();
  let buffer = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line) as LogLine;
      } catch {
        parsed = { level: 0, msg: line };
      }
      arrived.set(parsed, Date.now());
      lines.push(parsed);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  killAtTeardown(t, child, exited);
  return {
    child,
    lines,
    stderr: () => err,
    exited,
    arrivedAt: (line) => arrived.get(line) ?? Number.NaN,
    async waitFor(match, what, options = {}) {
      let found: LogLine | undefined;
      await until(
        () => {
          found = lines.slice(options.from ?? 0).find(match);
          if (!found && child.exitCode !== null) throw new Error(`process exited (${child.exitCode}) before ${what}: ${err}`);
          return found !== undefined;
        },
        options.ms ?? 30_000,
        what,
      );
      return found!;
    },
  };
}
