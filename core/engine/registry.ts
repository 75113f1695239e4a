import type { JobState } from '../contract/backend.js';
import type { Config } from '../contract/config.js';
import type { AfterStatus, JobSpec } from '../contract/plugin-schema.js';
import { changedFields, type EffectiveJob, type JobOrigin, resolveJob } from './jobs.js';

/**
 * The registered jobs: each plugin's spec resolved against the config (and the job's stored
 * flags) into an effective job, and the index of app events to the jobs that listen for them. It
 * holds state only; the host decides and announces.
 */

export interface JobEntry {
  job: EffectiveJob;
  /** When the job was first registered in this process (for stale-job checks). */
  registeredAt: number;
}

export interface Subscription {
  job: string;
  delayMs: number;
}

/** A job triggered by the end of another's runs (`after`), and the ends it waits for (one run per end however many match). */
export interface Dependent {
  job: string;
  statuses: AfterStatus[];
}

/** Removed jobs remembered for the runs of them still in flight (a bound: the oldest go first). */
const RETIRED_MAX = 1000;

export class JobRegistry {
  readonly #jobs = new Map<string, JobEntry>();
  /** Jobs removed while runs of them may be in flight: those finish on the old version (SPEC §2), and their ends are still told. */
  readonly #retired = new Map<string, JobEntry>();
  #subscriptions = new Map<string, Subscription[]>();
  #dependents = new Map<string, Dependent[]>();
  readonly #state: (name: string) => Readonly<JobState>;
  readonly #hasQueue: (name: string) => boolean;

  constructor(state: (name: string) => Readonly<JobState>, hasQueue: (name: string) => boolean) {
    this.#state = state;
    this.#hasQueue = hasQueue;
  }

  get size(): number {
    return this.#jobs.size;
  }

  has(name: string): boolean {
    return this.#jobs.has(name);
  }

  get(name: string): JobEntry | undefined {
    return this.#jobs.get(name);
  }

  /** The job as it was when it was removed (until it is registered again): what its runs still in flight started on. */
  retired(name: string): JobEntry | undefined {
    return this.#retired.get(name);
  }

  names(): string[] {
    return [...this.#jobs.keys()];
  }

  entries(): IterableIterator<[string, JobEntry]> {
    return this.#jobs.entries();
  }

  /** The effective job for a spec under `config` (throws INVALID_CRON/INVALID_TIMEZONE). */
  resolve(spec: JobSpec, origin: JobOrigin, config: Config, hasQueue: (name: string) => boolean = this.#hasQueue): EffectiveJob {
    return resolveJob(spec, origin, config.jobs[spec.name], config, this.#state(spec.name), hasQueue);
  }

  set(name: string, job: EffectiveJob, registeredAt: number): void {
    const existing = this.#jobs.get(name);
    this.#retired.delete(name);
    this.#jobs.set(name, { job, registeredAt: existing?.registeredAt ?? registeredAt });
    this.#index();
  }

  delete(name: string): JobEntry | undefined {
    const entry = this.#jobs.get(name);
    if (entry) {
      this.#jobs.delete(name);
      if (this.#retired.size >= RETIRED_MAX) this.#retired.delete(this.#retired.keys().next().value!);
      this.#retired.set(name, entry);
      this.#index();
    }
    return entry;
  }

  /** Resolves a registered job again (config or flags changed): the new job and what changed. */
  reresolve(name: string, config: Config): { job: EffectiveJob; changed: string[]; was: EffectiveJob } | undefined {
    const entry = this.#jobs.get(name);
    if (!entry) return undefined;
    const was = entry.job;
    entry.job = this.resolve(was.spec, was, config);
    this.#index();
    return { job: entry.job, changed: changedFields(was, entry.job), was };
  }

  /** The jobs whose `on` lists `event` (disabled ones too: their trigger is refused as `disabled`). */
  subscribers(event: string): readonly Subscription[] {
    return this.#subscriptions.get(event) ?? [];
  }

  /** The jobs whose `after` names `job` (disabled ones too: their trigger is refused as `disabled`). */
  dependents(job: string): readonly Dependent[] {
    return this.#dependents.get(job) ?? [];
  }

  #index(): void {
    const subs = new Map<string, Subscription[]>();
    const deps = new Map<string, Dependent[]>();
    for (const { job } of this.#jobs.values()) {
      for (const a of job.after) {
        const list = deps.get(a.job) ?? [];
        const dep = list.find((d) => d.job === job.name);
        if (dep) dep.statuses.push(a.status);
        else list.push({ job: job.name, statuses: [a.status] });
        deps.set(a.job, list);
      }
      for (const on of job.on) {
        const list = subs.get(on.event) ?? [];
        list.push({ job: job.name, delayMs: on.delayMs });
        subs.set(on.event, list);
      }
    }
    this.#subscriptions = subs;
    this.#dependents = deps;
  }
}
