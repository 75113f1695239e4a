import type { JobFlags } from '../contract/backend.js';
import type { Connections } from './connections.js';
import type { ClusterKeys } from './keys.js';
import { replicated } from './replication.js';
import type { ScriptedRedis } from './scripts.js';

/**
 * Writes a job's flags (enabled, the last schedule fire) in one MULTI on the producer; resolves
 * once Redis has them, and the replicas `backend.waitReplicas` asks for.
 */
export async function writeFlags(p: { producer: ScriptedRedis; keys: ClusterKeys; connections: Connections }, name: string, flags: JobFlags): Promise<void> {
  const key = p.keys.jobState(name);
  // ioredis gives a MULTI the connection's scripts too; its typing does not know them.
  const multi = p.producer.multi() as ReturnType<ScriptedRedis['multi']> & { jhRaise(state: string, field: string, at: string): unknown };
  if (flags.enabled === null) multi.hdel(key, 'enabled');
  else if (flags.enabled !== undefined) multi.hset(key, 'enabled', flags.enabled ? '1' : '0');
  // Hosts note fires on their own clocks: the latest wins, so a host behind never re-opens a fire.
  if (flags.lastFireAt === null) multi.hdel(key, 'lastFireAt');
  else if (flags.lastFireAt !== undefined) multi.jhRaise(key, 'lastFireAt', String(flags.lastFireAt));
  multi.sadd(p.keys.jobs, name);
  await multi.exec();
  await replicated(p.connections, p.producer);
}
