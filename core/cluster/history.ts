import { z } from 'zod';
import type { Page, Run, RunQuery } from '../contract/run.js';
import { LOG_LEVELS, LOG_MAX_LINES, type LogLine, LogTail, type RunLog } from '../contract/run-log.js';
import type { RelayBacklog } from './backlog.js';
import type { Connections } from './connections.js';
import { pruneEntries, readItems } from './history-scripts.js';
import type { ClusterKeys } from './keys.js';
import { runFromItem } from './run-records.js';
import type { ScriptedRedis } from './scripts.js';

/**
 * Runs of every host and their log lines, read from Redis (notifications: `notification-records.ts`). The BullMQ job hashes are the records;
 * a lex-ordered index of `<runId>:<job>` (written in the trigger's MULTI) gives pages newest
 * first across jobs: a chunk of the index read, then one script for its entries' runs. Retention is BullMQ's (`removeOnComplete` /
 * `removeOnFail` by count and age, per job queue); index entries whose run it removed are dropped
 * by the page that walks over them and by a periodic sweep.
 */

/** Index entries a page may walk before it answers (a status filter on a long history). */
const PAGE_BUDGET = 5000;
/** Index entries read per round trip of a page. */
const CHUNK = 100;

/** The run id of an index entry (`<runId>:<job>`). */
const idOf = (member: string): string => member.slice(0, Math.max(0, member.indexOf(':')));

const logLine = z.object({
  attempt: z.number(),
  i: z.number(),
  at: z.string(),
  level: z.enum(LOG_LEVELS as [LogLine['level'], ...LogLine['level'][]]),
  msg: z.string(),
  fields: z.record(z.string(), z.unknown()).optional(),
});

export class History {
  readonly #reads: ScriptedRedis;
  readonly #writes: ScriptedRedis;
  readonly #keys: ClusterKeys;
  readonly #connections: Connections;
  readonly #backlog: RelayBacklog;

  /** `reads` fail fast (a request gets 503 while Redis is out of reach); `writes` wait for Redis, within `backlog`. */
  constructor(reads: ScriptedRedis, writes: ScriptedRedis, keys: ClusterKeys, connections: Connections, backlog: RelayBacklog) {
    this.#backlog = backlog;
    this.#reads = reads;
    this.#writes = writes;
    this.#keys = keys;
    this.#connections = connections;
  }

