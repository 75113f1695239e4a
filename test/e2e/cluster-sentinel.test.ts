import t, { type Test } from 'tap';
import { isHostError } from '../../core/contract/errors.js';
import { definePlugin } from '../../core/contract/plugin.js';
import type { Host } from '../../core/engine/host.js';
import { type ClusterHost, finalOn, startCluster } from '../cluster.js';
import { until } from '../helpers.js';
import { type SentinelSet, startSentinelSet } from '../redis-ha.js';

/**
 * SPEC §11, high availability: two hosts reach Redis through three Sentinels (a master, two
 * replicas) with `waitReplicas: 1`. The master is killed (kill -9) in the middle of a stream of
 * triggers: a short window of 503 BACKEND_UNAVAILABLE (or BACKEND_NOT_REPLICATED), then triggers
 * are acknowledged again, every acknowledged run exists and runs, and each host takes runs again
 * (BullMQ users report workers that stay connected and take nothing after a failover). Then a
 * planned failover (SENTINEL FAILOVER: the old master stays up, demoted): the same holds.
 */

const host = (i: number): string => `h${i}`;

/**
 * Jobs: `count` on both hosts; `pin-hN` only on host N (a run of it can start there only).
 * `count` has attempts to spare: a run's start or end written to the old master after the last
 * acknowledged write may be lost in the failover; its attempt then ends INTERRUPTED (SPEC §4) and it runs again.
 */
function pluginsOf(i: number) {
  return [
    definePlugin({ name: 'count', concurrency: 50, retry: { attempts: 3, delay: 10 }, handler: () => 'ok' }),
    definePlugin({ name: `pin-${host(i)}`, handler: () => host(i) }),
  ];
}

/** Each host's pinned job (a trigger of a job needs it loaded): both runs start within 5 s, so both hosts take runs from Redis. */
async function everyHostTakesRuns(t: Test, hosts: ClusterHost[], what: string): Promise<void> {
  for (const [i, h] of hosts.entries()) {
    const t0 = Date.now();
    // A planned failover refuses acknowledgements for 15-17 s here (the demoted master re-syncs): more under load.
    const { runId } = await retrying(() => h.host.trigger(`pin-${host(i)}`), 45_000);
    await until(() => h.of('run.started').some((e) => e.data.runId === runId), 5000, `${what}: a run pinned to ${host(i)} to start there`);
    t.pass(`${what}: ${host(i)} started a run ${Date.now() - t0} ms after it was triggered`);
  }
}

/** Tries `fn` until it resolves (triggers refused 503 while the failover lasts), for at most `ms`. */
async function retrying<T>(fn: () => Promise<T>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline || !isHostError(err) || !/^BACKEND_/.test(err.code)) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

interface Traffic {
  acked: string[];
  refused: Map<string, number>;
  /** When the first refusal came, and the last one. */
  window: { from: number; to: number } | null;
  /** Acknowledgements after the last refusal. */
  ackedSince: number;
  /** The last refusal's message (what a failed wait reports). */
  lastRefusal: string;
  stop(): Promise<void>;
}

