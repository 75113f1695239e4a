import type { Redis, RedisOptions } from 'ioredis';
import { isoTime, settlesWithin, systemClock } from '../contract/clock.js';
import { HostError, isHostError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import type { BackendReach, BackendWarning } from '../contract/store-health.js';
import { BULLMQ_MAX_BLOCK_MS } from './bullmq-internals.js';
import { connectFailure, type ReachConfig, reachOf, scrubCredentials } from './connection-options.js';
import { endForGood, keepConnected } from './keep-connected.js';
import { ioredis } from './libraries.js';
import { clearSocketTimeoutOnClose } from './socket-timeout.js';
import { BLOCK_MS } from './stream-reader.js';

/**
 * A host's three Redis connections, whatever the number of jobs:
 * - `producer` fails fast (no offline queue, no retry, a command timeout): triggers, cancels,
 *   flags and reads go through it, so a request while Redis is out of reach gets 503 at once
 *   instead of a hang or a 202 seconds later;
 * - `commands` is patient (offline queue, retries): BullMQ's Workers and the writes that must
 *   land once Redis is back (a run's end, a success record, a notification);
 * - `reader` holds the one blocking XREAD over the streams the host follows.
 * The delivery worker (`deliveries.ts`) adds a fourth, BullMQ's blocking duplicate of `commands`:
 * it waits for deliveries on its own, apart from the runs. Each reconnects by itself; `reach()` says whether Redis can be reached now.
 *
 * BullMQ makes a Worker's blocking connection with `duplicate()` and, as ours are lazy, connects
 * the copy with one `connect()`: when that one fails (Redis gone while it connects: a host that
 * starts as Redis restarts) the Worker's blocking connection is broken for good (BullMQ keeps its
 * rejected start), and the host takes no delivery again until it restarts. So the copies of
 * `commands` connect by themselves (`lazyConnect: false`): BullMQ then waits for `ready` through
 * the reconnects. They are also ended at close, whatever BullMQ's own close left of them.
 *
 * A black-holed network (packets dropped, no reset: the socket looks open for the ~15 min of TCP's
 * retransmissions) must hang neither a request nor a stop. The producer's commands fail after
 * `commandTimeout`. Every connection also has ioredis' `socketTimeout`: a socket that has a
 * command outstanding and hears nothing for that long is destroyed, and the connection is made
 * again, so the producer is reported down (503 at once from then on) and the patient connection
 * sends its queued commands again once Redis answers (it keeps them: a timeout there would reject
 * a write that must land). Not `commandTimeout` on the blocking connections: ioredis applies it to
 * blocking commands too, so it would fail every XREAD/BZPOPMIN that blocks longer. Their socket
 * timeout is longer than their longest block instead: the reader's XREAD (BLOCK_MS), and BullMQ's
 * delivery worker, whose blocking connection is a `duplicate()` of `commands` and so inherits its
 * options (BZPOPMIN for at most BULLMQ_MAX_BLOCK_MS, plus BullMQ's own 1 s watchdog).
 */

/** Seconds a client is told to wait before trying again while Redis is out of reach. */
const RETRY_AFTER_S = 2;
/** A start that reaches no Redis (no Sentinel answers, no master) within this fails. */
const OPEN_MS = 10_000;
/** At close, Redis gets this long to answer a connection's QUIT (what was sent before it lands first). */
const QUIT_MS = 1000;

/** A Redis reply error that says the server cannot serve now (loading its AOF, busy, a replica). */
const TRANSIENT_REPLY = /^(LOADING|BUSY|READONLY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN)\b/;

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);
/** What ioredis says when a command cannot reach the server (closed, not writable, no answer in time). */
const UNREACHED = /Connection is closed|Stream isn't writeable|Command timed out|Connection (timed out|lost)|connect ETIMEDOUT/;

/** True for a failure to reach Redis (as opposed to an error in what was asked). */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'ReplyError') return TRANSIENT_REPLY.test(err.message);
  if (err.name === 'MaxRetriesPerRequestError') return true;
  const code = (err as { code?: unknown }).code;
  return (typeof code === 'string' && NETWORK_CODES.has(code)) || UNREACHED.test(err.message);
}

export class Connections {
  readonly target: string;
  readonly producer: Redis;
  readonly commands: Redis;
  readonly reader: Redis;
  readonly #logger: Logger;
  #down: { error: string; since: string } | null = null;
  #closed = false;
  #warnings: BackendWarning[] = [];
  /** The copies of `commands` BullMQ's Workers made (see the top of this file), ended at close. */
  readonly #copies = new Set<Redis>();
  /** The latest socket error (ECONNREFUSED, ...): says more than the "connection closed" a command gets. */
  #lastError: Error | undefined;
  /** A TLS URL and no client certificate: what a reset at the first connect most likely means. */
  readonly #tlsWithoutCert: boolean;

