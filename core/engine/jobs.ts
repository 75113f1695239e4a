import { z } from 'zod';
import type { Config, JobOverride } from '../contract/config.js';
import { cronSchedule, everySchedule, type Schedule } from '../schedule/cron.js';
import type { JobSpec, NotifySpec, ParamsSchema, RetryPolicy, ScheduleSpec } from '../contract/plugin.js';
import type { Run } from '../contract/run.js';
import type { RunnerJob } from './runner.js';
import type { JobRecord } from '../store/store.js';

const DURATIONS_KEPT = 200;

/** Folds a finished run into its job's aggregates: counts, last run, last success, recent durations. */
export function foldFinished(record: JobRecord, run: Run): void {
  if (run.status !== 'succeeded' && run.status !== 'failed' && run.status !== 'canceled') return;
  const counts = (record.counts ??= {});
  counts[run.status] = (counts[run.status] ?? 0) + 1;
  const at = run.endedAt ?? run.createdAt;
  const last = record.lastRun;
  if (!last) record.lastRun = { runId: run.id, status: run.status, at };
  else if (last.at <= at) {
    // In place: this runs once per finished run, and the record is the store's copy too.
    last.runId = run.id;
    last.status = run.status;
    last.at = at;
  }
  if (run.status === 'succeeded' && (record.lastSuccessAt === undefined || record.lastSuccessAt < at)) record.lastSuccessAt = at;
  if (run.durationMs !== null && run.status !== 'canceled') {
    const durations = (record.durations ??= []);
    durations.push(run.durationMs);
    // Trimmed in bulk, not one shift per run: between DURATIONS_KEPT and twice that are kept.
    if (durations.length >= 2 * DURATIONS_KEPT) durations.splice(0, durations.length - DURATIONS_KEPT);
  }
}

/**
 * A job as the host runs it: the plugin's declaration, overridden by `jobs.<name>` in the config,
 * filled in from the config's defaults, with the run-time enabled flag on top.
 */
export interface EffectiveJob extends RunnerJob {
  readonly spec: JobSpec;
  readonly file: string | null;
  readonly description: string;
  readonly scheduleSpec: ScheduleSpec | null;
  readonly schedule: Schedule | null;
  readonly timezone: string;
  readonly enabled: boolean;
  readonly paramsSchema: ParamsSchema | null;
  readonly paramDefaults: Readonly<Record<string, unknown>>;
  readonly cooldownMs: number;
  readonly once: boolean;
  readonly overlap: 'skip' | 'queue' | 'allow';
  readonly queue: string;
  readonly catchUp: boolean;
  readonly notify: NotifySpec | null;
  readonly on: ReadonlyArray<{ event: string; delayMs: number }>;
  readonly maxAttempts: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 1, backoff: 'exponential', delayMs: 1000, maxDelayMs: 3_600_000, jitter: 0.2 };

/** Merges plugin, override and defaults. Throws INVALID_CRON/INVALID_TIMEZONE for a bad combination. */
export function resolveJob(
  spec: JobSpec,
  file: string | null,
  override: JobOverride | undefined,
  config: Config,
  record: JobRecord,
  hasQueue: (name: string) => boolean,
): EffectiveJob {
  const scheduleSpec = override?.schedule !== undefined ? override.schedule : spec.schedule;
  const timezone = override?.timezone ?? spec.timezone ?? config.defaults.timezone;
  const field = override?.schedule ? `jobs.${spec.name}.schedule` : 'schedule';
  const schedule =
    scheduleSpec === null
      ? null
      : scheduleSpec.kind === 'cron'
        ? cronSchedule(scheduleSpec.expr, timezone, field)
        : everySchedule(scheduleSpec.ms, scheduleSpec.label);
  const r = { ...spec.retry, ...override?.retry };
  const retry: RetryPolicy = {
    attempts: r.attempts ?? DEFAULT_RETRY.attempts,
    backoff: r.backoff ?? DEFAULT_RETRY.backoff,
    delayMs: r.delay ?? DEFAULT_RETRY.delayMs,
    maxDelayMs: r.maxDelay ?? DEFAULT_RETRY.maxDelayMs,
    jitter: r.jitter ?? DEFAULT_RETRY.jitter,
  };
  const queue = override?.queue ?? spec.queue;
  const notify = override?.notify ? { ...spec.notify, ...override.notify } : spec.notify;
  return Object.freeze({
    name: spec.name,
    spec,
    file,
    description: spec.description,
    handler: spec.handler,
    scheduleSpec,
    schedule,
    timezone,
    enabled: record.enabled ?? override?.enabled ?? spec.enabled,
    paramsSchema: spec.params,
    paramDefaults: Object.freeze({ ...override?.params }),
    concurrency: spec.overlap === 'queue' ? 1 : spec.concurrency,
    timeoutMs: override?.timeout ?? spec.timeoutMs ?? config.defaults.timeout,
    retry,
    maxAttempts: retry.attempts,
    cooldownMs: override?.cooldown ?? spec.cooldownMs,
    once: spec.once,
    overlap: spec.overlap,
    queue: hasQueue(queue) ? queue : 'default',
    catchUp: spec.catchUp,
    notify,
    on: spec.on,
  });
}

const jsonSchemas = new WeakMap<object, unknown>();

/** The JSON Schema of a job's params (zod schemas only), for the API and the dashboard's form. */
export function paramsJsonSchema(schema: ParamsSchema | null): unknown {
  if (!schema) return null;
  if (jsonSchemas.has(schema)) return jsonSchemas.get(schema);
  let out: unknown = null;
  if ((schema as { '~standard': { vendor: string } })['~standard'].vendor === 'zod') {
    try {
      out = z.toJSONSchema(schema as unknown as z.ZodType, { target: 'draft-07', io: 'input', unrepresentable: 'any' });
    } catch {
      out = null;
    }
  }
  jsonSchemas.set(schema, out);
  return out;
}

/** Which fields differ between two resolutions of a job, for `job.updated`. */
export function changedFields(a: EffectiveJob, b: EffectiveJob): string[] {
  const out: string[] = [];
  const same = (x: unknown, y: unknown): boolean => JSON.stringify(x) === JSON.stringify(y);
  if (a.spec !== b.spec) out.push('plugin');
  if (!same(a.scheduleSpec, b.scheduleSpec)) out.push('schedule');
  if (a.timezone !== b.timezone) out.push('timezone');
  if (a.enabled !== b.enabled) out.push('enabled');
  if (!same(a.paramDefaults, b.paramDefaults)) out.push('params');
  if (!same(a.retry, b.retry)) out.push('retry');
  if (a.timeoutMs !== b.timeoutMs) out.push('timeout');
  if (a.cooldownMs !== b.cooldownMs) out.push('cooldown');
  if (a.queue !== b.queue) out.push('queue');
  if (!same(a.notify, b.notify)) out.push('notify');
  if (a.file !== b.file) out.push('file');
  return out;
}

/** Nearest-rank percentile of unsorted values; null for none. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}
