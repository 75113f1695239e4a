import type { Clock } from '../core/contract/clock.js';
import type { ConfigInput } from '../core/contract/config.js';
import { type AnyHostEvent, type EventType, eventHost } from '../core/contract/events.js';
import { type Logger, silentLogger } from '../core/contract/logger.js';
import type { PluginDefinition } from '../core/contract/plugin.js';
import type { Run } from '../core/contract/run.js';
import { createHost, type Host } from '../core/engine/host.js';
import { type Tap, until } from './helpers.js';
import type { TestRedis } from './redis.js';

/**
 * Hosts in cluster mode inside the test process, each with its own Redis connections, BullMQ
 * workers and engine: what separate processes would be, minus the process boundary (the e2e
 * tests start real `jobhost start` children). Short lock timing, so takeovers take about a second.
 */

export interface ClusterHost {
  host: Host;
  /** The events this host emitted itself (not those it relays from other hosts). */
  events: AnyHostEvent[];
  /** Every event on its bus: its own and the other hosts' (with `data.host`). */
  all: AnyHostEvent[];
  of<T extends EventType>(type: T): Array<Extract<AnyHostEvent, { type: T }>>;
}

let prefixes = 0;

/** A prefix of its own for each test, so tests of one file share a redis-server without sharing keys. */
export function freshPrefix(): string {
  return `t${process.pid}-${++prefixes}`;
}

export interface ClusterOptions {
  prefix?: string;
  /** The config of every host (backend and cluster.id are filled in). */
  config?: ConfigInput;
  plugins?: ReadonlyArray<PluginDefinition<never> | PluginDefinition | object>;
  /** Per host: its own plugins (instead of `plugins`). */
  pluginsOf?: (i: number) => ReadonlyArray<PluginDefinition<never> | PluginDefinition | object>;
  start?: boolean;
  /** Per host: its clock (the engine's: schedules, ids), e.g. one running behind. */
  clockOf?: (i: number) => Clock;
  /** The first host's number (ids are `h<first>`, `h<first+1>`, ...; default 0). */
  first?: number;
  /** More of `backend` (sentinels, waitReplicas, ...). */
  backend?: Record<string, unknown>;
  /** Per host: its logger (default silent). */
  loggerOf?: (i: number) => Logger;
  /** Per host: the Redis URL it connects to (default the server's), e.g. through a proxy. */
  urlOf?: (i: number) => string;
}

/** `n` started hosts (`h0`, `h1`, ...) on one Redis; stopped when the test ends. */
export async function startCluster(t: Tap, redis: Pick<TestRedis, 'url'>, n: number, options: ClusterOptions = {}): Promise<ClusterHost[]> {
  const prefix = options.prefix ?? freshPrefix();
  const hosts: ClusterHost[] = [];
  for (let i = 0; i < n; i++) {
    const host = createHost({
      config: {
        ...options.config,
        backend: { kind: 'redis', url: options.urlOf?.(i) ?? redis.url, prefix, lockDuration: 1000, stalledInterval: 500, ...options.backend },
        cluster: { id: `h${(options.first ?? 0) + i}` },
      },
      logger: options.loggerOf?.(i) ?? silentLogger(),
      clock: options.clockOf?.(i),
      random: () => 0.5,
      plugins: (options.pluginsOf?.(i) ?? options.plugins ?? []) as PluginDefinition[],
    });
    const events: AnyHostEvent[] = [];
    const all: AnyHostEvent[] = [];
    host.on('*', (e) => {
      all.push(e);
      if (eventHost(e) === undefined) events.push(e);
    });
    t.teardown(() => host.stop({ graceMs: 0 }));
    hosts.push({
      host,
      events,
      all,
      of: <T extends EventType>(type: T) => events.filter((e): e is Extract<AnyHostEvent, { type: T }> => e.type === type),
    });
  }
  if (options.start !== false) for (const h of hosts) await h.host.start();
  return hosts;
}

/** Reads the run from `host` until `check` holds (bounded, real time). */
export async function runWhen(host: Host, id: string, check: (run: Run) => boolean, ms = 15_000, what = `run ${id}`): Promise<Run> {
  let last: Run | undefined;
  try {
    await until(
      async () => {
        last = await host.run(id);
        return last !== undefined && check(last);
      },
      ms,
      what,
    );
  } catch (err) {
    // A read that failed (Redis out of reach) is the caller's to retry, as it was.
    if (!/^timed out after/.test((err as Error).message)) throw err;
    // Say what the run was last seen as: a lost run and a stuck one are different bugs.
    const seen =
      last === undefined ? 'not found' : JSON.stringify({ status: last.status, attempts: last.attempts, runAt: last.runAt, createdAt: last.createdAt });
    throw new Error(`${(err as Error).message}; last seen: ${seen}`);
  }
  return last!;
}

/** The run once it is final, read from `host` (the run may end on any host). */
export function finalOn(host: Host, id: string, ms = 15_000): Promise<Run> {
  return runWhen(host, id, (r) => r.status === 'succeeded' || r.status === 'failed' || r.status === 'canceled', ms, `run ${id} to end`);
}
