import type { Test } from 'tap';
import type { ConfigInput } from '../../core/contract/config.js';
import { isHostError } from '../../core/contract/errors.js';
import type { AnyHostEvent, EventType } from '../../core/contract/events.js';
import type { PluginDefinition } from '../../core/contract/plugin.js';
import type { Run } from '../../core/contract/run.js';
import type { Host } from '../../core/engine/host.js';

/** What the conformance suite (suite.ts) needs of a backend: hosts on it, and a crash. */

/** A started host on the backend under test. */
export interface Subject {
  readonly host: Host;
  /** The events this host emitted, of one type. */
  of<T extends EventType>(type: T): Array<Extract<AnyHostEvent, { type: T }>>;
  /** Lets time pass (the backend's clock) until `check` holds; fails after a bound. */
  until(check: () => boolean | Promise<boolean>, what: string): Promise<void>;
  /** Now on the clock the backend records run times by (ms). */
  now(): number;
}

export interface SubjectOptions {
  config?: ConfigInput;
}

/** How to start hosts on one backend. */
export interface BackendUnderTest {
  readonly name: 'local' | 'redis';
  /** A started host with `plugins` on a fresh store (a temp dir, a Redis prefix); stopped when `t` ends. */
  start(t: Test, plugins: PluginDefinition[], options?: SubjectOptions): Promise<Subject>;
  /**
   * A crash mid-run: a host with `plugins(true)` takes a run of each of `jobs` (triggered with no
   * params) and dies while they run (nothing written after their start; the local backend calls
   * the handlers, the redis one may not). Resolves with a host started afterwards with
   * `plugins(false)`, the one that finds the runs, and the runs' ids in the order of `jobs`.
   */
  crashed(t: Test, plugins: (dying: boolean) => PluginDefinition[], jobs: string[]): Promise<{ subject: Subject; runIds: string[] }>;
}

/** The run once it is final (waits on the host's events, letting the backend's time pass). */
export async function final(s: Subject, runId: string): Promise<Run> {
  let ended: Run | undefined;
  let failed: unknown;
  s.host.wait(runId).then(
    (run) => void (ended = run),
    (err: unknown) => void (failed = err ?? new Error('wait failed')),
  );
  await s.until(() => ended !== undefined || failed !== undefined, `run ${runId} to end`);
  if (failed !== undefined) throw failed;
  return ended!;
}

export const ms = (iso: string | null): number => (iso === null ? Number.NaN : Date.parse(iso));
export const codeOf = (reason: unknown): string | undefined => (isHostError(reason) ? reason.code : (reason as { code?: string } | undefined)?.code);
