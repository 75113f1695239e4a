import type { UntoldEnd } from '../contract/attempt.js';
import type { Backend, HeldCounts } from '../contract/backend.js';
import { type Clock, isoTime, type Timer } from '../contract/clock.js';
import type { Config } from '../contract/config.js';
import { DueTimer } from '../contract/due-heap.js';
import { formatDuration } from '../contract/duration.js';
import { isHostError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import type { Notification, NotifyStatus } from '../contract/notification.js';
import { type NotifySpec, wants } from '../contract/plugin-schema.js';
import type { Run } from '../contract/run.js';
import type { Notifier } from '../notify/notifier.js';
import type { Bus } from './bus.js';
import { DirectSends } from './direct-sends.js';
import { type AlertDetail, buildNotification, titleCase } from './notify.js';

export interface AlertsOptions {
  bus: Bus;
  clock: Clock;
  logger: Logger;
  newId: () => string;
  config(): Config;
  backend(): Backend;
  notifier: Notifier;
  /** The job's notify spec now, or as it was when the job was removed (undefined: no such job, or it notifies nothing). */
  notifySpec(job: string): NotifySpec | null | undefined;
}

/** Most telling first: a digest is labelled with the worst status it holds. */
const SEVERITY: readonly NotifyStatus[] = ['failed', 'missed', 'slow', 'retrying', 'canceled', 'recovered', 'succeeded'];

/**
 * A host that held a message back in a window another host opened looks for its digest this long
 * after the window's end: the opener, on time, takes the counts first, and this host finds none.
 */
const HELD_DIGEST_LAG_MS = 250;

/** How many runs the `slow` rule remembers as notified (a bound; entries go as runs finish). */
const SLOW_SENT_MAX = 100_000;

/**
 * Alert rules and storm control (SPEC §12), between what happens and what is sent: run outcomes
 * with `after: N` and `recovered`, the `slow` rule's timers, and the path every notification
 * takes out (destinations, the throttle per job and destination, a digest at the end of each
 * window, the record, the `notification` event). Kept state is bounded: timers of running
 * runs, and one window per job and destination.
 */
export class Alerts {
  readonly #o: AlertsOptions;
  readonly #slowTimer: DueTimer<string>;
  /** Running runs with a `slow` timer: run id → due time. */
  readonly #slowDue = new Map<string, number>();
  readonly #slowSent = new Set<string>();
  /** Runs whose `slowerThan` passed while they waited between attempts: told when the next attempt starts (bounded like `#slowSent`). */
  #slowParked = new Set<string>();
  /** Digest timers of the windows this host opened, with what their digest needs. */
  /** Digest timers, one per job and destination: of a window this host opened (`opened`), or one it held a message back in. */
  readonly #digests = new Map<string, { timer: Timer; job: string; destination: string; from: number; ms: number; opened: boolean }>();
  #stopped = false;
  /** Notifications that cannot wait for the backend (`send`'s `direct`). */
  readonly #direct: DirectSends;

  constructor(options: AlertsOptions) {
    this.#o = options;
    this.#slowTimer = new DueTimer(options.clock, (id) => this.#slowDueNow(id));
    this.#direct = new DirectSends(options);
    // A `slow` rule added or changed (a config edit, a plugin's) applies to the runs running now too.
    options.bus.on('job.updated', (e) => this.#slowRuleChanged(e.data.job));
  }

  /**
   * The job's runs running now, read on this rare event rather than tracked per run (the hot
   * path): each gets the rule as it stands (a run a retry waits for gets it at its next start).
   * In cluster mode every host arms them; the claim tells each run once.
   */
  #slowRuleChanged(job: string): void {
    const spec = this.#o.notifySpec(job);
    // A rule taken away: the timers armed stay, and tell nothing (the check reads the rule as it is then).
    if (!spec?.slowerThan || !wants(spec, 'slow')) return;
    const slowerThan = spec.slowerThan;
    this.#o
      .backend()
      .listRuns({ job, status: 'running', limit: 1000 })
      .then((page) => {
        for (const run of page.items) {
          if (this.#stopped || this.#slowSent.has(run.id) || this.#slowParked.has(run.id)) continue;
          const due = Date.parse(run.startedAt ?? run.createdAt) + slowerThan;
          if (this.#slowDue.get(run.id) === due) continue;
          this.#slowDue.set(run.id, due);
          this.#slowTimer.push(due, run.id);
        }
      })
      .catch((err: unknown) => this.#o.logger.warn({ err, job }, 'could not read the running runs for the edited slow rule'));
  }

  // ---------------------------------------------------------------- run rules

  /**
   * A run's outcome is counted in its job's state: `failed` from the N-th consecutive failure on,
   * `recovered` after a notified streak. Says (at once when nothing is to be told, the hot path)
   * true once what it tells is recorded (or nothing was due), false when that failed or waits for
   * a host that has the job (`untold`: see `UntoldEnd`).
   */
  settled(run: Run, outcome: NotifyStatus, untold?: UntoldEnd): boolean | Promise<boolean> {
    const spec = this.#o.notifySpec(run.job);
    // A job this host never had: an untold end waits for a host that has it.
    if (spec === undefined) return untold === undefined;
    if (!spec) return true;
    const state = untold ?? this.#o.backend().jobState(run.job);
    const threshold = spec.after ?? 1;
    // A backend that keeps no streak (undefined) holds nothing back. The streak counts ended runs:
    // a `failed` run is in it already, a `retrying` one would be the next (it is a failure notification too).
    // A job with no ended run yet has no streak: its first run's retry is the first failure.
    const held = outcome === 'failed' ? (state.failStreak ?? Infinity) < threshold : outcome === 'retrying' && (state.failStreak ?? 0) + 1 < threshold;
    // Recorded before (by the host that ended the run, before it stopped): not again.
    const notify = (status: NotifyStatus, detail?: AlertDetail): Promise<boolean> =>
      untold?.recorded.includes(status) ? Promise.resolve(true) : this.#notify(spec, run.job, run, status, detail);
    // A streak long enough to have been notified, ended by this success.
    const ended = state.endedStreak ?? 0;
    if (outcome === 'succeeded' && ended >= threshold && wants(spec, 'failed')) {
      // The recovery first: what its windows held back before it is the streak's, and its own run's
      // `succeeded` comes after it (held back in a window still open, it is that window's digest's).
      return notify('recovered', { streak: ended }).then(async (first) => (await notify('succeeded')) && first);
    }
    return held || notify(outcome);
  }

  /** An attempt started: arm the `slow` rule for its run (once per run, from its first start). */
  started(run: Run): void {
    // Every start passes here: the set is read only while it holds a run (a retry's delay outlived `slowerThan`).
    if (this.#slowParked.size > 0 && this.#slowParked.delete(run.id)) {
      // Its `slowerThan` passed while it waited for this attempt: it is slow now that it runs again.
      this.#slowSent.delete(run.id);
      this.#slowDue.set(run.id, this.#o.clock.now());
      this.#slowTimer.push(this.#o.clock.now(), run.id);
      return;
    }
    const spec = this.#o.notifySpec(run.job);
    if (!spec?.slowerThan || !wants(spec, 'slow') || this.#slowDue.has(run.id) || this.#slowSent.has(run.id)) return;
    const due = Date.parse(run.startedAt ?? isoTime(this.#o.clock.now())) + spec.slowerThan;
    this.#slowDue.set(run.id, due);
    this.#slowTimer.push(due, run.id);
  }

  finished(run: Run): void {
    this.#slowDue.delete(run.id);
    this.#slowSent.delete(run.id);
    if (this.#slowParked.size > 0) this.#slowParked.delete(run.id);
  }

  /** A run's `slowerThan` has passed: unless it finished meanwhile, it is checked (once). */
  #slowDueNow(id: string): void {
    const due = this.#slowDue.get(id);
    // An edit of the rule moved it later (this timer is the earlier one's), or it is off.
    if (due === undefined || due > this.#o.clock.now()) return;
    this.#slowDue.delete(id);
    if (this.#slowSent.size >= SLOW_SENT_MAX) this.#slowSent.clear();
    this.#slowSent.add(id);
    void this.#slow(id);
  }

  async #slow(id: string): Promise<void> {
    try {
      const run = await this.#o.backend().getRun(id);
      if (!run || !this.#running(run)) return;
      const spec = this.#o.notifySpec(run.job);
      if (!spec || !wants(spec, 'slow')) return;
      // Once per run for the cluster: its retry (or a takeover) may have run on another host, which told it.
      if (!(await this.#o.backend().claimSlow(run.job, id))) return;
      // It ended while the claim was made durable (here or on another host: the run says): no
      // longer running, so not slow (its end's own notification went first, and a `slow` after it
      // would open again what that one resolved).
      const now = await this.#o.backend().getRun(id);
      if (!now || !this.#running(now)) return;
      const elapsedMs = this.#o.clock.now() - Date.parse(run.startedAt ?? run.createdAt);
      void this.#notify(spec, run.job, run, 'slow', { elapsedMs });
    } catch (err) {
      this.#o.logger.error({ err, runId: id }, 'could not check a slow run');
    }
  }

  /**
   * Whether a run past its `slowerThan` is running now. One between two attempts (a retry's delay)
   * is still unfinished, so still slow once it runs again: parked, told when its next attempt starts.
   */
  #running(run: Run): boolean {
    if (run.status === 'queued' && run.attempts.length > 0) {
      if (this.#slowParked.size >= SLOW_SENT_MAX) this.#slowParked = new Set();
      this.#slowParked.add(run.id);
      return false;
    }
    return run.status === 'running';
  }

  /** `missed`: a schedule fire of `job` at `fireAt` started no run in time. */
  missed(job: string, fireAt: number, reason: string): void {
    const spec = this.#o.notifySpec(job);
    if (spec) void this.#notify(spec, job, null, 'missed', { fireAt: isoTime(fireAt), reason });
  }

  /**
   * Builds and sends a notification; resolves (never rejects) once it is recorded, or held back
   * (true), or could not be (false): a recovery after taking what its windows held.
   */
  #notify(spec: NotifySpec, job: string, run: Run | null, status: NotifyStatus, detail?: AlertDetail): Promise<boolean> {
    let n: Notification | null;
    try {
      n = buildNotification(spec, { job, run }, status, isoTime(this.#o.clock.now()), this.#o.newId(), detail);
    } catch (err) {
      // Built the same way however often it is tried: nothing to try again.
      this.#o.logger.error({ err, job }, 'could not build the notification');
      return Promise.resolve(true);
    }
    if (!n) return Promise.resolve(true);
    const names = this.#o.notifier.destinationsFor(n, spec.to);
    if (status !== 'recovered') return this.send(n, names);
    // A recovery is never held back: it is what closes the incident the failures opened. What its
    // windows held before it goes with it, not in a digest after it (a failing digest after the
    // recovery would open the incident again, on PagerDuty, for a job that is healthy).
    const recovered = n;
    return this.#foldHeld(job, names)
      .then((held) => {
        // Its id, which orders it among its incident's notifications, is taken as it is sent: a
        // failure recorded while the windows were read is before it.
        recovered.id = this.#o.newId();
        tellHeld(recovered, held);
      })
      .catch((err: unknown) => this.#o.logger.warn({ err, job }, 'could not read what storm control held back'))
      .then(() => this.send(recovered, names, { throttle: false }));
  }

  /** Takes what the windows of `job` to `names` hold (their digests then have nothing to send), the largest count of each status. */
  async #foldHeld(job: string, names: readonly string[]): Promise<HeldCounts | undefined> {
    // Whatever the throttle is now: a window opened before an edit to 0 still holds what it held.
    if (names.length === 0) return undefined;
    const backend = this.#o.backend();
    return largest(await Promise.all(names.map((name) => backend.takeHeld(windowKey(job, name)))));
  }

  // ---------------------------------------------------------------- the way out

  /**
   * Sends a notification to `names`: each destination whose window (job and destination) is
   * open gets a delivery; the others count it into their digest. Then it is recorded (deliveries
   * and all, `throttled` naming the destinations it was held back from) and emitted, unless it
   * was held back from every destination: then the counts are all that is kept of it. Host
   * alerts and digests pass the throttle by (`throttle: false`).
   */
  send(n: Notification, names: readonly string[], options: { throttle?: boolean; direct?: boolean } = {}): Promise<boolean> {
    if (options.direct) return this.#record(n, names, [], true);
    // The end of a host alert whose start went out directly: to each destination the start is still
    // being sent to, once that delivery ends (a receiver never gets the resolve before its
    // trigger), as a record of its own; to the others at once.
    const starting = n.condition === undefined ? undefined : this.#direct.sending(n.condition);
    const waiting = names.filter((name) => starting?.has(name));
    if (waiting.length > 0) {
      for (const name of waiting) void starting!.get(name)!.then(() => this.#record({ ...n, id: this.#o.newId() }, [name], []));
      const now = names.filter((name) => !waiting.includes(name));
      return now.length > 0 ? this.#record(n, now, []) : Promise.resolve(true);
    }
    const ms = this.#o.config().notifications.throttle;
    if (ms === 0 || options.throttle === false || names.length === 0) return this.#record(n, names, []);
    const backend = this.#o.backend();
    // What the windows this message opens took over from windows before them that no digest told
    // (their only holder was killed): the message tells it.
    const leftover: HeldCounts[] = [];
    return Promise.all(
      names.map((name) =>
        backend.throttle(windowKey(n.job, name), ms, n.status).then(
          (left) => {
            // Opened here, or held back here: either way this host sees to the window's digest (the
            // host that opened it may be gone by its end, a stop or a kill; one digest takes the counts).
            if (typeof left === 'number') {
              this.#armDigest(n.job, name, ms, left, false, HELD_DIGEST_LAG_MS);
              return false;
            }
            leftover.push(left);
            this.#armDigest(n.job, name, ms, ms, true);
            return true;
          },
          // Storm control out of reach (Redis): send rather than lose the message.
          () => true,
        ),
      ),
    )
      .then((open) => {
        // Held back from every destination it had: counted into their digests, and that is all.
        // A storm of 10,000 failures is then 10,000 counts, not 10,000 records and events.
        if (!open.includes(true)) return true;
        tellHeld(n, largest(leftover));
        return this.#record(
          n,
          names.filter((_, i) => open[i]),
          names.filter((_, i) => !open[i]),
        );
      })
      .catch((err: unknown) => {
        this.#o.logger.error({ err, job: n.job }, 'could not send the notification');
        return false;
      });
  }

  /**
   * Records `n` and emits it; resolves (never rejects) once the record is durable (true), or
   * failed (false). `direct`: sent by this host without the backend, nothing recorded (see `DirectSends`).
   */
  #record(n: Notification, names: readonly string[], throttled: readonly string[], direct = false): Promise<boolean> {
    n.deliveries = this.#o.notifier.deliveries(n, names);
    if (throttled.length > 0) n.throttled = [...throttled];
    if (direct) this.#direct.send(n);
    const recorded = direct
      ? Promise.resolve(true)
      : this.#o
          .backend()
          .addNotification(n)
          .then(
            () => true,
            (err: unknown) => {
              // Written, and delivered, but not yet on the replicas `waitReplicas` asks for: a failover now could lose it.
              if (isHostError(err) && err.code === 'BACKEND_NOT_REPLICATED') {
                this.#o.logger.warn({ err, job: n.job, runId: n.runId }, 'the notification was recorded, but not confirmed on the replicas in time');
                return true;
              }
              this.#o.logger.error({ err, job: n.job, runId: n.runId }, 'could not record the notification');
              return false;
            },
          );
    this.#o.bus.emit('notification', { ...n, deliveries: n.deliveries.map((d) => ({ ...d })) });
    return recorded;
  }

  /**
   * A timer for the digest of the window of `job` and `destination`, which ends in `left` ms
   * (`lag` later: a host that did not open it lets the opener take the counts first), unless this
   * host has one already for that key (which then counts as its own if it opened this window).
   */
  #armDigest(job: string, destination: string, ms: number, left: number, opened: boolean, lag = 0): void {
    const key = windowKey(job, destination);
    const armed = this.#digests.get(key);
    if (armed) armed.opened ||= opened;
    if (this.#stopped || armed) return;
    const from = this.#o.clock.now() - (ms - left);
    const timer = this.#o.clock.setTimer(left + lag, () => {
      const d = this.#digests.get(key);
      this.#digests.delete(key);
      this.#digest(job, destination, from, ms, false, d?.opened ?? opened).catch((err: unknown) =>
        this.#o.logger.error({ err, job, destination }, 'could not send a digest'),
      );
    });
    this.#digests.set(key, { timer, job, destination, from, ms, opened });
  }

  /**
   * The end of a window: what was held back in it goes out as one digest, which opens the next
   * window itself (unless `last`: the host is stopping, and the digest goes before the window ends).
   * Resolves with the digest's id once it is recorded (undefined: nothing was held back).
   */
  async #digest(job: string, destination: string, from: number, ms: number, last: boolean, opened = true): Promise<string | undefined> {
    const backend = this.#o.backend();
    // At a window's end: only once it has ended (a timer a little early, or late to a window that
    // another host's digest already followed with the next one, looks again at that one's end).
    const taken = last ? await backend.takeHeld(windowKey(job, destination)) : await backend.takeEnded(windowKey(job, destination));
    if (typeof taken === 'number') {
      this.#armDigest(job, destination, ms, taken, opened, HELD_DIGEST_LAG_MS);
      return undefined;
    }
    const held = taken;
    if (total(held) === 0 || (this.#stopped && !last)) return undefined;
    // The digest is the window's one message: it takes the next window (counted there if another
    // message got it first), and what the next window was opened with is the same ended window's.
    const worst = SEVERITY.find((s) => (held[s] ?? 0) > 0)!;
    // The next window is as long as the config says now (a live edit of `throttle` applies from
    // the next window on; `0`: none is opened).
    const next = this.#o.config().notifications.throttle;
    if (!last && next > 0) {
      const left = await backend.throttle(windowKey(job, destination), next, worst).catch(() => ({}));
      if (typeof left === 'number') this.#armDigest(job, destination, next, left, false, HELD_DIGEST_LAG_MS);
      else {
        for (const [s, c] of Object.entries(left) as [NotifyStatus, number | undefined][]) held[s] = (held[s] ?? 0) + (c ?? 0);
        this.#armDigest(job, destination, next, next, true);
      }
    }
    const count = total(held);
    // Labelled with the worst status it holds. To PagerDuty, one that holds a success of a job now
    // well is a resolve (a trigger would open again the incident the job's own success closed):
    // its last run succeeded, and nothing held may have come after that success — no `missed`, and
    // no `retrying` or `slow` while a run of the job is still under way (one of its own).
    const well =
      (held.succeeded ?? 0) > 0 &&
      !held.missed &&
      this.#o.notifier.ordered(destination) &&
      backend.jobState(job).lastRun?.status === 'succeeded' &&
      !((held.retrying || held.slow) && backend.activeRuns(job).active > 0);
    const status = well ? 'succeeded' : SEVERITY.find((s) => (held[s] ?? 0) > 0)!;
    const spec = this.#o.notifySpec(job) ?? {};
    const now = this.#o.clock.now();
    const n: Notification = {
      id: this.#o.newId(),
      job,
      runId: '',
      status,
      title: `${spec.title && !spec.title.includes('{{') ? spec.title : titleCase(job)}: ${count} notification${count === 1 ? '' : 's'} held back`,
      message: `Storm control held back ${count} notification${count === 1 ? '' : 's'} of job ${job} for ${destination} in the last ${formatDuration(ms)}: ${describeHeld(held)}.`,
      priority:
        status === 'failed' || status === 'missed' || status === 'slow' || status === 'retrying'
          ? (spec.failurePriority ?? 'high')
          : (spec.priority ?? 'medium'),
      tags: [...(spec.tags ?? [])],
      at: isoTime(now),
      rule: 'digest',
      deliveries: [],
      held: { count, statuses: held, from: isoTime(from), to: isoTime(now) },
    };
    await this.#record(n, [destination], []);
    return n.id;
  }

  /** Stops the timers: no `slow` and no new window from now on (the open windows' digests wait for `flushDigests`). */
  stop(): void {
    this.#stopped = true;
    this.#slowTimer.close();
    for (const d of this.#digests.values()) d.timer.cancel();
    this.#direct.stop();
  }

  /**
   * The host is stopping, its runs done: the windows it opened record their digests now, so a
   * stop in the middle of a storm does not lose what was held back. Resolves with the ids of
   * the digests recorded (durable by then): the stop gives their deliveries an attempt before
   * the backend closes (`Backend.settleDeliveries`); what that bound cuts short goes after the
   * next start.
   */
  async flushDigests(): Promise<string[]> {
    // Not the windows it only held messages back in: their opener (or a host after it) tells them.
    const open = [...this.#digests.values()].filter((d) => d.opened);
    this.#digests.clear();
    const ids = await Promise.all(
      open.map((d) =>
        this.#digest(d.job, d.destination, d.from, d.ms, true).catch((err: unknown) => {
          this.#o.logger.error({ err, job: d.job, destination: d.destination }, 'could not send a digest at stop');
          return undefined;
        }),
      ),
    );
    return ids.filter((id): id is string => id !== undefined);
  }
}

function windowKey(job: string, destination: string): string {
  return `${job}:${destination}`;
}

function describeHeld(held: HeldCounts): string {
  return SEVERITY.filter((s) => (held[s] ?? 0) > 0)
    .map((s) => `${held[s]} ${s}`)
    .join(', ');
}

const total = (held: HeldCounts): number => Object.values(held).reduce((a: number, b) => a + (b ?? 0), 0);

/** The counts of several windows (of one job, one per destination) as one: the largest of each status. */
function largest(all: readonly HeldCounts[]): HeldCounts | undefined {
  const merged: HeldCounts = {};
  for (const held of all) {
    for (const [status, count] of Object.entries(held) as [NotifyStatus, number | undefined][]) {
      merged[status] = Math.max(merged[status] ?? 0, count ?? 0);
    }
  }
  return total(merged) === 0 ? undefined : merged;
}

/** Ends `n`'s message with what storm control held back before it, if anything. */
function tellHeld(n: Notification, held: HeldCounts | undefined): void {
  if (!held) return;
  const count = total(held);
  n.message += ` Storm control held back ${count} notification${count === 1 ? '' : 's'} before it: ${describeHeld(held)}.`;
}
