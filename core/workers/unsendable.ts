import { type Batch, IN, IN_FIELDS, IN_HEADER } from './protocol.js';

/**
 * A batch to a thread without the ops that cannot cross (`postMessage` threw a DataCloneError for
 * it: a function in a run's params, from an app's own objects, an event payload or a schema's
 * transform). Each op is cloned alone to find them, so only after the whole batch failed. A
 * `ctx.host` answer that cannot cross is answered with an error instead; any other op is dropped
 * and handed to `dropped` (a run's: the pool fails that attempt).
 */
export function sendableBatch(batch: Batch, dropped: (op: unknown[]) => void): Batch {
  const out: Batch = [batch[0], batch[1]];
  for (let i = IN_HEADER; i < batch.length; i += 1 + IN_FIELDS[batch[i] as 0]) {
    const op = batch.slice(i, i + 1 + IN_FIELDS[batch[i] as 0]);
    try {
      structuredClone(op);
      out.push(...op);
      continue;
    } catch {}
    if (op[0] === IN.reply) out.push(IN.reply, op[1], false, 'the answer cannot be sent to a worker thread');
    dropped(op);
  }
  return out;
}
