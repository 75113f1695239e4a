import type { Redis } from 'ioredis';
import { JOB_FIELD as F, queueKey } from './bullmq-internals.js';
import { CANCELED_REASON, type ClusterKeys } from './keys.js';

/**
 * The history's scripts over index entries (`<runId>:<job>`, see `history.ts`). An entry names
 * its run and job, so the keys a script reads for it come from the index: the caller reads a
 * chunk of the index first, then passes the keys of those entries in KEYS (ITEM_KEYS per entry
 * for ITEMS, `entryKeys`; PRUNE_KEYS for PRUNE, `pruneKeys`). The scripts check again what they act on (a run dropped from the index only when
 * its job hash and tombstone are both gone), so an entry changed between the two steps is right.
 */

/** Keys per index entry: its job hash, its queue's completed, failed, active and delayed, its tombstone, its job's index. */
const ITEM_KEYS = 7;

/** The keys of the index entries `members`, ITEM_KEYS each, in ITEMS' order. */
export function entryKeys(keys: ClusterKeys, members: readonly string[]): string[] {
  return members.flatMap((m) => {
    const sep = m.indexOf(':');
    const id = sep < 0 ? m : m.slice(0, sep);
    const job = sep < 0 ? '' : m.slice(sep + 1);
    return [
      keys.queue(job, id),
      queueKey(keys.prefix, job, 'completed'),
      queueKey(keys.prefix, job, 'failed'),
      queueKey(keys.prefix, job, 'active'),
      queueKey(keys.prefix, job, 'delayed'),
      keys.tomb(id),
      keys.runsOf(job),
    ];
  });
}

/**
 * Runs of index entries as JSON arrays, from each BullMQ job hash (with the state it is in) or its
 * tombstone. KEYS: the global index, then ITEM_KEYS per entry. ARGV: status wanted (or ''), drop
 * (1: drop entries whose run is gone from both indexes), then the entries. Returns one string per
 * entry: the item, '' when the run exists but has another status, '-' when it is gone.
 */
const ITEMS = `
local function pad(n) return string.format('%.0f', n) end
local want, out = ARGV[1], {}
for i = 3, #ARGV do
  local m, b = ARGV[i], 1 + (i - 3) * ${ITEM_KEYS}
  local id = string.sub(m, 1, (string.find(m, ':', 1, true) or (#m + 1)) - 1)
  local r = '-'
  if redis.call('EXISTS', KEYS[b + 1]) == 1 then
    r = ''
    if redis.call('HEXISTS', KEYS[b + 1], '__jh_refused') == 0 then
      local status
      if redis.call('ZSCORE', KEYS[b + 2], id) then status = 'succeeded'
      elseif redis.call('ZSCORE', KEYS[b + 3], id) then
        if redis.call('HGET', KEYS[b + 1], '${F.failedReason}') == '${CANCELED_REASON}' then status = 'canceled' else status = 'failed' end
      elseif redis.call('LPOS', KEYS[b + 4], id) then status = 'running'
      else status = 'queued' end
      if want == '' or want == status then
        local delayedAt = ''
        if status == 'queued' then
          local s = redis.call('ZSCORE', KEYS[b + 5], id)
          if s then delayedAt = pad(math.floor(tonumber(s) / 4096)) end
        end
        local f = redis.call('HMGET', KEYS[b + 1], '${F.data}', '${F.opts}', '${F.timestamp}', '${F.processedOn}', '${F.finishedOn}',
          '${F.returnvalue}', '${F.failedReason}', '${F.stacktrace}', '${F.atm}', '${F.ats}', '${F.progress}', '${F.pb}', '${F.defa}')
        r = cjson.encode({'h', id, string.sub(m, #id + 2), status, delayedAt, f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12], f[13]})
      end
    end
  else
    local tomb = redis.call('GET', KEYS[b + 6])
    if tomb then
      r = ''
      if want == '' or want == 'canceled' then r = cjson.encode({'t', tomb}) end
    elseif ARGV[2] == '1' then
      redis.call('ZREM', KEYS[1], m)
      redis.call('ZREM', KEYS[b + 7], m)
    end
  end
  out[#out + 1] = r
end
return out`;

/** Keys per entry PRUNE reads: its job hash, its tombstone, its job's index. */
const PRUNE_KEYS = 3;

/** The keys of the index entries `members`, PRUNE_KEYS each, in PRUNE's order. */
function pruneKeys(keys: ClusterKeys, members: readonly string[]): string[] {
  const out: string[] = [];
  for (const m of members) {
    const sep = m.indexOf(':');
    const id = sep < 0 ? m : m.slice(0, sep);
    const job = sep < 0 ? '' : m.slice(sep + 1);
    out.push(keys.queue(job, id), keys.tomb(id), keys.runsOf(job));
  }
  return out;
}

/**
 * Drops index entries whose run retention removed (job hash and tombstone both gone), and moves
 * the sweep's cursor. KEYS: the global index, the cursor key, then PRUNE_KEYS per entry (not
 * ITEMS' seven: a pass walks every entry of the index, the queued runs' too, about once per
 * PRUNE_AFTER adds, so each key less is one less per entry walked). ARGV: the cursor to keep (''
 * when the walk reached the newest), its TTL (ms), then the entries. Returns how many were dropped.
 */
const PRUNE = `
local pruned = 0
for i = 3, #ARGV do
  local b = 2 + (i - 3) * ${PRUNE_KEYS}
  if redis.call('EXISTS', KEYS[b + 1]) == 0 and redis.call('EXISTS', KEYS[b + 2]) == 0 then
    pruned = pruned + redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[b + 3], ARGV[i])
  end
end
if ARGV[1] == '' then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) end
return pruned`;

export const HISTORY_SCRIPTS = {
  jhItems: { keys: undefined, lua: ITEMS },
  jhPrune: { keys: undefined, lua: PRUNE },
};

/** The scripts, as ioredis commands (no fixed number of keys: it comes first). */
export interface HistoryCommands {
  jhItems(numKeys: number, ...keysThenArgs: string[]): Promise<string[]>;
  jhPrune(numKeys: number, ...keysThenArgs: string[]): Promise<number>;
}

/** The runs of `members` (see ITEMS); `drop` removes the entries of runs that are gone. */
export function readItems(redis: Redis & HistoryCommands, keys: ClusterKeys, members: readonly string[], want: string, drop: boolean): Promise<string[]> {
  if (members.length === 0) return Promise.resolve([]);
  const k = [keys.runs, ...entryKeys(keys, members)];
  return redis.jhItems(k.length, ...k, want, drop ? '1' : '0', ...members);
}

/** Drops the entries of `members` whose run is gone, and keeps `cursor` ('' for none) for the next sweep (see PRUNE). */
export function pruneEntries(
  redis: Redis & HistoryCommands,
  keys: ClusterKeys,
  cursorKey: string,
  members: readonly string[],
  cursor: string,
  ttlMs: number,
): Promise<number> {
  const k = [keys.runs, cursorKey, ...pruneKeys(keys, members)];
  return redis.jhPrune(k.length, ...k, cursor, String(ttlMs), ...members);
}
