import type { Redis } from 'ioredis';
import { type AuditQuery, type AuditRecord, type AuditStore, auditCutoff, auditLimit, auditMatches } from '../contract/audit.js';
import type { Clock } from '../contract/clock.js';
import type { Page } from '../contract/run.js';
import type { Connections } from './connections.js';

/**
 * The audit trail of the cluster (SPEC §14) in Redis: one sorted set, `<prefix>:__jh:audit`,
 * every host's records in it as members `<id>\t<json>` (all scores 0, so ids, which start with
 * their time, order it). An append is one script that adds the record and applies retention
 * (the newest `keepRuns`, none older than `keepDays`), acknowledged once Redis has it (durable
 * under its `appendfsync`, like runs).
 */

/**
 * KEYS: the set. ARGV: member, keepRuns, the id prefix below which records are too old ('' for
 * no age limit), the record's id. A record of an id already kept replaces it (as the local
 * store's trail does: a request's record stamped ahead, then its refusal): the members of that id
 * are those from the id and a tab up to, not including, the id and a newline (the byte after).
 */
const APPEND = `
local same = redis.call('ZRANGEBYLEX', KEYS[1], '[' .. ARGV[4] .. '\\t', '(' .. ARGV[4] .. '\\n')
if #same > 0 then redis.call('ZREM', KEYS[1], unpack(same)) end
redis.call('ZADD', KEYS[1], 0, ARGV[1])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1) end
if ARGV[3] ~= '' then redis.call('ZREMRANGEBYLEX', KEYS[1], '-', '(' .. ARGV[3]) end
return 1`;

export const AUDIT_SCRIPTS = { jhAuditAppend: { keys: 1, lua: APPEND } };

/** Members read per round trip while filtering. */
const CHUNK = 500;

interface AuditCommands {
  jhAuditAppend(set: string, member: string, keepRuns: string, cutoff: string, id: string): Promise<number>;
}

function parse(member: string): AuditRecord | undefined {
  const tab = member.indexOf('\t');
  if (tab < 0) return undefined;
  try {
    return JSON.parse(member.slice(tab + 1)) as AuditRecord;
  } catch {
    return undefined;
  }
}

export interface RedisAuditOptions {
  redis: Redis;
  connections: Connections;
  key: string;
  keepRuns: number;
  keepDays: number;
  clock: Clock;
}

export class RedisAudit implements AuditStore {
  readonly #o: RedisAuditOptions;
  readonly #redis: Redis & AuditCommands;

  constructor(options: RedisAuditOptions) {
    this.#o = options;
    options.redis.defineCommand('jhAuditAppend', { numberOfKeys: AUDIT_SCRIPTS.jhAuditAppend.keys, lua: APPEND });
    this.#redis = options.redis as Redis & AuditCommands;
  }

  async append(record: AuditRecord): Promise<void> {
    const cutoff = auditCutoff(this.#o.clock.now(), this.#o.keepDays);
    await this.#o.connections.call(() =>
      this.#redis.jhAuditAppend(this.#o.key, `${record.id}\t${JSON.stringify(record)}`, String(this.#o.keepRuns), cutoff, record.id),
    );
  }

  /** Newest first; reads the set in chunks from the cursor down until the page is full. */
  async list(query: AuditQuery): Promise<Page<AuditRecord>> {
    const limit = auditLimit(query);
    const byAge = auditCutoff(this.#o.clock.now(), this.#o.keepDays);
    // Retention is applied at each append: what a lower `keepRuns` (a restart with a new config)
    // leaves until the next one is past it all the same, as on the local store. The set's
    // `keepRuns`-th newest member is the oldest kept (all scores 0: ranks follow the ids).
    const [oldestKept] = await this.#o.connections.call(() => this.#redis.zrevrange(this.#o.key, this.#o.keepRuns - 1, this.#o.keepRuns - 1));
    const byCount = oldestKept === undefined ? '' : oldestKept.slice(0, Math.max(0, oldestKept.indexOf('\t')));
    // The later of the two ids (strings: not Math.max).
    const cutoff = [byCount, byAge].sort()[1]!;
    const items: AuditRecord[] = [];
    // `(<id>` excludes the cursor's own members (`<id>\t…` sorts after `<id>`, before `<id>` + '\t' + 1).
    let max = query.before === undefined ? '+' : `(${query.before}`;
    for (;;) {
      const members = await this.#o.connections.call(() => this.#redis.zrevrangebylex(this.#o.key, max, '-', 'LIMIT', 0, CHUNK));
      for (const member of members) {
        const record = parse(member);
        if (!record || record.id < cutoff || !auditMatches(record, query)) continue;
        if (items.length === limit) return { items, next: items.at(-1)!.id };
        items.push(record);
      }
      if (members.length < CHUNK) return { items };
      max = `(${members.at(-1)!}`;
    }
  }
}
