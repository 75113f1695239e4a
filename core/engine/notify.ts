import type { Notification, NotifyStatus } from '../contract/notification.js';
import type { NotifySpec } from '../contract/plugin-schema.js';
import type { Run } from '../contract/run.js';

const DEFAULT_ON: readonly NotifyStatus[] = ['succeeded', 'failed'];
const SUFFIX: Record<NotifyStatus, string> = { succeeded: 'Completed', failed: 'Failed', canceled: 'Canceled', retrying: 'Retrying' };

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

/**
 * The notification for a run reaching `status`, or null when the job's `notify.on` leaves it out.
 * Without the custom flags the title gets a status suffix ("Backup Completed") and the message
 * is the default sentence around the rendered template (or the result / error when no template).
 */
export function buildNotification(spec: NotifySpec, run: Run, status: NotifyStatus, at: string, id: string): Notification | null {
  if (!(spec.on ?? DEFAULT_ON).includes(status)) return null;
  const error = run.error ?? run.attempts.at(-1)?.error ?? null;
  const vars = {
    job: run.job,
    runId: run.id,
    status,
    durationMs: run.durationMs,
    attempt: run.attempts.length,
    result: run.result,
    params: run.params,
    error: error?.message ?? '',
    errorCode: error?.code ?? '',
  };
  const renderedTitle = renderTemplate(spec.title ?? titleCase(run.job), vars);
  const title = spec.customTitle ? renderedTitle : `${renderedTitle} ${SUFFIX[status]}`;

  let message: string;
  if (spec.customMessage) {
    message = renderTemplate(spec.message ?? (status === 'succeeded' ? '{{result}}' : '{{error}}'), vars);
  } else if (status === 'succeeded') {
    const detail = spec.message !== undefined ? renderTemplate(spec.message, vars) : text(run.result ?? null);
    message = `Job ${run.job} run ${run.id} completed successfully: ${detail}`;
  } else if (status === 'failed') {
    message = `Job ${run.job} run ${run.id} failed: ${vars.error}`;
  } else if (status === 'canceled') {
    message = `Job ${run.job} run ${run.id} was canceled: ${vars.error}`;
  } else {
    message = `Job ${run.job} run ${run.id} attempt ${vars.attempt} failed, retrying: ${vars.error}`;
  }
  const failing = status === 'failed' || status === 'retrying';
  return {
    id,
    job: run.job,
    runId: run.id,
    status,
    title,
    message,
    priority: failing ? (spec.failurePriority ?? 'high') : (spec.priority ?? 'medium'),
    tags: [...(spec.tags ?? [])],
    at,
    deliveries: [],
  };
}
