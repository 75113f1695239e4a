import type { Job, JobsOptions, Queue } from 'bullmq';
import type { DeliveryOutcome } from '../contract/attempt.js';
import type { BackendHooks, NotificationQuery } from '../contract/backend.js';
import { type Clock, isoTime, settlesWithin, whenAborted } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import { type Delivery, deliveryOpen, type Notification } from '../contract/notification.js';
import type { Page } from '../contract/run.js';
import type { ClusterHost } from '../contract/views.js';
import type { Connections } from './connections.js';
import {
  afterAttempt,
  type DeliveryJobData,
  type DeliveryWorker,
  deliveryWorkerClass,
  destinationQueue,
  jobId,
  openBefore,
  RetryLater,
} from './delivery-jobs.js';
import { Every } from './every.js';
import { type ClusterKeys, DELIVERY_QUEUE } from './keys.js';
import { bullmq } from './libraries.js';
import { NotificationRecords, recordFromHash } from './notification-records.js';
import { replicated } from './replication.js';
import type { ScriptedRedis } from './scripts.js';

/**
 * Delivery of notifications in cluster mode: a BullMQ queue of deliveries per destination name
 * (`<prefix>:__deliveries.<name>`), with a Worker on each host whose config has that destination
 * (its own concurrency, apart from the runs' dispatcher, so a slow receiver holds no run; at most
 * half of `notifications.concurrency` per destination, so one that hangs holds only its own), and
 * `<prefix>:__deliveries` itself, which every host works, for a destination no live host has (it
 * is dead at once there, DESTINATION_NOT_FOUND) and for the jobs of an older version. A BullMQ job is one series of attempts of one
 * delivery, its id `<delivery id>.<series>`, so a repeated add is a no-op and each attempt is made
 * by one host. Each attempt's outcome is recorded (`NotificationRecords.update`) before the job
 * moves on: `retrying` fails the attempt with the engine's delay (the Worker's backoffStrategy
 * returns it), `delivered` and `dead` complete the job. A host killed mid-attempt loses its lock;
 * BullMQ's stalled check hands the job to another host, which makes the attempt again (same id).
 */

/** After the attempts were aborted at close, the worker gets this long to hand its jobs back (unless told otherwise). */
const CLOSE_SETTLE_MS = 5000;
/** How often the count of open deliveries (read synchronously, for metrics) is refreshed. */
const OPEN_REFRESH_MS = 1000;
/** A job that failed for another reason than its attempt (Redis out of reach while recording) is tried again this soon. */
const ERROR_RETRY_MS = 1000;
/** A job found early (a stalled retry taken over before its time) waits unless it is due within this. */
const EARLY_SLACK_MS = 1000;
/** How often a stopping host reads whether the deliveries it waits for have had their attempt. */
const SETTLE_POLL_MS = 50;
/**
 * A destination's queue that no live host has listed for this long is worked by every host, whose
 * config lacks it: its deliveries end dead (DESTINATION_NOT_FOUND), as on a single host, rather
 * than wait for ever. Longer than a rolling restart's gap, so a restart of the one host that has
 * it does not kill them.
 */
const ORPHAN_AFTER_MS = 30_000;
/** How often the names of the destination queues are read again (to find orphans). */
const QUEUES_READ_MS = 5_000;
/** BullMQ's attempts of a delivery's job: unbounded in practice; the engine says when it is dead. */
const JOB_ATTEMPTS = 1_000_000;

export interface DeliveriesOptions {
  keys: ClusterKeys;
  connections: Connections;
  /** Fail-fast: reads and the checks of a request. */
  producer: ScriptedRedis;
  /** Patient: adds, records and BullMQ's Worker. */
  commands: ScriptedRedis;
  clock: Clock;
  logger: Logger;
  hostId: string;
  /** Attempts in flight at once on this host (`notifications.concurrency`). */
  concurrency: number;
  lockDuration: number;
  stalledInterval: number;
  hooks: () => BackendHooks;
  /** The live hosts as the heartbeat last read them (this one included). */
  hosts: () => readonly ClusterHost[];
  /** ORPHAN_AFTER_MS unless given (tests). */
  orphanAfterMs?: number;
  /** The fence of a notification of a run's end whose mark this host holds (`untold.ts`), if it is one. */
  fence?: (n: Notification) => { runId: string; host: string } | undefined;
}

type Reply = [Error | null, unknown];
type Transaction = ScriptedRedis & { exec(): Promise<Reply[] | null> };

