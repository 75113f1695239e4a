import type { JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { AdmissionRules, Refusal, ScheduleFire } from '../contract/backend.js';
import { HostError } from '../contract/errors.js';
import type { Run } from '../contract/run.js';
import type { AddBatch } from './add-batch.js';
import { JOB_FIELD } from './bullmq-internals.js';
import type { Connections } from './connections.js';
import type { ClusterKeys } from './keys.js';
import { bullmq } from './libraries.js';
import { debounceDedup, debounceHolder, debounceVerdict, queueDebounced } from './limits-debounce.js';
import { PRIORITY_OFFSET, toJobData } from './run-records.js';
import type { JobhostCommands } from './scripts.js';

/**
 * A trigger: the job's rules checked and the run added as a BullMQ job in one MULTI, so no other
 * host's add, start or end comes between the check and the add. `enabled`, `once` (after a
 * success) and `cooldown` are checked against the job's state in Redis by a script; "a run is
 * already waiting or running" (`once`, `overlap: 'skip'`, the dedup `key`) is BullMQ's own
 * deduplication inside its add script, which also names the run that holds the place.
 */

export interface Retention {
  keepRuns: number;
  keepDays: number;
}

/** A job's deduplication id, when its rules need one: only one holder at a time, cluster-wide. */
function dedupId(run: Run, rules: AdmissionRules): string | undefined {
  if (rules.once) return 'once';
  if (rules.overlap === 'skip') return 'overlap';
  if (run.key !== null) return `key:${run.key}`;
  return undefined;
}

/** BullMQ's options for a run's job: our id, time, priority, attempts, retention, deduplication. */
export function jobOptions(run: Run, rules: AdmissionRules, retention: Retention): JobsOptions {
  const created = Date.parse(run.createdAt);
  const keep = { count: retention.keepRuns, ...(retention.keepDays > 0 ? { age: Math.round(retention.keepDays * 86_400) } : {}) };
  const dedup = dedupId(run, rules);
  return {
    jobId: run.id,
    timestamp: created,
    delay: Math.max(0, Date.parse(run.runAt) - created),
    priority: run.priority + PRIORITY_OFFSET,
    attempts: run.maxAttempts,
    // The delay is decided when an attempt fails (backoff, cap, jitter): see JobQueue's backoffStrategy.
    backoff: { type: 'jobhost' },
    removeOnComplete: keep,
    removeOnFail: keep,
    ...(rules.debounceMs ? { deduplication: debounceDedup(run, rules) } : dedup !== undefined ? { deduplication: { id: dedup } } : {}),
  };
}

/** What an add's replies say: its refusal, a deduplicating holder to name, or add again (debounce). */
interface Admitted {
  refusal?: Refusal;
  holder?: string;
  again?: true;
  wrote: boolean;
}

/** Admits and adds `run` in this turn's MULTI (`add-batch.ts`); resolves with the refusal, or undefined once Redis holds the run. */
export async function admit(
  batch: AddBatch,
  queue: Queue,
  run: Run,
  rules: AdmissionRules,
  keys: ClusterKeys,
  connections: Connections,
  retention: Retention,
  queued: { host: string; data: string },
  fire?: ScheduleFire,
  again = true,
): Promise<Refusal | undefined> {
  const opts = jobOptions(run, rules, retention);
  const bullJob = new (bullmq().Job)(queue, run.job, toJobData(run), opts, run.id);
  const jobKey = keys.queue(run.job, run.id);
  const dedupKey = opts.deduplication ? `${queue.keys['de']}:${opts.deduplication.id}` : '';
  const client = queue.getBackend().client as unknown as Promise<Redis>;
  // Debounced: the run holding the window now, whose job hash the merge script is given.
  const holder = rules.debounceMs ? await debounceHolder(await client, dedupKey).catch((err: unknown) => Promise.reject(connections.toHostError(err))) : '';
  const out = await batch.add<Admitted>({
    client,
    connection: connections.producer,
    stage: (transaction) => {
      const multi = transaction as unknown as Pick<JobhostCommands, 'jhAdmit' | 'jhAdmitted'>;
      const admission = [
        rules.once ? '1' : '0',
        String(rules.cooldownMs),
        rules.configEnabled ? '1' : '0',
        fire ? String(fire.at) : '',
        fire ? String(fire.record) : '',
      ] as const;
      const member = `${run.id}:${run.job}`;
      if (!dedupKey) {
        // Without a dedup id BullMQ's add adds unless the hash is there: admitted, indexed and announced before it.
        void multi.jhAdmit(
          '5',
          keys.jobState(run.job),
          jobKey,
          keys.runs,
          keys.runsOf(run.job),
          keys.clusterStream,
          ...admission,
          member,
          String(keys.streamLength),
          queued.host,
          run.createdAt,
          queued.data,
        );
        bullJob.addJob(multi as never).catch(() => undefined);
        return;
      }
      void multi.jhAdmit('2', keys.jobState(run.job), jobKey, ...admission);
      // Queued on the MULTI synchronously; its own promise settles with the EXEC (errors are read below).
      bullJob.addJob(multi as never).catch(() => undefined);
      if (rules.debounceMs) {
        const holderKey = holder ? keys.queue(run.job, holder) : jobKey;
        queueDebounced(multi, { jobKey, dedupKey, delayed: queue.keys['delayed']!, holderKey }, holder, JSON.stringify(bullJob.data));
      }
      void multi.jhAdmitted(
        jobKey,
        keys.runs,
        keys.runsOf(run.job),
        keys.clusterStream,
        dedupKey,
        member,
        '1',
        String(keys.streamLength),
        queued.host,
        run.createdAt,
        queued.data,
      );
    },
    read: (replies) => {
      if (replies.length !== (!dedupKey ? 2 : rules.debounceMs ? 4 : 3)) throw new HostError('INTERNAL', 'the add transaction was discarded');
      for (const [err] of replies) if (err) throw connections.toHostError(err);
      const verdict = replies[0]![1] as [string, string];
      if (!dedupKey) return verdict[0] === 'ok' ? { wrote: true } : { refusal: refusalOf(verdict), wrote: false };
      const added = replies.at(-1)![1] as [number, string?];
      const debounced = rules.debounceMs ? debounceVerdict(replies[2]![1]) : 'added';
      if (debounced === 'again' && again) return { again: true, wrote: false };
      if (typeof debounced === 'object') return { refusal: debounced, wrote: true };
      if (added[0] === 1) return { wrote: true };
      if (added[0] === 0) return { refusal: refusalOf(verdict), wrote: false };
      return { holder: added[1] ?? '', wrote: false };
    },
    // The 202 waits for the replicas backend.waitReplicas asks for (a refusal acknowledges nothing).
    wrote: (admitted) => admitted.wrote,
  });
  if (out.again) return admit(batch, queue, run, rules, keys, connections, retention, queued, fire, false);
  if (out.holder === undefined) return out.refusal;
  // Only `overlap: 'skip'` with a key asks whose key the holder has: a read after the MULTI (the script may touch only keys it is given).
  const holderKey = out.holder && needsHolderKey(run, rules) ? await keyOfRun(await client, keys.queue(run.job, out.holder), connections) : '';
  return dedupRefusal(run, rules, out.holder, holderKey);
}

function needsHolderKey(run: Run, rules: AdmissionRules): boolean {
  return !rules.once && run.key !== null && rules.overlap === 'skip';
}

/** The `key` a run was triggered with, from its job hash's data ('' when it is gone or has none). */
async function keyOfRun(client: Redis, jobHash: string, connections: Connections): Promise<string> {
  let data: string | null;
  try {
    data = await client.hget(jobHash, JOB_FIELD.data);
  } catch (err) {
    throw connections.toHostError(err);
  }
  try {
    const key = (JSON.parse(data ?? 'null') as { key?: unknown } | null)?.key;
    return typeof key === 'string' ? key : '';
  } catch {
    return '';
  }
}

/** The refusal of the admission script, in the words the local backend uses. */
export function refusalOf([reason, info]: [string, string]): Refusal {
  if (reason === 'fired') return { reason: 'fired', detail: `another host ran the fire (the job's last fire is ${new Date(Number(info)).toISOString()})` };
  if (reason === 'disabled') return { reason: 'disabled', detail: 'the job is disabled' };
  if (reason === 'once') return { reason: 'once', detail: 'the job may succeed once and already has', ...(info ? { runId: info } : {}) };
  if (reason === 'cooldown') return { reason: 'cooldown', detail: `cooling down until ${new Date(Number(info)).toISOString()}` };
  throw new HostError('INTERNAL', `unexpected admission verdict "${reason}"`);
}

/** BullMQ kept another run (`holder`) in this run's place: which rule that was. */
export function dedupRefusal(run: Run, rules: AdmissionRules, holder: string, holderKey: string): Refusal {
  const runId = holder ? { runId: holder } : {};
  if (rules.once) return { reason: 'once', detail: 'a run of this once-only job is already queued or running', ...runId };
  // With both `overlap: 'skip'` and a key, the single host tells a same-key holder as `duplicate` first.
  if (run.key !== null && (rules.overlap !== 'skip' || holderKey === run.key)) {
    return { reason: 'duplicate', detail: `run ${holder} with key "${run.key}" is already queued or running`, ...runId };
  }
  return { reason: 'overlap', detail: `run ${holder} is already queued or running`, ...runId };
}
