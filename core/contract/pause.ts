/**
 * Pause and resume (SPEC §13): a paused job, or every job of a paused queue (`queues` in the
 * config), still takes triggers (they are recorded and wait) but starts no run; running runs
 * finish. What is paused is kept by the backend across restarts, and on a shared backend it
 * holds on every host.
 */

export type PauseKind = 'job' | 'queue';

/** What is paused now, each list sorted. */
export interface PausedSet {
  jobs: string[];
  queues: string[];
}

/** A backend's pause records and their effect on when runs start. */
export interface PauseStore {
  /** Whether a run of `job` (waiting in `queue`) is held: the job or its queue is paused. Synchronous (a shared backend reads its local copy). */
  holds(job: string, queue: string): boolean;
  /** Whether that job or queue itself is paused. Synchronous. */
  isPaused(kind: PauseKind, name: string): boolean;
  /** Everything paused (a shared backend: as last read, plus this host's own changes). */
  list(): PausedSet;
  /**
   * Pauses or resumes; resolves once the change is durable and in force for the runs this
   * backend starts (a shared backend: the record in Redis, and BullMQ's own pause for a job).
   * Answers whether anything changed.
   */
  set(kind: PauseKind, name: string, paused: boolean): Promise<boolean>;
  /** Another host changed a pause (its event was relayed here): read the records again. */
  changed(): void;
}

/** An in-memory `PausedSet` holder both backends build on: sorted lists out, set membership in. */
export class PauseSets {
  readonly jobs = new Set<string>();
  readonly queues = new Set<string>();

  holds(job: string, queue: string): boolean {
    return this.jobs.has(job) || this.queues.has(queue);
  }

  isPaused(kind: PauseKind, name: string): boolean {
    return this.of(kind).has(name);
  }

  of(kind: PauseKind): Set<string> {
    return kind === 'job' ? this.jobs : this.queues;
  }

  list(): PausedSet {
    return { jobs: [...this.jobs].sort(), queues: [...this.queues].sort() };
  }

  /** Replaces both sets; answers the names whose state changed, by kind. */
  replace(next: PausedSet): { jobs: string[]; queues: string[] } {
    const diff = (have: Set<string>, want: readonly string[]): string[] => {
      const wanted = new Set(want);
      const changed = [...have].filter((n) => !wanted.has(n)).concat(want.filter((n) => !have.has(n)));
      have.clear();
      for (const n of wanted) have.add(n);
      return changed;
    };
    return { jobs: diff(this.jobs, next.jobs), queues: diff(this.queues, next.queues) };
  }
}
