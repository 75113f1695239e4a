import type { Backend } from '../contract/backend.js';
import type { Config } from '../contract/config.js';
import { HostError } from '../contract/errors.js';
import type { PausedSet, PauseKind } from '../contract/pause.js';
import type { HostState } from '../contract/views.js';
import type { Bus } from './bus.js';
import type { JobRegistry } from './registry.js';

/**
 * Pause and resume of jobs and queues (SPEC §13). The backend keeps the records and holds the
 * runs (`contract/pause.ts`); this part checks the names, and says so on the bus once the change
 * is durable: `job.paused` / `job.resumed`, `queue.paused` / `queue.resumed` (only for a change).
 * Triggers and schedule fires go on as ever while paused: their runs are recorded and wait, as
 * BullMQ keeps jobs waiting in a paused queue, and start on resume.
 */

export interface PausesOptions {
  bus: Bus;
  backend: Backend;
  registry: JobRegistry;
  config(): Config;
  state(): HostState;
}

/** A queue as `POST /queues/:name/pause` answers it. */
export interface QueuePauseView {
  queue: string;
  paused: boolean;
  /** The jobs registered here whose runs wait in it. */
  jobs: string[];
}

export class Pauses {
  readonly #o: PausesOptions;

  constructor(options: PausesOptions) {
    this.#o = options;
    // Another host's change, relayed here: the backend reads the records again.
    const relayed = (e: { data: { host?: string } }): void => {
      if (e.data.host !== undefined) options.backend.pauses.changed();
    };
    for (const type of ['job.paused', 'job.resumed', 'queue.paused', 'queue.resumed'] as const) options.bus.on(type, relayed);
  }

  /** Everything paused (as `/ready` lists it). */
  list(): PausedSet {
    return this.#o.backend.pauses.list();
  }

  /** Whether the job itself is paused, and whether its queue is. */
  of(job: string, queue: string): { job: boolean; queue: boolean } {
    const pauses = this.#o.backend.pauses;
    return { job: pauses.isPaused('job', job), queue: pauses.isPaused('queue', queue) };
  }

  /** Pauses (true) or resumes a job; JOB_NOT_FOUND for a job not registered here (its record stays until it returns). */
  async job(name: string, paused: boolean): Promise<void> {
    if (!this.#o.registry.get(name)) {
      throw new HostError('JOB_NOT_FOUND', `no job named "${name}"`, { job: name });
    }
    await this.#set('job', name, paused);
  }

  /** Pauses (true) or resumes a queue of the config; QUEUE_NOT_FOUND for another name (a paused one may still be resumed). */
  async queue(name: string, paused: boolean): Promise<QueuePauseView> {
    const known = Object.hasOwn(this.#o.config().queues, name);
    if (!known && (paused || !this.#o.backend.pauses.isPaused('queue', name))) {
      throw new HostError('QUEUE_NOT_FOUND', `no queue named "${name}" (queues: ${Object.keys(this.#o.config().queues).join(', ')})`, { queue: name });
    }
    await this.#set('queue', name, paused);
    const jobs = this.#o.registry
      .names()
      .filter((job) => this.#o.registry.get(job)?.job.queue === name)
      .sort();
    return { queue: name, paused, jobs };
  }

  async #set(kind: PauseKind, name: string, paused: boolean): Promise<void> {
    const state = this.#o.state();
    if (state === 'stopping' || state === 'stopped') throw new HostError('SHUTTING_DOWN', 'the host is shutting down');
    if (state !== 'running') throw new HostError('NOT_STARTED', 'the host has not started');
    const changed = await this.#o.backend.pauses.set(kind, name, paused);
    if (!changed) return;
    if (kind === 'job') this.#o.bus.emit(paused ? 'job.paused' : 'job.resumed', { job: name });
    else this.#o.bus.emit(paused ? 'queue.paused' : 'queue.resumed', { job: null, queue: name });
  }
}
