import type { BackendHooks } from '../contract/backend.js';
import { type Clock, isoTime } from '../contract/clock.js';
import type { RedisBackendConfig } from '../contract/config.js';
import type { Logger } from '../contract/logger.js';
import type { ClusterFaults } from '../contract/store-health.js';
import { AddBatch } from './add-batch.js';
import { type AfterChainOptions, chainStep } from './after-chain.js';
import { Attempts } from './attempts.js';
import { RedisAudit } from './audit-records.js';
import { RelayBacklog } from './backlog.js';
import { Connections } from './connections.js';
import { DelayTimers } from './delay-timers.js';
import { Deliveries } from './deliveries.js';
import { Dispatcher } from './dispatcher.js';
import { EventRelay } from './event-relay.js';
import { Heartbeat } from './heartbeat.js';
import { History } from './history.js';
import { CANCELED_REASON, ClusterKeys } from './keys.js';
import { LateFinishes } from './late-finishes.js';
import { rateLimitWait, wakeAfterLimit } from './limits-rate.js';
import { LoadedJobs } from './loaded-jobs.js';
import { Mirror } from './mirror.js';
import { ClusterPauses } from './pause.js';
import { defineScripts, type ScriptedRedis } from './scripts.js';
import { SETTINGS_TTL_MS } from './settings.js';
import { StormControl } from './storm.js';
import { GapWatch } from './stream-gaps.js';
import { type StreamEntry, StreamReader } from './stream-reader.js';
import { Sweeper } from './sweep.js';
import { incarnation, UntoldEnds } from './untold.js';

/** What the redis backend is made from. */
export interface RedisBackendOptions {
  config: RedisBackendConfig;
  hostId: string;
  keepRuns: number;
  keepDays: number;
  concurrency: number;
  queues: Readonly<Record<string, number>>;
  /** Deliveries of notifications in flight at once on this host (`notifications.concurrency`; default 16). */
  deliveryConcurrency?: number;
  /** After how long a destination no live host lists has its deliveries ended here (default 30 s; tests shorten it). */
  orphanAfterMs?: number;
  /** Random source for retry jitter. */
  random: () => number;
  logger: Logger;
}

/** The parts of the redis backend, wired to each other. */
export interface RedisParts {
  keys: ClusterKeys;
  connections: Connections;
  producer: ScriptedRedis;
  commands: ScriptedRedis;
  mirror: Mirror;
  attempts: Attempts;
  dispatcher: Dispatcher;
  reader: StreamReader;
  history: History;
  jobs: LoadedJobs;
  delayTimers: DelayTimers;
  sweeper: Sweeper;
  heartbeat: Heartbeat;
  relay: EventRelay;
  /** Runs `after` added in their parent's end, whose run.queued the end's write shared already. */
  chained: Set<string>;
  /** Runs this host is adding, by id: announces each one's run.queued here (once), whoever comes first, its add or its start. */
  announcing: Map<string, () => void>;
  /** Events and log lines waiting for Redis (bounded). */
  backlog: RelayBacklog;
  deliveries: Deliveries;
  late: LateFinishes;
  /** What cuts from Redis cost this host (`health().faults`). */
  faults(): ClusterFaults;
  storm: StormControl;
  /** Ends of runs written but not yet told (`untold.ts`). */
  untold: UntoldEnds;
  audit: RedisAudit;
  /** The adds of one event-loop turn, one MULTI (`add-batch.ts`). */
  adds: AddBatch;
  pauses: ClusterPauses;
}

/** What the parts need of the backend itself. */
export interface BackendSide {
  /** The engine's hooks, once opened (undefined before). */
  hooks(): BackendHooks | undefined;
  /** The same, for parts that only run once opened (throws before). */
  engine(): BackendHooks;
  /** Whether dispatch has started. */
  started(): boolean;
  /** Entries read from the streams this host follows (BullMQ's queue events, the cluster stream). */
  onEntries(entries: StreamEntry[]): void;
}

