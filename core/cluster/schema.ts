import { HostError } from '../contract/errors.js';
import type { ClusterKeys } from './keys.js';
import type { ScriptedRedis } from './scripts.js';

/**
 * The version of jobhost's key layout under a prefix (its own keys and what it asks of BullMQ's),
 * stamped at `<prefix>:schema` by the first host (SET NX: a layout written before the stamp
 * existed is this one, schema 1). A host that finds a schema it does not know refuses to start
 * (BACKEND_SCHEMA_UNSUPPORTED) before it writes anything else, rather than write beside keys it
 * would misread. A later version that changes the layout raises the number and says, in the
 * README's upgrade notes, whether it reads the older one (a rolling upgrade) or needs all hosts
 * stopped first.
 */

/** The key schema this version writes, and the newest it reads. */
export const REDIS_SCHEMA = 1;

/** Stamps the prefix with REDIS_SCHEMA when it has no stamp; throws BACKEND_SCHEMA_UNSUPPORTED when it has another. */
export async function claimSchema(redis: ScriptedRedis, keys: ClusterKeys, target: string): Promise<void> {
  const replies = await redis.multi().set(keys.schema, String(REDIS_SCHEMA), 'NX').get(keys.schema).exec();
  const found = replies?.[1]?.[1];
  if (found === String(REDIS_SCHEMA)) return;
  throw new HostError(
    'BACKEND_SCHEMA_UNSUPPORTED',
    `the keys under prefix "${keys.prefix}" on ${target} have schema ${JSON.stringify(found)} (${keys.schema}), written by another jobhost version; this one reads schema ${REDIS_SCHEMA} only and writes nothing beside them: run the version the other hosts run, or use another backend.prefix`,
    { redis: target, prefix: keys.prefix, schema: found ?? null, supported: REDIS_SCHEMA },
  );
}
