import { HostError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import { type Service, stopEngine } from './startup.js';
import type { HostParts } from './wiring.js';

/**
 * The graceful stop (SPEC §9) as a list of steps, each closing one part. A step that throws is
 * logged and the next one still runs; the whole stop has one deadline (real time, whatever clock
 * runs the jobs: it watches for a hang), past which the stop ends anyway. Either way the stop
 * rejects with STOP_INCOMPLETE naming what failed, and the host is `stopped`.
 */

export interface StopPlan {
  parts: HostParts;
  /** In start order; they stop in reverse, after the engine, so they serve 503s while it drains. */
  services: readonly Service[];
  logger: Logger;
  reason: string;
  graceMs: number;
  /** The stop ends `graceMs + marginMs` after it began, whatever still waits. */
  marginMs: number;
  /** `notifications.timeout`: the longest one delivery attempt takes, the most the stop waits for its last attempts. */
  deliveryTimeoutMs: number;
  /** False for a host that never opened its backend (nothing to close there). */
  opened: boolean;
  /** Just before the backend closes: from then on cancels are refused (SHUTTING_DOWN), not half written. */
  closing(): void;
}

interface Step {
  name: string;
  run(): unknown;
}

/** Announces the stop, stops fires and alert rounds, then runs the stop's steps; resolves when all are done, rejects with STOP_INCOMPLETE when one failed or the deadline passed. */
export async function stopHost(plan: StopPlan): Promise<void> {
  const { parts, reason, graceMs } = plan;
  const deadlineMs = graceMs + plan.marginMs;
  const endsAt = Date.now() + deadlineMs;
  parts.bus.emit('host.stopping', { job: null, reason, graceMs });
  stopEngine(parts);
  let digests: string[] = [];
  const steps: Step[] = [
    { name: 'drain', run: () => parts.backend.drain(graceMs) },
    // What did not end within the grace will not end in this process: its waiters hear SHUTTING_DOWN.
    { name: 'waits', run: () => parts.waits.close() },
    { name: 'executor', run: () => parts.executor.close() },
    { name: 'run logs', run: () => parts.logs.close() },
    { name: 'insight', run: () => parts.insight.stop() },
    { name: 'digests', run: async () => void (digests = await parts.alerts.flushDigests()) },
    // The digests just recorded (and whatever else is due) get one attempt before the backend
    // closes, which would abort it: a stop tells what it held back (README, Storm control).
    { name: 'deliveries', run: () => (plan.opened ? lastAttempts(parts, digests, endsAt, plan.deliveryTimeoutMs) : undefined) },
    {
      name: 'backend',
      run: () => {
        plan.closing();
        return plan.opened ? parts.backend.close() : undefined;
      },
    },
    { name: 'notifier', run: () => parts.notifier.close() },
    { name: 'host.stopped', run: () => parts.bus.emit('host.stopped', { job: null, reason }) },
    ...[...plan.services].reverse().map((s) => ({ name: s.name, run: () => s.stop() })),
  ];
  const { failed, overdue } = await runSteps(steps, deadlineMs, plan.logger);
  if (failed.length === 0 && overdue === null) return;
  const parts_ = failed.map((f) => f.step);
  const message =
    overdue === null
      ? `the host stopped, but ${parts_.join(', ')} failed to close`
      : `the host did not stop within ${deadlineMs} ms (shutdown.grace ${graceMs} ms + shutdown.margin ${plan.marginMs} ms): gave up waiting for ${overdue}${parts_.length > 0 ? `; ${parts_.join(', ')} failed` : ''}`;
  throw new HostError('STOP_INCOMPLETE', message, { failed: parts_, overdue, deadlineMs }, { cause: failed[0]?.err });
}

/**
 * The stop's last delivery attempts, bounded by one attempt's timeout and by half of what is left
 * of the stop's deadline (the other half is the backend's, the server's and the rest's to close):
 * a receiver that hangs costs the stop that bound, never its deadline. Real time, like the deadline.
 */
async function lastAttempts(parts: HostParts, digests: readonly string[], endsAt: number, timeoutMs: number): Promise<void> {
  const ms = Math.max(0, Math.min(timeoutMs, (endsAt - Date.now()) / 2));
  const bound = new AbortController();
  const timer = setTimeout(() => bound.abort(), ms);
  try {
    await parts.backend.settleDeliveries(digests, bound.signal);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `steps` in order, each after the previous settled, a failure logged and passed over. Past
 * `deadlineMs` the step still waited for is given up on, and the steps after it are started at
 * once, not waited for (a server may still close, a backend still write its checkpoint): the stop
 * gives up waiting, not doing.
 */
async function runSteps(
  steps: readonly Step[],
  deadlineMs: number,
  logger: Logger,
): Promise<{ failed: Array<{ step: string; err: unknown }>; overdue: string | null }> {
  const failed: Array<{ step: string; err: unknown }> = [];
  const attempt = (step: Step): Promise<{ err: unknown } | null> =>
    Promise.resolve()
      .then(() => step.run())
      .then(
        () => null,
        (err: unknown) => {
          logger.error({ err, step: step.name }, `stop: ${step.name} failed to close`);
          return { err };
        },
      );
  let timer: NodeJS.Timeout | undefined;
  // A referenced timer: with a hung step and nothing else alive, the process must not just drain and exit 0.
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), deadlineMs)));
  try {
    for (let i = 0; i < steps.length; i++) {
      const step = steps[i]!;
      const outcome = await Promise.race([attempt(step), late]);
      if (outcome === 'late') {
        logger.error({ step: step.name, deadlineMs }, `stop: gave up waiting for ${step.name} after the stop's deadline`);
        for (const rest of steps.slice(i + 1)) void attempt(rest);
        return { failed, overdue: step.name };
      }
      if (outcome !== null) failed.push({ step: step.name, err: outcome.err });
    }
    return { failed, overdue: null };
  } finally {
    clearTimeout(timer);
  }
}
