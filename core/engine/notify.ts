import { formatDuration } from '../contract/duration.js';
import type { Notification, NotifyStatus } from '../contract/notification.js';
import { type NotifySpec, wants } from '../contract/plugin-schema.js';
import type { Run } from '../contract/run.js';

const SUFFIX: Record<NotifyStatus, string> = {
  succeeded: 'Completed',
  failed: 'Failed',
  canceled: 'Canceled',
  retrying: 'Retrying',
  recovered: 'Recovered',
  slow: 'Slow',
  missed: 'Missed',
};
const FAILING: ReadonlySet<NotifyStatus> = new Set(['failed', 'retrying', 'slow', 'missed']);

function lookup(root: Record<string, unknown>, path: string): unknown {
  let value: unknown = root;
  for (const key of path.split('.')) {
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function text(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

/** Renders `{{path}}` placeholders from `vars`; unknown paths render empty. */
export function renderTemplate(template: string, vars: Record<string, unknown>): string {
  return template.replace(/\{\{\s*([\w.-]+)\s*\}\}/g, (_, path: string) => text(lookup(vars, path)));
}

/** "cleanup-temp-files" → "Cleanup Temp Files", the title when a plugin gives none. */
export function titleCase(name: string): string {
  return name.replace(/(^|-)(\w)/g, (_, dash: string, c: string) => (dash ? ' ' : '') + c.toUpperCase());
}

/** What an alert rule adds to a notification's template variables and default sentence. */
export interface AlertDetail {
  /** `recovered`: the failed runs the success ended. */
  streak?: number;
  /** `slow`: how long the run has been running. */
  elapsedMs?: number;
  /** `missed`: the fire time (ISO) and why it started no run. */
  fireAt?: string;
  reason?: string;
}

/** A default sentence and what follows its colon; no colon when nothing follows (a handler that returned nothing). */
const ending = (sentence: string, tail: string): string => (tail === '' ? sentence : `${sentence}: ${tail}`);

/** The default sentence of each status, around the rendered template (or the result / error when there is none). */
function defaultMessage(status: NotifyStatus, spec: NotifySpec, job: string, runId: string, vars: Record<string, unknown>, result: unknown): string {
  const run = `Job ${job} run ${runId}`;
  switch (status) {
    case 'succeeded':
      return ending(`${run} completed successfully`, spec.message !== undefined ? renderTemplate(spec.message, vars) : text(result ?? null));
    case 'failed':
      return `${run} failed: ${vars['error']}`;
    case 'canceled':
      return `${run} was canceled: ${vars['error']}`;
    case 'retrying':
      return `${run} attempt ${vars['attempt']} failed, retrying: ${vars['error']}`;
    case 'recovered':
      return ending(`${run} succeeded after ${vars['streak']} failed run${vars['streak'] === 1 ? '' : 's'}`, text(result ?? null));
    case 'slow':
      return `${run} is still running after ${formatDuration(Number(vars['elapsedMs']))} (slower than ${formatDuration(spec.slowerThan ?? 0)})`;
    case 'missed':
      return `Job ${job} missed its schedule fire at ${vars['fireAt']}: ${vars['reason']}`;
  }
}

/**
 * The notification of `status` for a run (or, for `missed`, for a job's fire: `run` null), or
 * null when the job's `notify.on` leaves it out. Without the custom flags the title gets a status
 * suffix ("Backup Completed") and the message is the default sentence around the rendered
 * template (or the result / error when no template).
 */
export function buildNotification(
  spec: NotifySpec,
  subject: { job: string; run: Run | null },
  status: NotifyStatus,
  at: string,
  id: string,
  detail: AlertDetail = {},
): Notification | null {
  if (!wants(spec, status)) return null;
  const { job, run } = subject;
  const error = run ? (run.error ?? run.attempts.at(-1)?.error ?? null) : null;
  const runId = run?.id ?? '';
  const vars: Record<string, unknown> = {
    job,
    runId,
    status,
    durationMs: run?.durationMs ?? null,
    attempt: run?.attempts.length ?? 0,
    result: run?.result,
    params: run?.params,
    error: error?.message ?? '',
    errorCode: error?.code ?? '',
    streak: detail.streak ?? 0,
    elapsedMs: detail.elapsedMs ?? 0,
    fireAt: detail.fireAt ?? '',
    reason: detail.reason ?? '',
  };
  const renderedTitle = renderTemplate(spec.title ?? titleCase(job), vars);
  const title = spec.customTitle ? renderedTitle : `${renderedTitle} ${SUFFIX[status]}`;
  const message = spec.customMessage
    ? renderTemplate(spec.message ?? (status === 'succeeded' || status === 'recovered' ? '{{result}}' : '{{error}}'), vars)
    : defaultMessage(status, spec, job, runId, vars, run?.result);
  return {
    id,
    job,
    runId,
    status,
    title,
    message,
    priority: FAILING.has(status) ? (spec.failurePriority ?? 'high') : (spec.priority ?? 'medium'),
    tags: [...(spec.tags ?? [])],
    at,
    rule: status,
    deliveries: [],
  };
}