export class Deliveries {
  readonly #o: DeliveriesOptions;
  readonly #records: NotificationRecords;
  readonly #refresh: Every;
  /** BullMQ queues by name, made on first use. */
  readonly #queues = new Map<string, Queue>();
  /** This host's workers by queue name: the shared queue's, and one per destination its config has. */
  readonly #workers = new Map<string, DeliveryWorker>();
  #started = false;
  /** Whether the older version's destination queues were looked for (once). */
  #scanned = false;
  /** This host's destinations and every live host's, as `#follow` last read them (each second). */
  #mine: ReadonlySet<string> | undefined;
  #listed: ReadonlySet<string> = new Set();
  /** Destination queues in Redis (`keys.deliveryQueues`), read every QUEUES_READ_MS, and since when each one no live host listed. */
  #known: readonly string[] = [];
  /** Of `#known`, the queues that no live host lists and that still hold jobs (as last read). */
  #unlistedBusy: ReadonlySet<string> = new Set();
  #knownReadAt = -Infinity;
  #reading = false;
  readonly #unlistedSince = new Map<string, number>();
  /** Workers `#follow` let go, closing: awaited (and halted) by `close()` too. */
  readonly #retiring = new Set<DeliveryWorker>();
  /** The attempts in flight here (their delivery's id), aborted at close. */
  readonly #inFlight = new Map<AbortController, string>();
  #open = 0;
  #closed = false;

