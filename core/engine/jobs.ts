import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { ExecutableJob } from '../contract/attempt.js';
import type { AdmissionRules, JobState } from '../contract/backend.js';
import type { Config, JobOverride } from '../contract/config.js';
import { HostError } from '../contract/errors.js';
import { issueKeys, type ParamsSchema } from '../contract/plugin.js';
import type { AfterSpec, JobSpec, NotifySpec, ScheduleSpec } from '../contract/plugin-schema.js';
import type { HandlerSource, Isolation } from '../contract/plugin-source.js';
import { DEFAULT_RETRY, type RetryPolicy } from '../contract/retry.js';
import { cronSchedule, everySchedule, type Schedule } from '../schedule/cron.js';
import { flowControl } from './flow-control.js';

/**
 * A job as the host runs it: the plugin's declaration, overridden by `jobs.<name>` in the config,
 * filled in from the config's defaults, with the run-time enabled flag on top.
 */
export interface EffectiveJob extends ExecutableJob, AdmissionRules {
  readonly spec: JobSpec;
  readonly file: string | null;
  readonly source: HandlerSource | null;
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
  /** The runs whose end triggers this job (`after`; `jobs.<name>.after` replaces the plugin's). */
  readonly after: AfterSpec;
  readonly maxAttempts: number;
  /** Where the handler runs: `worker` only when asked for and the job has a file a worker can load. */
  readonly isolation: Isolation;
  /** What was asked for (plugin, `jobs.<name>`, `defaults`): differs from `isolation` for a job registered in code. */
  readonly requestedIsolation: Isolation;
}

/** Where a job's definition came from: its plugin file (as shown) and the compiled code a worker runs. */
export interface JobOrigin {
  readonly file: string | null;
  readonly source: HandlerSource | null;
}

/**
 * Alert rules that cannot work as given: `slow` without `slowerThan`, `missed` without a schedule.
 * The error is the config file's (`CONFIG_INVALID`, with the path a config edit's `config.error`
 * shows) when the field at fault came from `jobs.<name>`, else the plugin's (`PLUGIN_INVALID`).
 */
function checkAlertRules(name: string, notify: NotifySpec | null, scheduled: boolean, spec: JobSpec, override: JobOverride | undefined): void {
  const on = notify?.on ?? [];
  const onFromConfig = override?.notify?.on !== undefined;
  const fail = (fromConfig: boolean, field: string, message: string): never => {
    const path = fromConfig ? `jobs.${name}.${field}` : field;
    throw new HostError(fromConfig ? 'CONFIG_INVALID' : 'PLUGIN_INVALID', `${path}: ${message}`, { field: path, path });
  };
  if (on.includes('slow') && notify?.slowerThan === undefined) {
    fail(onFromConfig, 'notify.slowerThan', `required when notify.on has 'slow' (a duration such as '10m')`);
  }
  if (on.includes('missed') && !scheduled) {
    // The config removed the schedule the plugin's rule needs: the schedule is the config's doing.
    if (!onFromConfig && override?.schedule === null && spec.schedule !== null)
      fail(true, 'schedule', `the plugin's notify.on has 'missed', which needs a schedule`);
    fail(onFromConfig, 'notify.on', `'missed' needs a schedule, and the job has none`);
  }
}

/**
 * `jobs.<name>.params` (defaults every trigger's params are merged over) checked by the plugin's
 * schema, as far as they go: an issue under a key the config gives is the config's error
 * (CONFIG_INVALID naming `jobs.<name>.params.<key>`), where it would otherwise fail every
 * schedule fire; a key left to each trigger (required, not in the config) is no issue here. A
 * schema that validates asynchronously or throws is left to the triggers.
 */
function checkConfigParams(name: string, schema: ParamsSchema | null, defaults: Readonly<Record<string, unknown>> | undefined): void {
  if (!schema || !defaults || Object.keys(defaults).length === 0) return;
  let result: ReturnType<ParamsSchema['~standard']['validate']>;
  try {
    result = schema['~standard'].validate({ ...defaults });
  } catch {
    return;
  }
  if (result instanceof Promise) {
    result.catch(() => undefined);
    return;
  }
  for (const issue of result.issues ?? []) {
    let keys = issueKeys(issue);
    // A strict object's unknown keys come as one issue at its root, naming them (zod's `keys`).
    if (keys.length === 0) {
      const named = (issue as { keys?: unknown }).keys;
      const unknown = Array.isArray(named) ? named.find((k) => typeof k === 'string' && Object.hasOwn(defaults, k)) : undefined;
      if (unknown !== undefined) keys = [unknown as string];
    }
    if (keys.length === 0 || !Object.hasOwn(defaults, keys[0]!)) continue;
    const path = `jobs.${name}.params.${keys.join('.')}`;
    throw new HostError('CONFIG_INVALID', `${path}: ${issue.message} (the job's params schema)`, { field: path, path });
  }
}

/** Merges plugin, override and defaults. Throws INVALID_CRON/INVALID_TIMEZONE for a bad combination. */
export function resolveJob(
  spec: JobSpec,
  origin: JobOrigin,
  override: JobOverride | undefined,
  config: Config,
  state: Readonly<JobState>,
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
  checkAlertRules(spec.name, notify, schedule !== null, spec, override);
  checkConfigParams(spec.name, spec.params, override?.params);
  const flow = flowControl(spec, override);
  const requestedIsolation = override?.isolation ?? spec.isolation ?? config.defaults.isolation;
  return Object.freeze({
    name: spec.name,
    spec,
    file: origin.file,
    source: origin.source,
    isolation: requestedIsolation === 'worker' && origin.source !== null ? 'worker' : 'inline',
    requestedIsolation,
    description: spec.description,
    handler: spec.handler,
    scheduleSpec,
    schedule,
    timezone,
    enabled: state.enabled ?? override?.enabled ?? spec.enabled,
    configEnabled: override?.enabled ?? spec.enabled,
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
    after: override?.after ?? spec.after,
    ...flow,
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
  if (a.isolation !== b.isolation) out.push('isolation');
  if (!same(a.notify, b.notify)) out.push('notify');
  if (!same(a.after, b.after)) out.push('after');
  if (!same(a.rateLimit, b.rateLimit)) out.push('rateLimit');
  if (a.debounceMs !== b.debounceMs) out.push('debounce');
  if (a.file !== b.file) out.push('file');
  return out;
}

const versions = new WeakMap<EffectiveJob, string>();

/**
 * The version of a job's definition as this host runs it (plugin code and options, config
 * overrides): a short hash, equal on two hosts when they run the same job. `GET /cluster` lists it
 * per host; hosts that differ are `drift`. The run-time enabled flag is left out (it is shared).
 */
export function jobVersion(job: EffectiveJob): string {
  let v = versions.get(job);
  if (v === undefined) {
    const definition = JSON.stringify([
      job.description,
      job.scheduleSpec,
      job.timezone,
      job.configEnabled,
      job.paramDefaults,
      job.retry,
      job.timeoutMs,
      job.cooldownMs,
      job.once,
      job.overlap,
      job.concurrency,
      job.queue,
      job.catchUp,
      job.notify,
      job.on,
      paramsJsonSchema(job.paramsSchema),
      String(job.handler),
      // Only when set: the versions of jobs without them stay what they were.
      ...(job.rateLimit || job.debounceMs ? [job.rateLimit, job.debounceMs] : []),
      ...(job.after?.length ? [job.after] : []),
    ]);
    v = createHash('sha1').update(definition).digest('hex').slice(0, 12);
    versions.set(job, v);
  }
  return v;
}
