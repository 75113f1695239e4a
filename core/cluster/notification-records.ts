import { z } from 'zod';
import type { NotificationQuery } from '../contract/backend.js';
import {
  type Delivery,
  type DeliveryError,
  deliveryErrorFields,
  deliveryFields,
  deliveryOpen,
  type Notification,
  notificationFields,
} from '../contract/notification.js';
import type { Page } from '../contract/run.js';
import type { Connections } from './connections.js';
import type { ClusterKeys } from './keys.js';
import type { ScriptedRedis } from './scripts.js';

/**
 * Notifications of every host and the state of their deliveries, in Redis. Each notification is
 * a hash, `<prefix>:__jh:notification:<id>`:
 * - `n`: the notification as added (JSON, its deliveries as they were then), `job`: its job;
 * - per delivery `d:<id>` (its current state, JSON), `s:<id>` (its series: which BullMQ job may
 *   record its attempts; a redeliver starts a new one), `o:<id>` (1 while open);
 * - `open`: how many of its deliveries are open, `seq`: the last series number handed out.
 * An index (a sorted set of ids) orders them; the newest NOTIFICATIONS_KEPT are kept, plus every
 * one with an open delivery until its last delivery ends. The scripts are in `delivery-scripts.ts`.
 */

/** Notifications kept (newest), like the local store; more while some have open deliveries. */
export const NOTIFICATIONS_KEPT = 1000;
/** Old index entries an add looks at for trimming (those with open deliveries are skipped). */
const TRIM_BUDGET = 1000;
/** Index entries a list reads per round trip. */
const LIST_CHUNK = 100;

const errorShape = z
  .object(deliveryErrorFields)
  .transform((e): DeliveryError => ({ code: e.code, message: e.message, ...(e.status !== undefined ? { status: e.status } : {}) }));

const deliveryShape = z.object({ ...deliveryFields, lastError: errorShape.nullable() });

/**
 * What a host relies on in a recorded notification; the rest is kept as written (loose), so a
 * field or an outcome a newer host records is served as it is, not dropped.
 */
const notificationShape = z.looseObject({
  ...notificationFields,
  // Older hosts recorded notifications without deliveries.
  deliveries: z.array(deliveryShape).default([]),
});

