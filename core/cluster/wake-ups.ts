import type { BackendHooks } from '../contract/backend.js';
import { HOST_EVENT } from './event-relay.js';
import type { StreamEntry } from './stream-reader.js';
import type { RedisParts } from './wiring.js';

/**
 * What the streams a host reads tell it: on the cluster stream, other hosts' events (relayed to
 * the engine) and cancel requests for runs running here; on a job's BullMQ event stream, a
 * delayed run to wake for, or anything that may mean a run to take (added, back to wait, a slot
 * of a job at its limit freed).
 */
export function onStreamEntries(p: RedisParts, engine: BackendHooks, entries: readonly StreamEntry[]): void {
  const prefix = `${p.keys.prefix}:`;
  // A job's wake-up once per read, not once per entry: a busy job's stream brings a start and an
  // end for every run, and each wake-up is a pass of the dispatcher.
  let ready: Set<string> | undefined;
  for (const { stream, fields } of entries) {
    if (stream === p.keys.clusterStream) {
      if (fields['event'] === HOST_EVENT) p.relay.receive(fields, engine);
      else if (fields['event'] === 'cancel.request' && fields['runId']) {
        const job = fields['job'] ?? '';
        p.attempts.cancel(p.jobs.get(job), fields['runId'], fields['reason'] ?? 'canceled by request');
      }
      continue;
    }
    const name = stream.slice(prefix.length, -':events'.length);
    const event = fields['event'];
    if (event === 'delayed') p.delayTimers.arm(name, Number(fields['delay']));
    // Anything but a start, a progress or a refused add may mean a run to take.
    else if (event !== 'active' && event !== 'progress' && event !== 'duplicated' && event !== 'deduplicated') (ready ??= new Set()).add(name);
  }
  if (ready) for (const name of ready) p.dispatcher.markReady(name);
}