/**
 * Builds the redis backend's parts (connections, the mirror of job state, attempts, dispatch,
 * stream reading, history, the loaded jobs, delay wake-ups, the retention sweep, heartbeats, the
 * event relay, the delivery of notifications, storm control and the audit trail) and ties them together; the backend owns their lifecycle. Parts built later
 * are reached through closures, called only once everything exists.
 */
export function wireRedisBackend(o: RedisBackendOptions, clock: Clock, side: BackendSide): RedisParts {
  const logger = o.logger;

  const keys = new ClusterKeys(o.config.prefix, o.config.streamLength);
  const connections = new Connections(o.config, `jobhost:${o.hostId}`, o.logger);
  const producer = defineScripts(connections.producer);
  const commands = defineScripts(connections.commands);
  const mirror: Mirror = new Mirror({
    redis: producer,
    keys,
    clock,
    logger,
    settingsTtlMs: SETTINGS_TTL_MS,
    lockDuration: o.config.lockDuration,
    stalledInterval: o.config.stalledInterval,
    flagsChanged: (name) => side.hooks()?.flagsChanged(name),
    queueOf: (name) => jobs.get(name)?.def.queue,
    // While its rateLimit window is full, none of a job's waiting runs may start: parked, as on one host.
    concurrencyOf: (name) => {
      const jq = jobs.get(name);
      return jq === undefined ? undefined : rateLimitWait(jq) > 0 ? 0 : jq.def.concurrency;
    },
    canceledReason: CANCELED_REASON,
  });
  const late = new LateFinishes({ hostId: o.hostId, keys, commands, logger });
  const announcing = new Map<string, () => void>();
  const attempts: Attempts = new Attempts({
    hostId: o.hostId,
    keys,
    commands,
    clock,
    random: o.random,
    logger,
    hooks: () => side.engine(),
    mirror,
    late: (run, attempt, code) => late.refused(run, attempt, code),
    beginning: (runId) => announcing.get(runId)?.(),
    marked: (runId) => untold.marked(runId),
  });
  const dispatcher = new Dispatcher(
    {
      clock,
      logger,
      concurrency: o.concurrency,
      weights: o.queues,
      job: (name) => {
        const jq = jobs.get(name);
        return jq && !jq.removed && !pauses.holds(name, jq.def.queue) ? jq : undefined;
      },
      run: (jq, job, token, fetchNext) => attempts.run(jq, job, token, fetchNext),
      full: (full) => reader.setBusy(full),
      empty: (jq) => wakeAfterLimit(jq, clock, delayTimers),
      reachable: () => connections.reach().available,
      sweep: () => {
        // Jobs whose set-up failed while Redis was out of reach are tried again here too.
        void jobs.reconcile();
        for (const name of jobs.names()) dispatcher.markReady(name);
      },
    },
    o.hostId,
  );
  // Cut off, the dispatcher fetched nothing (SPEC §11, partitions): it takes runs again once Redis answers.
  connections.producer.on('ready', () => dispatcher.pump());
  const gaps = new GapWatch(keys.clusterStream, (gap) => {
    logger.warn(
      { code: 'EVENTS_LOST', host: o.hostId, redis: connections.target, ...gap },
      'events of other hosts were lost: this host fell behind the cluster stream by more than it keeps (backend.streamLength); its WebSocket clients are told to reload (events.gap)',
    );
    side.hooks()?.eventsLost?.(gap);
    void attempts.recheckCancels();
  });
  const reader = new StreamReader(connections.reader, producer, logger, (entries) => side.onEntries(entries), gaps);
  const backlog = new RelayBacklog(logger);
  const history = new History(producer, commands, keys, connections, backlog);
  const chained = new Set<string>();
  const chain: AfterChainOptions = {
    hostId: o.hostId,
    keys,
    retention: { keepRuns: o.keepRuns, keepDays: o.keepDays },
    logger,
    hooks: () => side.hooks()?.after,
    queue: (job) => jobs.get(job)?.queue,
    added: (run, delayed) => {
      // Its run.queued went to the other hosts in the end's write: not shared again (see `chained`).
      chained.add(run.id);
      mirror.added(run, delayed);
      side.engine().observer.queued(run, delayed);
      if (!delayed && jobs.has(run.job)) dispatcher.markReady(run.job);
    },
  };
  const { lockDuration, stalledInterval } = o.config;
  // Read once opened (the engine's start time is set before the backend opens), the first time a run ends here.
  let me: string | undefined;
  const self = (): string => (me ??= incarnation({ id: o.hostId, startedAt: side.engine().describe().startedAt }));
  const jobs: LoadedJobs = new LoadedJobs({
    connections,
    producer,
    keys,
    settings: {
      prefix: keys.prefix,
      hostId: o.hostId,
      incarnation: self,
      lockDuration,
      stalledInterval,
      chain: (job) => (end) => chainStep(chain, { ...end, job }),
    },
    processor: attempts.processor,
    clock,
    logger,
    definition: (name) => side.engine().job(name),
    loaded: async (jq) => {
      await reader.follow(jq.queue.keys['events']!);
      await delayTimers.armNext(jq.name);
      if (side.started()) dispatcher.markReady(jq.name);
    },
    unloaded: (jq) => {
      dispatcher.forget(jq.name);
      reader.unfollow(jq.queue.keys['events']!);
    },
  });
  const delayTimers = new DelayTimers(
    clock,
    producer,
    (name) => jobs.get(name)?.queue.keys['delayed'],
    (name) => dispatcher.markReady(name),
  );
  const sweeper = new Sweeper({
    clock,
    redis: producer,
    keys,
    history,
    hostId: o.hostId,
    keepDays: o.keepDays,
    logger,
    queues: () => [...jobs.values()].map((jq) => jq.queue),
  });
  const heartbeat = new Heartbeat({
    redis: producer,
    keys,
    hostId: o.hostId,
    clock,
    logger,
    describe: () => ({ id: o.hostId, ...side.engine().describe(), lastSeen: isoTime(clock.now()), running: attempts.size }),
  });
  const relay = new EventRelay(connections.commands, keys.clusterStream, o.hostId, logger, keys.streamLength, backlog);
  const deliveries = new Deliveries({
    keys,
    connections,
    producer,
    commands,
    clock,
    logger,
    hostId: o.hostId,
    concurrency: o.deliveryConcurrency ?? 16,
    lockDuration,
    stalledInterval,
    hooks: () => side.engine(),
    hosts: () => heartbeat.hosts(),
    fence: (n) => untold.fence(n),
    ...(o.orphanAfterMs !== undefined && { orphanAfterMs: o.orphanAfterMs }),
  });
  const untold = new UntoldEnds({
    clock,
    redis: producer,
    keys,
    self,
    logger,
    live: () => heartbeat.hosts().map(incarnation),
    // A job whose plugin here tells nothing (another version does) is left to a host whose plugin does.
    jobs: () => [...jobs.values()].filter((jq) => jq.def.notify).map((jq) => jq.name),
    getRun: (id) => history.getRun(id),
    observer: () => side.hooks()?.observer,
  });
  const storm = new StormControl(producer, keys);
  const audit = new RedisAudit({ redis: connections.producer, connections, key: keys.audit, keepRuns: o.keepRuns, keepDays: o.keepDays, clock });
  const pauses: ClusterPauses = new ClusterPauses({
    redis: producer,
    keys,
    connections,
    clock,
    logger,
    queueOf: (name) => jobs.queueOf(name),
    loaded: () => [...jobs.values()].map((jq) => ({ name: jq.name, queue: jq.def.queue })),
    wake: (name) => dispatcher.markReady(name),
  });
  return {
    keys,
    connections,
    producer,
    commands,
    mirror,
    attempts,
    dispatcher,
    reader,
    history,
    jobs,
    delayTimers,
    sweeper,
    heartbeat,
    relay,
    backlog,
    deliveries,
    late,
    faults: () => ({ lateFinishes: late.count, ...gaps.tally }),
    storm,
    untold,
    audit,
    chained,
    announcing,
    adds: new AddBatch(connections),
    pauses,
  };
}