function parseJson(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** A notification as its hash holds it, with the series of each delivery. */
export interface NotificationRecord {
  notification: Notification;
  series: ReadonlyMap<string, string>;
}

/** A notification's hash (HGETALL, as a flat list or an object) as a record; null when it is not one. */
export function recordFromHash(hash: readonly string[] | Readonly<Record<string, string>>): NotificationRecord | null {
  let fields: Record<string, string>;
  if (Array.isArray(hash)) {
    fields = {};
    for (let i = 0; i + 1 < hash.length; i += 2) fields[hash[i]!] = hash[i + 1]!;
  } else fields = { ...(hash as Record<string, string>) };
  // An entry of the older `<id>\t<json>` form of the index.
  if (fields['L'] !== undefined) fields = { n: fields['L'] };
  const parsed = notificationShape.safeParse(parseJson(fields['n']));
  if (!parsed.success) return null;
  const series = new Map<string, string>();
  const deliveries = parsed.data.deliveries.map((d): Delivery => {
    const s = fields[`s:${d.id}`];
    if (s !== undefined) series.set(d.id, s);
    const now = deliveryShape.safeParse(parseJson(fields[`d:${d.id}`]));
    return now.success ? now.data : d;
  });
  // Written by a host from its own (typed) Notification: the checked fields above, the rest as it was.
  return { notification: { ...parsed.data, deliveries } as Notification, series };
}

/** The fields a delivery adds to an add's script call: id, state, series, open. */
function deliveryArgs(d: Delivery, series: string): string[] {
  return [d.id, JSON.stringify(d), series, deliveryOpen(d) ? '1' : '0'];
}

export class NotificationRecords {
  readonly #reads: ScriptedRedis;
  readonly #keys: ClusterKeys;
  readonly #connections: Connections;

  /** `reads` fail fast: a request gets 503 while Redis is out of reach. */
  constructor(reads: ScriptedRedis, keys: ClusterKeys, connections: Connections) {
    this.#reads = reads;
    this.#keys = keys;
    this.#connections = connections;
  }

  /** Newest first from `before`: a chunk of the index, then its notifications' hashes, until the page is full. */
  async list(query: NotificationQuery): Promise<Page<Notification>> {
    const limit = Math.max(1, Math.min(query.limit ?? 50, NOTIFICATIONS_KEPT));
    const items: Notification[] = [];
    let max = query.before ? `(${query.before}` : '+';
    for (;;) {
      const chunk = await this.#connections.call(() => this.#reads.zrevrangebylex(this.#keys.notifications, max, '-', 'LIMIT', 0, LIST_CHUNK));
      const hashes = chunk.filter((m) => !m.includes('\t'));
      const read = hashes.length === 0 ? [] : await this.#connections.call(() => this.#hashes(hashes));
      const byId = new Map(hashes.map((id, i) => [id, read[i]]));
      for (const m of chunk) {
        const tab = m.indexOf('\t');
        const record = tab >= 0 ? recordFromHash({ L: m.slice(tab + 1) }) : recordFromHash(byId.get(m) ?? {});
        if (!record || (query.job !== undefined && query.job !== '' && record.notification.job !== query.job)) continue;
        if (items.length === limit) return { items, next: items.at(-1)!.id };
        items.push(record.notification);
      }
      if (chunk.length < LIST_CHUNK) return { items };
      max = `(${chunk.at(-1)!}`;
    }
  }

  async #hashes(ids: readonly string[]): Promise<Record<string, string>[]> {
    const pipeline = this.#reads.pipeline();
    for (const id of ids) pipeline.hgetall(this.#keys.notification(id));
    const replies = (await pipeline.exec()) ?? [];
    return replies.map(([err, hash]) => {
      if (err) throw err;
      return hash as Record<string, string>;
    });
  }

  /** The job field of each notification (null: gone), in one pipeline. */
  async jobsOf(ids: readonly string[]): Promise<Array<string | null>> {
    if (ids.length === 0) return [];
    return this.#connections.call(async () => {
      const pipeline = this.#reads.pipeline();
      for (const id of ids) pipeline.hget(this.#keys.notification(id), 'job');
      const replies = (await pipeline.exec()) ?? [];
      return replies.map(([err, job]) => (err ? null : (job as string | null)));
    });
  }

  /** One notification with its deliveries' series; undefined when unknown. `via` defaults to the fail-fast reads. */
  async get(id: string, via: ScriptedRedis = this.#reads): Promise<NotificationRecord | undefined> {
    const hash = await this.#connections.call(() => via.hgetall(this.#keys.notification(id)));
    return recordFromHash(hash) ?? undefined;
  }

  /** Queues the add of `n` (each delivery in series '0') on a MULTI; its reply goes to `trim`. */
  /** `fence`: the notification of a run's end this host holds the mark of (`untold.ts`): recorded only while it does. */
  add(multi: Pick<ScriptedRedis, 'jhAddNotification'>, n: Notification, fence?: { runId: string; host: string }): void {
    multi.jhAddNotification(
      this.#keys.notification(n.id),
      this.#keys.notifications,
      this.#keys.openDeliveries,
      this.#keys.untoldEnds,
      n.id,
      JSON.stringify(n),
      n.job,
      String(NOTIFICATIONS_KEPT),
      String(TRIM_BUDGET),
      fence?.runId ?? '',
      fence?.host ?? '',
      n.status,
      ...n.deliveries.flatMap((d) => deliveryArgs(d, '0')),
    );
  }

  /** After an add (`added`: its reply), drops the old notifications it named past the kept ones, unless an open delivery keeps them. */
  async trim(writes: ScriptedRedis, added: readonly unknown[]): Promise<void> {
    const ids = added.slice(1).map(String);
    if (ids.length === 0) return;
    await writes.jhTrimNotifications(
      1 + ids.length,
      this.#keys.notifications,
      ...ids.map((id) => this.#keys.notification(id)),
      String(NOTIFICATIONS_KEPT),
      ...ids,
    );
  }

  /**
   * Records a delivery's new state (atomic, other deliveries untouched) if `series` is still its
   * series and `lock` (its BullMQ job's lock key and token) still holds; resolves with the
   * notification as recorded, or undefined when the attempt was overtaken (a redeliver, or another
   * host took its job over) or the notification is gone. Waits for Redis (`writes`).
   */
  async update(
    writes: ScriptedRedis,
    notificationId: string,
    series: string,
    d: Delivery,
    lock?: { key: string; token: string },
  ): Promise<Notification | undefined> {
    const hash = await writes.jhUpdateDelivery(
      this.#keys.notification(notificationId),
      this.#keys.notifications,
      this.#keys.openDeliveries,
      lock?.key ?? this.#keys.notification(notificationId),
      notificationId,
      d.id,
      series,
      JSON.stringify(d),
      deliveryOpen(d) ? '1' : '0',
      String(NOTIFICATIONS_KEPT),
      lock?.token ?? '',
    );
    return hash ? (recordFromHash(hash)?.notification ?? undefined) : undefined;
  }

  /** A new series number for a redeliver of the notification (unique: a counter in its hash). */
  async nextSeries(notificationId: string): Promise<string> {
    return String(await this.#connections.call(() => this.#reads.hincrby(this.#keys.notification(notificationId), 'seq', 1)));
  }

  /** Queues the restart of `deliveries` (pending again) in `series` on a MULTI. */
  redeliver(multi: Pick<ScriptedRedis, 'jhRedeliver'>, notificationId: string, series: string, deliveries: readonly Delivery[]): void {
    multi.jhRedeliver(this.#keys.notification(notificationId), this.#keys.openDeliveries, series, ...deliveries.flatMap((d) => [d.id, JSON.stringify(d)]));
  }

  /** Open deliveries of every host. */
  openCount(): Promise<number> {
    return this.#reads.scard(this.#keys.openDeliveries);
  }
}