  constructor(options: DeliveriesOptions) {
    this.#o = options;
    this.#records = new NotificationRecords(options.producer, options.keys, options.connections);
    this.#refresh = new Every(
      options.clock,
      OPEN_REFRESH_MS,
      () => {
        this.#follow();
        return this.refreshOpen();
      },
      options.logger,
      'could not count the open deliveries',
    );
  }

  /** Deliveries waiting for an attempt on every host, as last read (every second). */
  get open(): number {
    return this.#open;
  }

  async refreshOpen(): Promise<void> {
    this.#open = await this.#records.openCount();
  }

  /** The queue of deliveries, on the patient connection (made on first use, after the connections opened). */
  #queue(name: string = DELIVERY_QUEUE): Queue {
    let queue = this.#queues.get(name);
    if (!queue) {
      queue = new (bullmq().Queue)(name, { connection: this.#o.commands, prefix: this.#o.keys.prefix });
      queue.on('error', (err) => this.#o.logger.debug({ err }, 'BullMQ delivery queue error'));
      this.#queues.set(name, queue);
    }
    return queue;
  }

  /** Starts this host's delivery workers and the count of open deliveries. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#follow();
    void this.refreshOpen().catch(() => undefined);
    this.#refresh.start();
  }

  /**
   * Works the shared queue, the queue of each destination this host's config has now (read again
   * every second with the count of open deliveries: a live edit that adds a destination starts its
   * worker, one that removes it lets its worker finish what it holds and close), and the queue of
   * each destination no live host has listed for ORPHAN_AFTER_MS (its deliveries end dead here).
   */
  #follow(): void {
    if (!this.#started || this.#closed) return;
    const mine = new Set(this.#o.hooks().describe().destinations ?? []);
    const listed = new Set(mine);
    for (const h of this.#o.hosts()) for (const d of h.destinations ?? []) listed.add(d);
    this.#mine = mine;
    this.#listed = listed;
    const now = this.#o.clock.now();
    if (now - this.#knownReadAt >= QUEUES_READ_MS && !this.#reading) {
      this.#knownReadAt = now;
      this.#reading = true;
      void this.#readQueues(listed, now).finally(() => (this.#reading = false));
    }
    const orphanAfter = this.#o.orphanAfterMs ?? ORPHAN_AFTER_MS;
    const orphans: string[] = [];
    for (const d of this.#known) {
      if (listed.has(d)) this.#unlistedSince.delete(d);
      else if (!this.#unlistedSince.has(d)) this.#unlistedSince.set(d, now);
      else if (now - this.#unlistedSince.get(d)! >= orphanAfter && this.#unlistedBusy.has(d)) orphans.push(d);
    }
    const names = [DELIVERY_QUEUE, ...[...mine, ...orphans].map(destinationQueue)];
    for (const name of names) if (!this.#workers.has(name)) this.#workers.set(name, this.#worker(name));
    for (const [name, worker] of this.#workers) {
      if (names.includes(name)) continue;
      this.#workers.delete(name);
      this.#retiring.add(worker);
      void worker
        .close()
        .catch(() => undefined)
        .finally(() => this.#retiring.delete(worker));
    }
  }

  /**
   * The destination queues in Redis (the set; at the first read also the queues an older version
   * made, found by their BullMQ keys), and which of those no live host lists still hold jobs: an
   * empty one leaves the set (no worker anywhere for it), a busy one is worked once it has been
   * unlisted for ORPHAN_AFTER_MS.
   */
  async #readQueues(listed: ReadonlySet<string>, now: number): Promise<void> {
    const { producer, keys } = this.#o;
    try {
      if (!this.#scanned) {
        this.#scanned = true;
        const found = new Set<string>();
        const head = `${keys.prefix}:${DELIVERY_QUEUE}.`;
        let cursor = '0';
        do {
          // `:id` is the counter every add raises: a queue that ever had a job has it.
          const [next, batch] = await producer.scan(cursor, 'MATCH', `${head}*:id`, 'COUNT', 1000);
          cursor = next;
          for (const key of batch) found.add(key.slice(head.length, -':id'.length));
        } while (cursor !== '0');
        if (found.size > 0) await producer.sadd(keys.deliveryQueues, ...found);
      }
      const names = await producer.smembers(keys.deliveryQueues);
      // This host's own destinations are known in Redis (added back if another host forgot one while
      // this host was away): a delivery made while it restarts then waits for it (`#queuesOf`).
      const missing = [...(this.#mine ?? [])].filter((d) => !names.includes(d));
      if (missing.length > 0) {
        await producer.sadd(keys.deliveryQueues, ...missing);
        names.push(...missing);
      }
      // A name no longer in the set starts its unlisted time afresh if it comes back.
      for (const d of this.#unlistedSince.keys()) if (!names.includes(d)) this.#unlistedSince.delete(d);
      const busy = new Set<string>();
      const orphanAfter = this.#o.orphanAfterMs ?? ORPHAN_AFTER_MS;
      for (const d of names) {
        if (listed.has(d)) continue;
        const counts = await this.#queue(destinationQueue(d)).getJobCounts('wait', 'delayed', 'active', 'prioritized');
        const held = Object.values(counts).reduce((a, b) => a + b, 0);
        if (held > 0) busy.add(d);
        // Empty and long unlisted: forgotten (a host that lists it again adds it back with its next delivery).
        else if (now - (this.#unlistedSince.get(d) ?? now) >= orphanAfter) await producer.srem(keys.deliveryQueues, d);
      }
      this.#known = names;
      this.#unlistedBusy = busy;
    } catch (err) {
      this.#o.logger.debug({ err }, 'could not read the delivery queues');
    }
  }

  #worker(name: string): DeliveryWorker {
    const o = this.#o;
    const worker = new (deliveryWorkerClass())(name, (job, token) => this.#process(job, token), {
      connection: o.commands,
      prefix: o.keys.prefix,
      autorun: false,
      name: o.hostId,
      // One destination holds at most half of the host's slots: a receiver that hangs until the timeout holds only its own.
      concurrency: name === DELIVERY_QUEUE ? o.concurrency : Math.max(1, Math.ceil(o.concurrency / 2)),
      lockDuration: o.lockDuration,
      stalledInterval: o.stalledInterval,
      // A host killed mid-attempt is not a reason to give up a delivery: the engine's retry policy is.
      maxStalledCount: 1000,
      runRetryDelay: ERROR_RETRY_MS,
      settings: {
        // The engine decided the delay (its policy, jitter, Retry-After) when the attempt failed.
        backoffStrategy: (_made: number, _type?: string, err?: Error) => (err instanceof RetryLater ? err.delayMs : ERROR_RETRY_MS),
      },
    });
    worker.on('error', (err) => o.logger.debug({ err }, 'BullMQ delivery worker error'));
    worker.run().catch((err: unknown) => o.logger.warn({ err }, 'the delivery worker stopped'));
    return worker;
  }

  /** BullMQ's options for one series of a delivery: its id, when, and retries decided by the engine. */
  #jobOptions(d: Delivery, series: string): JobsOptions {
    const due = d.nextAt ? Date.parse(d.nextAt) : Number.NaN;
    return {
      jobId: jobId(d.id, series),
      delay: Number.isFinite(due) ? Math.max(0, due - this.#o.clock.now()) : 0,
      attempts: JOB_ATTEMPTS,
      backoff: { type: 'delivery' },
      stackTraceLimit: 1,
      // The state lives in the notification's record; BullMQ's finished jobs are not needed.
      removeOnComplete: true,
      removeOnFail: { count: 1000 },
    };
  }

  /** Queues BullMQ jobs for `deliveries` (open ones) in `series` on `multi`. */
  #queueJobs(multi: Transaction, notificationId: string, deliveries: readonly Delivery[], series: string, queues: ReadonlyMap<string, string>): void {
    for (const d of deliveries) {
      if (!deliveryOpen(d)) continue;
      const data: DeliveryJobData = { n: notificationId, d: d.id, s: series };
      const opts = this.#jobOptions(d, series);
      const queue = queues.get(d.destination) ?? DELIVERY_QUEUE;
      if (queue !== DELIVERY_QUEUE) multi.sadd(this.#o.keys.deliveryQueues, d.destination);
      // Queued on the MULTI synchronously; its own promise settles with the EXEC (errors are read there).
      new (bullmq().Job)(this.#queue(queue), 'delivery', data, opts, opts.jobId).addJob(multi as never).catch(() => undefined);
    }
  }

  async #exec(multi: Transaction): Promise<Reply[]> {
    const replies = await multi.exec();
    if (!replies) throw new Error('the delivery transaction was discarded');
    for (const [err] of replies) if (err) throw err;
    return replies;
  }

  /** Records `n` with its deliveries and queues them, in one MULTI; waits for Redis rather than lose it. */
  async add(n: Notification): Promise<void> {
    const client = (await this.#queue().getBackend().client) as unknown as ScriptedRedis;
    const queues = await this.#queuesOf(n.deliveries);
    const multi = client.multi() as unknown as Transaction;
    this.#records.add(multi, n, this.#o.fence?.(n));
    // Queued whatever the fence says: a delivery whose notification was not recorded ends at its first look (`#process`).
    this.#queueJobs(multi, n.id, n.deliveries, '0', queues);
    const [[, added]] = (await this.#exec(multi)) as [Reply, ...Reply[]];
    if ((added as unknown[])[0] === -1) {
      this.#o.logger.info({ notification: n.id, job: n.job, runId: n.runId }, 'not recorded: another host took the end of the run over and tells it');
      return;
    }
    await this.#records.trim(client, added as unknown[]);
    await replicated(this.#o.connections, client);
  }

  get(id: string): Promise<Notification | undefined> {
    return this.#records.get(id).then((r) => r?.notification);
  }

  list(query: NotificationQuery): Promise<Page<Notification>> {
    return this.#records.list(query);
  }

  openBefore(destination: string, before: string, incident: string, opens?: boolean): Promise<Notification[]> {
    return openBefore(this.#queue(destinationQueue(destination)), this.#records, destination, before, incident, opens);
  }

  /** See `Backend.redeliver`: a new series of each chosen delivery, recorded and queued in one MULTI. */
  async redeliver(id: string, destination?: string): Promise<Notification | undefined> {
    const found = await this.#records.get(id);
    const chosen = found?.notification.deliveries.filter((d) => destination === undefined || d.destination === destination) ?? [];
    if (!found || chosen.length === 0) return undefined;
    const series = await this.#records.nextSeries(id);
    const now = isoTime(this.#o.clock.now());
    // The last failure stays on record (as the local backend keeps it) until an attempt of the new series says otherwise.
    const fresh = chosen.map((d): Delivery => ({ ...d, status: 'pending', attempts: 0, deliveredAt: null, nextAt: now }));
    const refused = this.#o.connections.unavailable();
    if (refused) throw refused;
    let replies: Reply[];
    try {
      const client = (await this.#queue().getBackend().client) as unknown as ScriptedRedis;
      const queues = await this.#queuesOf(fresh);
      const multi = client.multi() as unknown as Transaction;
      this.#records.redeliver(multi, id, series, fresh);
      this.#queueJobs(multi, id, fresh, series, queues);
      replies = await this.#exec(multi);
      await replicated(this.#o.connections, client);
    } catch (err) {
      throw this.#o.connections.toHostError(err);
    }
    const hash = replies[0]![1] as string[] | null;
    const notification = hash ? recordFromHash(hash)?.notification : undefined;
    if (!notification) return undefined;
    // Told first: an attempt of the new series may end while the stale jobs are dropped.
    const hooks = this.#o.hooks();
    for (const d of notification.deliveries) if (fresh.some((f) => f.id === d.id)) this.#changed(hooks, notification, d);
    // The jobs of the series just ended are stale: drop those not in flight (one in flight records nothing),
    // from its destination's queue or the shared one (no live host had it, or an older version queued it).
    const stale = chosen.flatMap((d) => {
      const old = found.series.get(d.id);
      return old === undefined
        ? []
        : [destinationQueue(d.destination), DELIVERY_QUEUE].map((name) =>
            this.#queue(name)
              .remove(jobId(d.id, old))
              .catch(() => undefined),
          );
    });
    await Promise.all(stale);
    return notification;
  }

  #changed(hooks: BackendHooks, n: Notification, d: Delivery): void {
    try {
      hooks.deliveryChanged(n, d);
    } catch (err) {
      this.#o.logger.warn({ err, notification: n.id, delivery: d.id }, 'deliveryChanged threw');
    }
  }

  /** One attempt of one delivery (a BullMQ job's turn), its outcome recorded before the job moves on. */
  async #process(job: Job<DeliveryJobData>, token?: string): Promise<void> {
    const { n: notificationId, d: deliveryId, s: series } = job.data;
    const o = this.#o;
    const found = await this.#records.get(notificationId, o.commands);
    const current = found?.notification.deliveries.find((d) => d.id === deliveryId);
    // Gone, overtaken by a redeliver, or already ended (its end recorded just before a crash): nothing to do.
    if (!found || !current || found.series.get(deliveryId) !== series || !deliveryOpen(current)) return;
    const due = current.status === 'retrying' && current.nextAt ? Date.parse(current.nextAt) : 0;
    if (due - o.clock.now() > EARLY_SLACK_MS && token !== undefined) {
      // A retry whose job was taken over (stalled) before BullMQ delayed it: wait for its time.
      await job.moveToDelayed(due, token);
      throw new (bullmq().DelayedError)();
    }
    if (job.queueName !== DELIVERY_QUEUE && token !== undefined && !this.#isMine(current.destination) && this.#isListed(current.destination)) {
      // Taken as an orphan, and its destination's host is back: left for that host (this worker closes within a second).
      await job.moveToDelayed(o.clock.now() + EARLY_SLACK_MS, token);
      throw new (bullmq().DelayedError)();
    }
    if (job.queueName === DELIVERY_QUEUE && this.#isListed(current.destination)) {
      // Queued here while no live host was heard to have it (or by an older version): a host that
      // has it now (this one too) makes it from its destination's queue, where the order of its
      // incident is kept (the same job id there: a repeat adds nothing).
      await this.#queue(destinationQueue(current.destination)).add('delivery', job.data, this.#jobOptions(current, series));
      await o.commands.sadd(o.keys.deliveryQueues, current.destination);
      return;
    }
    const attempt = current.attempts + 1;
    const controller = new AbortController();
    this.#inFlight.set(controller, deliveryId);
    let outcome: DeliveryOutcome | undefined;
    try {
      outcome = await Promise.race([
        o.hooks().deliver({ notification: found.notification, delivery: current, attempt }, controller.signal),
        whenAborted(controller.signal).then(() => undefined),
      ]);
    } finally {
      this.#inFlight.delete(controller);
    }
    // Cut short by this host's close: back to waiting at once, for any host (the attempt is made again).
    // An outcome other than delivered that arrives once the signal is aborted is the abort's doing
    // (a deliver ends its request and answers retrying), not the receiver's: it is not recorded.
    if (!outcome || (controller.signal.aborted && outcome.status !== 'delivered')) throw new RetryLater(0, 'the host closed during the attempt');
    if (outcome.status === 'waiting') {
      // No attempt made (an earlier delivery of its incident is open): looked at again later, no BullMQ attempt spent.
      if (token === undefined) throw new RetryLater(outcome.delayMs, 'waiting for an earlier delivery of its incident');
      await job.moveToDelayed(o.clock.now() + outcome.delayMs, token);
      throw new (bullmq().DelayedError)();
    }
    const next = afterAttempt(current, outcome, attempt, o.clock.now());
    // Only while this host holds the job: once its lock lapsed (cut off from Redis), the host that
    // took the job over makes the attempt again, and this late outcome must not overwrite its own.
    const lock = token === undefined ? undefined : { key: o.keys.queue(job.queueName, `${job.id}:lock`), token };
    const recorded = await this.#records.update(o.commands, notificationId, series, next, lock);
    if (!recorded) {
      o.logger.info(
        { notification: notificationId, delivery: deliveryId, host: o.hostId },
        'the outcome of the delivery attempt was not recorded: a redeliver overtook it, or another host took its job over (its lock lapsed)',
      );
      return;
    }
    const mine = recorded.deliveries.find((d) => d.id === deliveryId) ?? next;
    this.#changed(o.hooks(), recorded, mine);
    if (outcome.status === 'retrying') throw new RetryLater(outcome.delayMs, `${outcome.error.code}: ${outcome.error.message}`);
  }

  /**
   * The queue each delivery's destination goes to: its own while some live host has it (this one
   * included), or had it lately (its queue is known: the one host that has it restarting), where it
   * waits for that host as the deliveries queued before it left do, and after ORPHAN_AFTER_MS is
   * an orphan; else the shared one, where it is dead at once. A destination neither listed nor
   * known here is looked up in Redis (this host may not have read the known queues yet).
   */
  async #queuesOf(deliveries: readonly Delivery[]): Promise<Map<string, string>> {
    const queues = new Map<string, string>();
    for (const { destination } of deliveries) {
      if (queues.has(destination)) continue;
      const known =
        this.#isListed(destination) || this.#known.includes(destination) || (await this.#o.commands.sismember(this.#o.keys.deliveryQueues, destination)) === 1;
      queues.set(destination, known ? destinationQueue(destination) : DELIVERY_QUEUE);
    }
    return queues;
  }

  /** Some live host (this one included) has `destination`: as `#follow` read them each second, else read afresh (a host that just joined). */
  #isListed(destination: string): boolean {
    if (this.#listed.has(destination)) return true;
    return this.#o.hosts().some((h) => (h.destinations ?? []).includes(destination));
  }

  /** This host's config has `destination` (as `#follow` read it, else afresh). */
  #isMine(destination: string): boolean {
    return (this.#mine ?? new Set(this.#o.hooks().describe().destinations ?? [])).has(destination);
  }

  /**
   * The host is stopping (`Backend.settleDeliveries`): waits until each delivery of
   * `notifications` (at once with none) has had an attempt, by whichever host took its job (this
   * host's worker still runs, so a host alone makes it itself), or until `signal` aborts. Their records are read every SETTLE_POLL_MS; a record out of reach (Redis) is waited
   * for no longer.
   */
  async settle(notifications: readonly string[], signal: AbortSignal): Promise<void> {
    const aborted = whenAborted(signal);
    const waiting = new Set(notifications);
    // Only the stop's own digests are waited for: with none, a stop does not wait on a receiver that hangs.
    while (waiting.size > 0 && !signal.aborted && !this.#closed) {
      for (const id of [...waiting]) {
        const n = await Promise.race([this.#records.get(id).catch(() => undefined), aborted]);
        if (signal.aborted) return;
        const attempted = n?.notification.deliveries.every((d) => d.attempts > 0 || !deliveryOpen(d)) ?? true;
        if (attempted) waiting.delete(id);
      }
      if (waiting.size === 0) return;
      // Real time, as the stop's bound is (an injected clock may never move during a stop).
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((resolve) => (timer = setTimeout(resolve, SETTLE_POLL_MS))), aborted]);
      clearTimeout(timer);
    }
  }

  /**
   * Aborts the attempts in flight (their jobs go back to waiting), closes the worker and the queue
   * within `ms`. Resolves with the ids of the deliveries in flight that could not be handed back
   * (Redis out of reach): their jobs go to another host once their locks expire.
   */
  async close(ms = CLOSE_SETTLE_MS): Promise<string[]> {
    if (this.#closed) return [];
    this.#closed = true;
    this.#refresh.stop();
    const aborted = [...this.#inFlight.values()];
    for (const c of this.#inFlight.keys()) c.abort();
    const workers = [...this.#workers.values(), ...this.#retiring];
    const queues = [...this.#queues.values()];
    const closing = (async () => {
      await Promise.all(workers.map((w) => w.close().catch(() => undefined)));
      await Promise.all(queues.map((q) => q.close().catch(() => undefined)));
    })();
    // BullMQ's own blocking connection, a copy of `commands`, is ended for good with the backend's
    // connections (connections.ts): what a close during a failover or an outage may leave of it.
    if (await settlesWithin(this.#o.clock, ms, closing)) return [];
    // Else it would wait for Redis (and retry) forever: ended here, with the worker's timers.
    for (const w of workers) w.halt();
    this.#o.logger.warn({ deliveries: aborted }, 'the delivery worker did not close in time; its deliveries go to another host once their locks expire');
    return aborted;
  }
}