/** Triggers `count` from every host, `lanes` at a time, until stopped; notes what was acknowledged and refused. */
function traffic(hosts: Host[], lanes: number): Traffic {
  const state: Traffic = { acked: [], refused: new Map(), window: null, ackedSince: 0, lastRefusal: '', stop: async () => undefined };
  let running = true;
  const lane = async (n: number): Promise<void> => {
    while (running) {
      try {
        const { runId } = await hosts[n % hosts.length]!.trigger('count');
        state.acked.push(runId);
        state.ackedSince++;
      } catch (err) {
        const code = isHostError(err) ? err.code : String(err);
        state.refused.set(code, (state.refused.get(code) ?? 0) + 1);
        state.lastRefusal = (err as Error).message;
        state.window = { from: state.window?.from ?? Date.now(), to: Date.now() };
        state.ackedSince = 0;
        // Pace the retries of a refused lane (a client would honour Retry-After).
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const all = Promise.all(Array.from({ length: lanes }, (_, n) => lane(n)));
  state.stop = async () => {
    running = false;
    await all;
  };
  return state;
}

/**
 * SENTINEL FAILOVER, asked again while Sentinel answers INPROG: the failover before it (the
 * killed master's) is still being completed, its replicas reconfigured, for a while after the new
 * master is named; or NOGOODSLAVE, while the one replica left still syncs.
 */
async function plannedFailover(set: SentinelSet): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await set.sentinelCommand('FAILOVER', set.name);
      return;
    } catch (err) {
      // NOGOODSLAVE: the replica is still syncing with the master the last failover named.
      if (Date.now() > deadline || !/^(INPROG|NOGOODSLAVE)/.test((err as Error).message)) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function failover(t: Test, set: SentinelSet, hosts: ClusterHost[], how: 'kill' | 'planned'): Promise<void> {
  const before = await set.masterPort();
  const load = traffic(
    hosts.map((h) => h.host),
    6,
  );
  // The lanes stop whatever happens: a failed wait must not leave them triggering forever.
  try {
    await until(() => load.acked.length >= 100, 20_000, '100 acknowledged triggers before the failover');
    if (how === 'kill') await set.master.kill9();
    else await plannedFailover(set);
    const ackedBefore = load.acked.length;
    let asked = Date.now();
    await until(
      async () => {
        if ((await set.masterPort()) !== before) return true;
        // A planned failover Sentinel accepted and then gave up (its replica not ready in time, on a loaded machine): asked again.
        if (how === 'planned' && Date.now() - asked > 10_000) {
          asked = Date.now();
          await plannedFailover(set);
        }
        return false;
      },
      45_000,
      'Sentinel to name a new master',
    );
    await until(
      () => load.window !== null && load.acked.length >= ackedBefore + 100 && load.ackedSince >= 50,
      60_000,
      '50 acknowledged triggers in a row after the failover',
    ).catch((err: Error) => {
      // What the lanes saw: refused all along (which code), or acknowledged in short runs.
      const seen = {
        ackedBefore,
        acked: load.acked.length,
        ackedSince: load.ackedSince,
        refused: Object.fromEntries(load.refused),
        last: load.lastRefusal,
        window: load.window,
        now: Date.now(),
      };
      throw new Error(`${err.message}: ${JSON.stringify(seen)}`);
    });
  } finally {
    await load.stop();
  }
  const window = load.window!;
  // A planned failover refuses while the demoted master resyncs (BACKEND_NOT_REPLICATED): 15-22 s
  // here, 32 s once on a machine at load 14; a kill, 2-4 s. Bounds that still tell a window from an outage.
  t.ok(
    window.to - window.from < (how === 'kill' ? 30_000 : 45_000),
    `${how}: triggers were refused from the first refusal to the last for ${window.to - window.from} ms, then acknowledged again`,
  );
  t.same(
    [...load.refused.keys()].filter((code) => code !== 'BACKEND_UNAVAILABLE' && code !== 'BACKEND_NOT_REPLICATED'),
    [],
    `${how}: refusals were all 503 BACKEND_* (${JSON.stringify(Object.fromEntries(load.refused))})`,
  );
  const ended = await Promise.all(load.acked.map((id) => retrying(() => finalOn(hosts[0]!.host, id, 30_000), 30_000)));
  const others = ended
    .filter((r) => r.status !== 'succeeded')
    .map((r) => ({ id: r.id, status: r.status, attempts: r.attempts.map((a) => a.error?.code ?? 'ok') }));
  t.same(others, [], `${how}: all ${load.acked.length} acknowledged runs exist afterwards and succeeded`);
  await everyHostTakesRuns(t, hosts, `after the ${how === 'kill' ? 'master was killed' : 'planned failover'}`);
}

t.test(
  'through Sentinel with waitReplicas: 1, a killed master, then a planned failover: a short 503 window, nothing acknowledged lost, every host takes runs again',
  async (t) => {
    const set = await startSentinelSet(t);
    const hosts = await startCluster(t, { url: 'redis://127.0.0.1:6379' }, 2, {
      backend: { sentinels: set.sentinels, name: set.name, waitReplicas: 1, waitTimeout: 1000 },
      pluginsOf,
    });
    const ready = hosts[0]!.host.storeHealth().backend;
    t.match(ready, { available: true, target: `redis+sentinel://${set.sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${set.name}` });
    await everyHostTakesRuns(t, hosts, 'before any failover');
    await failover(t, set, hosts, 'kill');
    await failover(t, set, hosts, 'planned');
  },
);
