/** jobhost's script for chaining (`after`) in cluster mode; how it is used: after-chain.ts. */

/**
 * Between ADMIT and BullMQ's add, in the MULTI that ends the parent. KEYS: the parent's finished
 * set, the child's job hash, the parent's job hash. ARGV: parent id, the mark's field. Returns 1
 * (go on), 0 (the parent is not in the finished set: this end was refused) or 2 (the parent's
 * end added its children before). Unless 1, it leaves the child's hash marked the way ADMIT marks
 * a refusal, so BullMQ's add adds nothing and ADMITTED undoes the mark.
 */
const AFTER_GATE = `
local go = 1
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then go = 0
elseif redis.call('HSETNX', KEYS[3], ARGV[2], '1') == 0 then go = 2 end
if go ~= 1 and redis.call('HEXISTS', KEYS[2], '__jh_refused') == 0 and redis.call('HEXISTS', KEYS[2], '__jh_refused_kept') == 0 then
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('HSET', KEYS[2], '__jh_refused_kept', '1')
  else redis.call('HSET', KEYS[2], '__jh_refused', '1') end
end
return go`;

/** The chaining scripts, by command name (scripts.ts defines them with the others). */
export const AFTER_SCRIPTS = {
  jhAfterGate: { keys: 3, lua: AFTER_GATE },
};
