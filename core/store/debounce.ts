import type { AdmissionRules, Refusal } from '../contract/backend.js';
import type { Run } from '../contract/run.js';

/**
 * `debounce` on the local backend (SPEC §13): the first trigger of a job and key (or no key)
 * adds a run that waits `debounceMs`; a trigger of the same job and key while that run still
 * waits for its time is merged into it (its params, and what they came from, replace the run's; its time moves to
 * `debounceMs` from now) instead of adding a run. Once the run's time has come (the window was
 * quiet) the next trigger opens a new window. After a restart, the recovered runs that wait for
 * their time hold the windows again (only a debounced job's triggers look at them).
 */

/** The runner's side: a waiting run postponed with new params (undefined: it no longer waits for its time). */
export interface Postponing {
  postpone(id: string, from: Run, runAtMs: number): Promise<void> | undefined;
  get(id: string): Run | undefined;
}

export class Debouncer {
  readonly #runs: Postponing;
  /** `job\nkey` → the id of the run its window feeds. */
  readonly #open = new Map<string, string>();
  #sweepAt = 1024;

  constructor(runs: Postponing) {
    this.#runs = runs;
  }

  /**
   * Merges `run` into the waiting run of its job and key: resolves with the `debounced` answer
   * once the merge is durable. Undefined when no window is open: the caller adds `run` (it waits
   * out a window of its own), then calls `opened`.
   */
  merge(run: Run, rules: AdmissionRules, now: number): Promise<Refusal> | undefined {
    const windowMs = rules.debounceMs ?? 0;
    const slot = `${run.job}\n${run.key ?? ''}`;
    const holder = this.#open.get(slot);
    if (holder === undefined) return undefined;
    // The trigger's run waits out a window already (buildRun): its time is the holder's new one.
    const merged = this.#runs.postpone(holder, run, Math.max(now + windowMs, Date.parse(run.runAt)));
    if (merged) return merged.then(() => ({ reason: 'debounced', detail: `merged into run ${holder}`, runId: holder }));
    this.#open.delete(slot);
    return undefined;
  }

  /** `run` was admitted: it holds its key's window. */
  opened(run: Run): void {
    this.#open.set(`${run.job}\n${run.key ?? ''}`, run.id);
    // Windows whose run started (or ended) are dropped now and then: the map stays bounded by the waiting runs.
    if (this.#open.size >= this.#sweepAt) {
      for (const [slot, id] of this.#open) if (this.#runs.get(id)?.status !== 'queued') this.#open.delete(slot);
      this.#sweepAt = Math.max(1024, this.#open.size * 2);
    }
  }
}