  async getRun(id: string): Promise<Run | undefined> {
    if (id.includes(':')) return undefined;
    const [member] = await this.#connections.call(() =>
      this.#reads.zrangebylexBuffer(this.#keys.runs, `[${id}:`, Buffer.concat([Buffer.from(`[${id}:`), Buffer.from([0xff])]), 'LIMIT', 0, 1),
    );
    if (!member) return undefined;
    const [item] = await this.#connections.call(() => readItems(this.#reads, this.#keys, [member.toString()], '', false));
    return item && item !== '-' ? (runFromItem(item) ?? undefined) : undefined;
  }

  async listRuns(query: RunQuery): Promise<Page<Run>> {
    const limit = Math.max(1, Math.min(query.limit ?? 50, 1000));
    const index = query.job !== undefined ? this.#keys.runsOf(query.job) : this.#keys.runs;
    const [items, next] = await this.#page(index, query.before ?? '', limit, query.status ?? '');
    const page: Page<Run> = { items: items.map(runFromItem).filter((r): r is Run => r !== null) };
    if (next) page.next = next;
    return page;
  }

  /**
   * Newest first from `before`: {items, next}, `next` the id to pass as `before` ('' at the end,
   * or where PAGE_BUDGET stopped the walk). Entries whose run retention removed are dropped from
   * both indexes on the way.
   */
  async #page(index: string, before: string, limit: number, want: string): Promise<[string[], string]> {
    const out: string[] = [];
    let max = before ? `(${before}` : '+';
    let scanned = 0;
    let lastId = '';
    for (;;) {
      // Without a filter every live entry is an item: read no more than the page needs (and one to tell there is more).
      const count = Math.min(CHUNK, PAGE_BUDGET - scanned, want ? CHUNK : limit + 1 - out.length);
      const chunk = await this.#connections.call(() => this.#reads.zrevrangebylex(index, max, '-', 'LIMIT', 0, count));
      if (chunk.length === 0) return [out, ''];
      const items = await this.#connections.call(() => readItems(this.#reads, this.#keys, chunk, want, true));
      for (const [i, m] of chunk.entries()) {
        scanned++;
        max = `(${m}`;
        const item = items[i] ?? '';
        if (item !== '' && item !== '-') {
          if (out.length === limit) return [out, lastId];
          out.push(item);
          lastId = idOf(m);
        }
        if (scanned >= PAGE_BUDGET) return [out, idOf(m)];
      }
      if (chunk.length < count) return [out, ''];
    }
  }

  /**
   * Keeps a run's log lines (see `Backend.appendLogs`): the newest 500 in Redis, the byte bound
   * applied when they are read. Waits for Redis rather than lose lines to a short outage; past
   * the relay backlog's bound (a long one), new lines are dropped and counted.
   */
  async appendLogs(runId: string, log: RunLog, ttlMs: number): Promise<void> {
    if (log.lines.length === 0 && log.dropped === 0) return;
    const items = Math.max(1, log.lines.length);
    if (!this.#backlog.take(items)) return;
    try {
      await this.#append(runId, log, ttlMs);
    } finally {
      this.#backlog.settle(items);
    }
  }

  async #append(runId: string, log: RunLog, ttlMs: number): Promise<void> {
    if (log.lines.length === 0) {
      await this.#writes
        .multi()
        .incrby(`${this.#keys.log(runId)}:dropped`, log.dropped)
        .pexpire(`${this.#keys.log(runId)}:dropped`, ttlMs)
        .exec();
      return;
    }
    const lines = log.lines.map((l) => JSON.stringify(l));
    await this.#writes.jhAppendLog(
      this.#keys.log(runId),
      `${this.#keys.log(runId)}:dropped`,
      String(LOG_MAX_LINES),
      String(log.dropped),
      String(ttlMs),
      ...lines,
    );
  }

  /** A run's kept log lines, bounded as a LogTail bounds them; undefined when none were kept. */
  async getLogs(runId: string): Promise<RunLog | undefined> {
    const [[, raw], [, dropped]] = (await this.#connections.call(() =>
      this.#reads
        .multi()
        .lrange(this.#keys.log(runId), 0, -1)
        .get(`${this.#keys.log(runId)}:dropped`)
        .exec(),
    )) as [[unknown, string[]], [unknown, string | null]];
    const lines = raw.flatMap((text) => {
      try {
        const parsed = logLine.safeParse(JSON.parse(text));
        return parsed.success ? [parsed.data as LogLine] : [];
      } catch {
        return [];
      }
    });
    const count = Number(dropped ?? 0) + (raw.length - lines.length);
    if (lines.length === 0 && count === 0) return undefined;
    return new LogTail({ lines, dropped: count }).toJSON();
  }

  /**
   * Drops index entries of runs retention removed: the next `budget` entries of a walk from the
   * oldest (it goes on where the last call stopped); `done` once the walk reached the newest.
   */
  async pruneIndex(budget: number): Promise<{ pruned: number; done: boolean }> {
    const cursorKey = `${this.#keys.sweep}:cursor`;
    const from = await this.#reads.get(cursorKey);
    const chunk = await this.#reads.zrangebylex(this.#keys.runs, from ? `(${from}` : '-', '+', 'LIMIT', 0, budget);
    const done = chunk.length < budget;
    const pruned = await pruneEntries(this.#reads, this.#keys, cursorKey, chunk, done ? '' : chunk.at(-1)!, 3_600_000);
    return { pruned, done };
  }
}
