import type { AfterEnd } from '../contract/after.js';
import type { AdmissionRules, Backend, Refusal } from '../contract/backend.js';
import type { Clock } from '../contract/clock.js';
import type { Config } from '../contract/config.js';
import { HostError, isHostError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import type { AfterSpec, AfterStatus } from '../contract/plugin-schema.js';
import type { Run, RunStatus } from '../contract/run.js';
import type { HostState } from '../contract/views.js';
import type { Bus } from './bus.js';
import { afterRunId } from './ids.js';
import type { JobRegistry } from './registry.js';
import { buildRun, type Triggers, validateParams } from './triggers.js';

/**
 * Chaining (`after`, SPEC §13): the end of a run of job A with a status triggers a run of each
 * job B whose `after` waits for it, with params `{ runId, job, status, result }` of A's run, source
 * `after` and `after: { runId, job }`. B's run id comes from A's run id (`afterRunId`): however
 * often A's end is recorded, B's run is one.
 *
 * Where the trigger happens: on the local backend, in the same turn of the event loop as A's end
 * (`finished`), so B's add joins the store's group commit that records A's end; on a backend that
 * `chains` (Redis), the backend adds B's run in the very write that records A's end, from the runs
 * `build` gives it.
 */

export interface AfterOptions {
  registry: JobRegistry;
  triggers: Triggers;
  backend: Backend;
  bus: Bus;
  clock: Clock;
  logger: Logger;
  state(): HostState;
  limits(): Config['limits'];
}

/** Whether an end with `status` is one of those `wanted` waits for. */
export function matches(wanted: readonly AfterStatus[], status: RunStatus): boolean {
  return wanted.some((w) => (w === 'finished' ? status === 'succeeded' || status === 'failed' || status === 'canceled' : w === status));
}

/** The params of a run `after` triggers: the end of its parent (a `params` schema may reshape them). */
function endParams(end: AfterEnd): { runId: string; job: string; status: RunStatus; result: unknown } {
  return { runId: end.runId, job: end.job, status: end.status, result: end.result ?? null };
}

/**
 * Throws AFTER_CYCLE when the `after` edges of `jobs` make a cycle (a job waiting, through others
 * or directly, for its own runs' ends); the message names the jobs in order.
 */
export function checkAfterCycles(jobs: ReadonlyMap<string, AfterSpec>): void {
  const done = new Set<string>();
  const path: string[] = [];
  const onPath = new Set<string>();
  // Edges go from a job to the jobs it waits for: a cycle either way is the same cycle.
  const visit = (name: string): void => {
    if (done.has(name)) return;
    if (onPath.has(name)) {
      const cycle = [...path.slice(path.indexOf(name)), name].reverse();
      throw new HostError('AFTER_CYCLE', `after: the jobs ${cycle.join(' → ')} would trigger each other in a cycle`, { jobs: cycle.slice(0, -1) });
    }
    onPath.add(name);
    path.push(name);
    for (const a of jobs.get(name) ?? []) visit(a.job);
    path.pop();
    onPath.delete(name);
    done.add(name);
  };
  for (const name of jobs.keys()) visit(name);
}

/** The `after` lists of the registered jobs, with `name`'s replaced by `after` (a job being registered or resolved again). */
export function afterGraph(registry: JobRegistry, changed?: ReadonlyMap<string, AfterSpec>): Map<string, AfterSpec> {
  const graph = new Map<string, AfterSpec>();
  for (const [name, { job }] of registry.entries()) graph.set(name, job.after);
  for (const [name, after] of changed ?? []) graph.set(name, after);
  return graph;
}

const DONE: Promise<void> = Promise.resolve();

export class After {
  readonly #o: AfterOptions;
  /** Ends seen while the host was starting (a run recovery failed): triggered once it runs. */
  #early: Run[] | undefined = [];
  /** Runs a crash cut short whose end was chained already in this process (recovery chains before it writes the end, then tells it as any end). */
  readonly #replayed = new Set<string>();
  /** `after` names that no registered job has: warned once each until such a job appears. */
  readonly #missing = new Set<string>();

  constructor(options: AfterOptions) {
    this.#o = options;
    options.bus.on('host.started', () => {
      const early = this.#early ?? [];
      this.#early = undefined;
      for (const run of early) void this.ended(run);
    });
    options.bus.on('job.registered', (e) => {
      const name = e.data.job;
      if (this.#missing.delete(name)) this.#o.logger.info({ job: name }, `after: job "${name}" exists now; the jobs waiting for its runs are chained`);
      this.#checkMissing(name);
    });
    options.bus.on('job.updated', (e) => this.#checkMissing(e.data.job));
  }

  /** Warns (once per name) about each job `name`'s `after` names that is not registered: it works once the job appears. */
  #checkMissing(name: string): void {
    for (const a of this.#o.registry.get(name)?.job.after ?? []) {
      if (this.#o.registry.has(a.job) || a.job === name || this.#missing.has(a.job)) continue;
      this.#missing.add(a.job);
      this.#o.logger.warn(
        { job: name, after: a.job },
        `job "${name}" runs after job "${a.job}", which no plugin defines (yet): nothing triggers it until one does`,
      );
    }
  }

  /** A run ended (the engine's observer): trigger what waits for it, unless the backend does it in the end's own write. */
  finished(run: Run): void {
    if (this.#o.backend.chains) return;
    void this.ended(run);
  }

  /**
   * `BackendHooks.after.ended`: an end that a chaining backend records outside the write that
   * chains (a waiting run canceled in cluster mode: BullMQ removes the job, nothing finishes it).
   * Its children are triggered as on the local backend, their ids derived from the parent's.
   */
  ended(run: Run): Promise<void> {
    // Jobs from the plugins directory are registered after the backend's recovery: wait for them.
    if (this.#early && this.#o.state() === 'starting') {
      this.#early.push(run);
      return DONE;
    }
    // Every run's end passes here: no promise made for the usual run that chains nothing.
    if (this.#o.registry.dependents(run.job).length === 0) return DONE;
    // A run whose attempt a crash cut short may have ended before without its end being recorded
    // (and its children's adds with it, or not: two files): the add waits for a look first.
    const replay = run.attempts.some((a) => a.error?.code === 'INTERRUPTED');
    // Once per process: a child refused the first time (disabled, once) is not tried, nor told skipped, twice.
    if (replay) {
      if (this.#replayed.has(run.id)) return DONE;
      this.#replayed.add(run.id);
    }
    const adds: Array<Promise<void>> = [];
    for (const dep of this.#o.registry.dependents(run.job)) {
      if (!matches(dep.statuses, run.status)) continue;
      const id = afterRunId(run.id, dep.job);
      const end: AfterEnd = { runId: run.id, job: run.job, status: run.status, result: run.result };
      if (!replay) adds.push(this.#trigger(dep.job, id, end));
      else {
        adds.push(
          this.#o.backend.getRun(id).then(
            (found) => (found ? undefined : this.#trigger(dep.job, id, end)),
            (err: unknown) => this.#failed(dep.job, end, err),
          ),
        );
      }
    }
    return Promise.all(adds).then(() => undefined);
  }

  /** Settles once the run is added (durable) or refused; never rejects. */
  #trigger(job: string, id: string, end: AfterEnd): Promise<void> {
    // Synchronous up to the backend's add (unless the params schema is async): see the module doc.
    return this.#o.triggers.create(job, { params: endParams(end) }, 'after', { id, after: { runId: end.runId, job: end.job } }).then(
      () => undefined,
      (err: unknown) => {
        // A refusal (disabled, overlap, ...) was announced as run.skipped.
        if (!isHostError(err) || err.code !== 'SKIPPED') this.#failed(job, end, err);
      },
    );
  }

  #failed(job: string, end: AfterEnd, err: unknown): void {
    this.#o.logger.error({ err, job, after: end.job, runId: end.runId }, `after: the end of run ${end.runId} of "${end.job}" did not trigger "${job}"`);
  }

  /**
   * The runs the end `end` triggers, built (params checked, ids derived) but not added: for a
   * backend that adds them in the write that records the end. A dependent whose params are
   * refused, or that is not registered here, is left out (and logged).
   */
  async build(end: AfterEnd): Promise<Array<{ run: Run; rules: AdmissionRules }>> {
    const out: Array<{ run: Run; rules: AdmissionRules }> = [];
    for (const dep of this.#o.registry.dependents(end.job)) {
      if (!matches(dep.statuses, end.status)) continue;
      const job = this.#o.registry.get(dep.job)?.job;
      if (!job) continue;
      try {
        const params = await validateParams(job, endParams(end), this.#o.limits().maxParamsBytes);
        const id = afterRunId(end.runId, dep.job);
        out.push({ run: buildRun(job, params, {}, 'after', this.#o.clock.now(), id, { after: { runId: end.runId, job: end.job } }), rules: job });
      } catch (err) {
        this.#failed(dep.job, end, err);
      }
    }
    return out;
  }

  /** A run `build` gave, as the backend's write left it: queued (the backend reported it) or refused. */
  added(run: Run, refused: Refusal | undefined): void {
    if (!refused || refused.reason === 'fired' || refused.reason === 'debounced') return;
    const runId = refused.runId !== undefined ? { runId: refused.runId } : {};
    this.#o.bus.emit('run.skipped', { job: run.job, reason: refused.reason, source: 'after', detail: refused.detail, ...runId });
  }
}