  /** `backend.waitReplicas` and `waitTimeout`: what an acknowledged write waits for (see `replication.ts`). */
  readonly replicas: { count: number; timeoutMs: number };

  /** `commandTimeout`: ms (see the top of this file; `backend.commandTimeout`, default 10 s). */
  constructor(config: ReachConfig & { waitReplicas?: number; waitTimeout?: number; commandTimeout?: number }, name: string, logger: Logger) {
    const reach = reachOf(config);
    this.#tlsWithoutCert = new URL(config.url).protocol === 'rediss:' && !config.tls?.cert;
    const commandTimeout = config.commandTimeout ?? 10_000;
    this.target = reach.target;
    this.replicas = { count: config.waitReplicas ?? 0, timeoutMs: config.waitTimeout ?? 1000 };
    this.#logger = logger;
    const base: RedisOptions = {
      ...reach.options,
      lazyConnect: true,
      // Forever, at most 2 s apart: Redis coming back is noticed within 2 s.
      retryStrategy: (times) => Math.min(times * 100, 2000),
      connectTimeout: 10_000,
    };
    const { Redis } = ioredis();
    this.producer = new Redis({
      ...base,
      connectionName: `${name}:producer`,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout,
      socketTimeout: commandTimeout,
    });
    this.commands = new Redis({
      ...base,
      connectionName: `${name}:commands`,
      maxRetriesPerRequest: null,
      socketTimeout: commandTimeout + BULLMQ_MAX_BLOCK_MS,
    });
    this.reader = new Redis({ ...base, connectionName: `${name}:reader`, maxRetriesPerRequest: null, socketTimeout: commandTimeout + BLOCK_MS });
    const duplicate = this.commands.duplicate.bind(this.commands);
    this.commands.duplicate = (override?: Partial<RedisOptions>): Redis => {
      const copy = duplicate({ ...override, lazyConnect: false });
      copy.prependListener('error', scrubCredentials);
      // Kept until close, ended or not: BullMQ may connect an ended copy again (one per delivery worker).
      this.#copies.add(copy);
      if (this.#closed) void endForGood(copy, QUIT_MS);
      return copy;
    };
    for (const c of [this.producer, this.commands, this.reader]) {
      // First of all listeners: an AUTH error carries the password until scrubbed.
      c.prependListener('error', scrubCredentials);
      // Without a listener ioredis prints every failed reconnect; the producer's events say it once.
      // Not ioredis's own "max retries per request" (no code, no cause): the error before it says why.
      c.on('error', (err: Error) => {
        if (err.name !== 'MaxRetriesPerRequestError' || this.#lastError === undefined) this.#lastError = err;
      });
      clearSocketTimeoutOnClose(c);
    }
    for (const [c, role] of [
      [this.producer, 'producer'],
      [this.commands, 'commands'],
      [this.reader, 'reader'],
    ] as const) {
      keepConnected(c, () => !this.#closed, logger, `${name}:${role}`);
    }
    this.producer.on('error', (err: Error) => this.#lost(connectFailure(err)));
    this.producer.on('close', () => this.#lost('connection closed'));
    this.producer.on('ready', () => {
      if (this.#down) this.#logger.info({ redis: this.target, since: this.#down.since }, 'Redis reachable again');
      this.#down = null;
    });
  }

  #lost(reason: string): void {
    if (this.#closed) return;
    // While down, a reconnect's own error (WRONGPASS, a certificate) says more than "closed": shown, not logged again.
    if (this.#down) return void (reason !== 'connection closed' && (this.#down.error = reason));
    this.#down = { error: reason, since: isoTime(Date.now()) };
    this.#logger.error({ redis: this.target, code: 'BACKEND_UNAVAILABLE', reason }, 'Redis out of reach: triggers get 503 until it is back');
  }

  /** Connects all three; a Redis that cannot be reached is BACKEND_UNAVAILABLE, with nothing left open. */
  async open(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    // Through Sentinel, ioredis retries on its own while no Sentinel answers: bounded here.
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${OPEN_MS / 1000} s`)), OPEN_MS);
    });
    try {
      await Promise.race([Promise.all([this.producer.connect(), this.commands.connect(), this.reader.connect()]).then(() => this.producer.ping()), deadline]);
      // ioredis SELECTs the URL's database as it connects, and a Redis without it leaves the
      // connection on database 0 with no more than an error event: SELECT again, to fail here.
      const db = this.producer.options.db ?? 0;
      if (db > 0) await Promise.all([this.producer, this.commands, this.reader].map((c) => c.select(db)));
      await this.#checkEviction();
    } catch (err) {
      this.#closed = true;
      for (const c of [this.producer, this.commands, this.reader]) c.disconnect();
      const reason = connectFailure(this.#lastError ?? (err as Error), this.#tlsWithoutCert);
      // No cause: ioredis's error may hold the AUTH command's arguments.
      throw new HostError('BACKEND_UNAVAILABLE', `cannot reach Redis at ${this.target} (${reason})`, { redis: this.target });
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * BullMQ requires `maxmemory-policy noeviction`: under another policy a Redis short of memory
   * evicts keys — a waiting run's job hash, a lock, jobhost's own state — and runs vanish
   * silently. Read from INFO (CONFIG may be renamed or denied on managed Redis) at connect; said
   * loudly, and kept for /ready's warnings.
   */
  async #checkEviction(): Promise<void> {
    const policy = /^maxmemory_policy:(\S+)/m.exec(await this.producer.info('memory'))?.[1];
    if (policy === undefined || policy === 'noeviction') return;
    const message = `Redis at ${this.target} has maxmemory-policy ${policy}, not noeviction: when it runs short of memory it may evict waiting runs, their locks and jobhost's state; set maxmemory-policy noeviction (BullMQ requires it)`;
    this.#warnings = [{ code: 'REDIS_MAXMEMORY_POLICY', message }];
    this.#logger.warn({ code: 'REDIS_MAXMEMORY_POLICY', redis: this.target, policy }, message);
  }

  /** Conditions for /ready's warnings, found at connect. */
  warnings(): BackendWarning[] {
    return this.#warnings;
  }

  /** Whether Redis can be reached now, for triggers, `/ready` and `/metrics`. */
  reach(): BackendReach {
    const available = this.#down === null && this.producer.status === 'ready';
    return {
      kind: 'redis',
      available,
      target: this.target,
      error: available ? null : (this.#down?.error ?? this.producer.status),
      since: available ? null : (this.#down?.since ?? null),
    };
  }

  /** The 503 for new work while Redis is out of reach (null when it can be reached). */
  unavailable(): HostError | null {
    const reach = this.reach();
    return reach.available ? null : this.refused(reach.error ?? 'not connected');
  }

  /** Runs Redis commands; one that could not reach Redis rejects with BACKEND_UNAVAILABLE (see toHostError). */
  async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.toHostError(err);
    }
  }

  /**
   * What a start says when Redis answered jobhost's set-up with a refusal (a user without a
   * permission, a transaction aborted by one): BACKEND_UNAVAILABLE with Redis's reason, as a
   * failed connect says it. Anything else as `toHostError` makes it.
   */
  setUpRefused(err: unknown): unknown {
    const e = err as { name?: unknown; message?: unknown; previousErrors?: unknown } | null;
    if (isHostError(err) || e?.name !== 'ReplyError' || typeof e.message !== 'string') return this.toHostError(err);
    // EXECABORT says only that a command of the MULTI was refused: the refusal itself says why.
    const first = Array.isArray(e.previousErrors) ? (e.previousErrors[0] as Error | undefined) : undefined;
    const reason = connectFailure(first instanceof Error ? first : (err as Error));
    return new HostError('BACKEND_UNAVAILABLE', `Redis at ${this.target} refused jobhost's set-up (${reason})`, { redis: this.target });
  }

  /** BACKEND_UNAVAILABLE for a command that could not reach Redis; anything else unchanged. */
  toHostError(err: unknown): unknown {
    if (!isConnectionError(err)) return err;
    return this.refused((err as Error).message, err);
  }

  refused(reason: string, cause?: unknown): HostError {
    return new HostError(
      'BACKEND_UNAVAILABLE',
      `Redis at ${this.target} cannot be reached (${reason}); nothing was acknowledged: retry after ${RETRY_AFTER_S}s`,
      { retryAfter: RETRY_AFTER_S, redis: this.target },
      cause === undefined ? undefined : { cause },
    );
  }

  /**
   * Ends the three connections (and what is left of the copies): a QUIT while Redis answers (within `quitMs`: a QUIT waits for a
   * reply that never comes from a Redis killed or cut off), then a disconnect in every case, which
   * also stops the reconnect attempts. Commands still waiting are given up.
   */
  async close(quitMs = QUIT_MS): Promise<void> {
    this.#closed = true;
    await Promise.all([
      ...[this.producer, this.commands, this.reader].map(async (c) => {
        if (c.status === 'ready') await settlesWithin(systemClock, quitMs, c.quit());
        await endForGood(c, quitMs);
      }),
      // BullMQ's close quit those it could; the others (Redis out of reach) are ended here.
      ...[...this.#copies].map((c) => endForGood(c, quitMs)),
    ]);
    this.#copies.clear();
  }
}
