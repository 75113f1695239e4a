import type { Queue } from 'bullmq';
import type { AfterEnd } from '../contract/after.js';
import type { AdmissionRules, BackendHooks, Refusal } from '../contract/backend.js';
import { queuedData } from '../contract/events.js';
import type { Logger } from '../contract/logger.js';
import type { Run, RunStatus } from '../contract/run.js';
import { dedupRefusal, jobOptions, type Retention, refusalOf } from './admission.js';
import type { ClusterKeys } from './keys.js';
import { bullmq } from './libraries.js';
import { toJobData } from './run-records.js';

/**
 * Chaining in cluster mode (`after`, SPEC §13): the runs a run's end triggers are added as BullMQ
 * jobs in the MULTI that records the end (BullMQ's `moveToFinished`, see job-queues.ts), so a
 * crash cannot leave the end without its children or the children without the end. Each child
 * is added as a trigger adds a run (admission.ts: jobhost's ADMIT, BullMQ's own add script,
 * ADMITTED), with AFTER_GATE between ADMIT and BullMQ's add: the child goes in only when the
 * parent is in the finished set BullMQ's move put it in (a late end BullMQ refused adds nothing)
 * and only once per parent (a mark on the parent's hash), and its id is derived from the
 * parent's (`afterRunId`), so an end recorded twice still adds one run: BullMQ's add of an
 * existing job id adds nothing.
 */

type Reply = [Error | null, unknown];

/** The MULTI ending a run, as the chain queues on it (jobhost's scripts come from the connection). */
export interface ChainTransaction {
  jhAdmit(...args: string[]): unknown;
  jhAfterGate(...args: string[]): unknown;
  jhAdmitted(...args: string[]): unknown;
}

/** The children of one end: queued on the end's MULTI, then told how it went. */
export interface ChainStep {
  /** Replies the step adds to the MULTI. */
  readonly count: number;
  queue(multi: ChainTransaction): void;
  /** The step's replies (after the end's own), once the MULTI ran. */
  read(replies: Reply[]): void;
}

/** The end of a run as BullMQ's `moveToFinished` states it. */
export interface BullEnd {
  job: string;
  id: string;
  finishedSet: string;
  jobHash: string;
  /** `completed` or `failed`. */
  target: string;
  /** The return value's JSON (completed) or the failed reason. */
  value: string;
  canceledReason: string;
}

export interface AfterChainOptions {
  hostId: string;
  keys: ClusterKeys;
  retention: Retention;
  logger: Logger;
  /** The engine's builder, once the backend is open. */
  hooks(): BackendHooks['after'];
  /** The child job's queue on this host (undefined when its worker is not set up here yet). */
  queue(job: string): Queue | undefined;
  /** A child went in: the host reports it as it reports an add (mirror, observer, wake-up). */
  added(run: Run, delayed: boolean): void;
}

/** Builds the step that adds the runs `end` triggers, or undefined when nothing waits for it. */
export async function chainStep(o: AfterChainOptions, end: BullEnd): Promise<ChainStep | undefined> {
  const hooks = o.hooks();
  if (!hooks) return undefined;
  const status: RunStatus = end.target === 'completed' ? 'succeeded' : end.value === end.canceledReason ? 'canceled' : 'failed';
  let result: unknown = null;
  if (status === 'succeeded') {
    try {
      result = JSON.parse(end.value) as unknown;
    } catch {
      result = null;
    }
  }
  const parent: AfterEnd = { runId: end.id, job: end.job, status, result };
  const built = await hooks.build(parent);
  const children: Array<{ run: Run; rules: AdmissionRules; queue: Queue }> = [];
  for (const child of built) {
    const queue = o.queue(child.run.job);
    if (queue) children.push({ ...child, queue });
    else
      o.logger.error(
        { job: child.run.job, after: end.job, runId: end.id },
        `after: job "${child.run.job}" has no queue on this host yet; the end of run ${end.id} did not trigger it`,
      );
  }
  if (children.length === 0) return undefined;
  return {
    count: children.length * 4,
    queue(multi) {
      for (const { run, rules, queue } of children) {
        const opts = jobOptions(run, rules, o.retention);
        const jobKey = o.keys.queue(run.job, run.id);
        const dedupKey = opts.deduplication ? `${queue.keys['de']}:${opts.deduplication.id}` : '';
        const delayed = run.runAt !== run.createdAt;
        multi.jhAdmit('2', o.keys.jobState(run.job), jobKey, rules.once ? '1' : '0', String(rules.cooldownMs), rules.configEnabled ? '1' : '0', '', '');
        multi.jhAfterGate(end.finishedSet, jobKey, end.jobHash, end.id, `jhAfter:${run.job}`);
        // Queued on the MULTI synchronously; its own promise settles with the EXEC (replies are read below).
        new (bullmq().Job)(queue, run.job, toJobData(run), opts, run.id).addJob(multi as never).catch(() => undefined);
        multi.jhAdmitted(
          jobKey,
          o.keys.runs,
          o.keys.runsOf(run.job),
          o.keys.clusterStream,
          dedupKey || jobKey,
          `${run.id}:${run.job}`,
          dedupKey ? '1' : '0',
          String(o.keys.streamLength),
          o.hostId,
          run.createdAt,
          JSON.stringify(queuedData(run, delayed)),
        );
      }
    },
    read(replies) {
      for (const [i, { run, rules }] of children.entries()) {
        const [admitted, gate, bullAdd, added] = replies.slice(i * 4, i * 4 + 4);
        const err = admitted?.[0] ?? gate?.[0] ?? bullAdd?.[0] ?? added?.[0];
        if (err) {
          o.logger.error({ err, job: run.job, after: end.job, runId: end.id }, `after: the end of run ${end.id} did not add its "${run.job}" run`);
          continue;
        }
        // Not this end's to report: BullMQ refused the end here, or an earlier write of it added the children.
        if (Number(gate![1]) !== 1) continue;
        const verdict = added![1] as [number, string?];
        let refused: Refusal | undefined;
        if (verdict[0] === 0) refused = refusalOf(admitted![1] as [string, string]);
        // The holder's own key is not read here (a script touches only the keys it is given): the refusal names the holder.
        else if (verdict[0] === 2) refused = dedupRefusal(run, rules, verdict[1] ?? '', '');
        if (!refused) o.added(run, run.runAt !== run.createdAt);
        o.hooks()?.added(run, refused);
      }
    },
  };
}
