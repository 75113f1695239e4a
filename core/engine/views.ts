import type { Backend, Depths, JobState } from '../contract/backend.js';
import { isoTime } from '../contract/clock.js';
import { wants } from '../contract/plugin-schema.js';
import type { BackendStats, ClusterHost, ClusterView, HostState, JobStats, JobView, StaleJob, Stats } from '../contract/views.js';
import { scheduleText } from '../schedule/schedule-text.js';
import { type EffectiveJob, jobVersion, paramsJsonSchema } from './jobs.js';

/** What the host shows of itself: job views (`GET /jobs`), stats (`GET /stats`), stale jobs (`/ready`). */

/** A registered job as `GET /jobs` shows it now: its next fire while the host keeps it armed, its load from the backend. */
export function liveJobView(job: EffectiveJob, state: HostState, backend: Backend, scheduler: { next(name: string): number | null }): JobView {
  const armed = job.enabled && state !== 'stopping' && state !== 'stopped';
  const load = backend.activeRuns(job.name);
  const pause = { job: backend.pauses.isPaused('job', job.name), queue: backend.pauses.isPaused('queue', job.queue) };
  return {
    ...jobView(job, backend.jobState(job.name), {
      nextRun: armed ? scheduler.next(job.name) : null,
      active: load.active,
      running: load.running,
      rateLimited: load.rateLimited ?? 0,
    }),
    paused: pause.job || pause.queue,
    pause,
  };
}

export function jobView(
  job: EffectiveJob,
  record: Readonly<JobState>,
  live: { nextRun: number | null; active: number; running: number; rateLimited?: number },
): Omit<JobView, 'paused' | 'pause'> {
  return {
    name: job.name,
    description: job.description,
    schedule: job.schedule?.label ?? null,
    scheduleText: scheduleText(job.scheduleSpec),
    timezone: job.timezone,
    enabled: job.enabled,
    file: job.file,
    nextRun: live.nextRun === null ? null : isoTime(live.nextRun),
    lastRun: record.lastRun ? { ...record.lastRun } : null,
    lastSuccessAt: record.lastSuccessAt ?? null,
    counts: {
      succeeded: record.counts?.succeeded ?? 0,
      failed: record.counts?.failed ?? 0,
      canceled: record.counts?.canceled ?? 0,
      queued: live.active - live.running,
      running: live.running,
    },
    paramsSchema: paramsJsonSchema(job.paramsSchema),
    paramDefaults: { ...job.paramDefaults },
    queue: job.queue,
    concurrency: job.concurrency,
    overlap: job.overlap,
    retry: { ...job.retry },
    timeoutMs: job.timeoutMs,
    cooldownMs: job.cooldownMs,
    once: job.once,
    catchUp: job.catchUp,
    isolation: job.isolation,
    on: job.on.map((o) => ({ ...o })),
    notify: job.notify ? structuredClone(job.notify) : null,
    rateLimit: job.rateLimit ? { max: job.rateLimit.max, perMs: job.rateLimit.perMs, waiting: live.rateLimited ?? 0 } : null,
    debounceMs: job.debounceMs || null,
    after: job.after.map((a) => ({ job: a.job, status: a.status })),
    alert: {
      failStreak: record.failStreak ?? 0,
      open: (record.failStreak ?? 0) >= (job.notify?.after ?? 1) && job.notify !== null && wants(job.notify, 'failed'),
      lastRecoveredStreak: record.endedStreak ?? 0,
      missedThrough: record.missedThrough === undefined ? null : isoTime(record.missedThrough),
    },
  };
}

/** Per-job and total counts from the job records (lifetime), durations from the recent ones. */
export function runStats(
  records: ReadonlyMap<string, Readonly<JobState>>,
  names: Iterable<string>,
): { perJob: Record<string, JobStats>; succeeded: number; failed: number; canceled: number } {
  const perJob: Record<string, JobStats> = {};
  let succeeded = 0;
  let failed = 0;
  let canceled = 0;
  for (const name of [...new Set(names)].sort()) {
    const r = records.get(name) ?? {};
    const s = r.counts?.succeeded ?? 0;
    const f = r.counts?.failed ?? 0;
    const c = r.counts?.canceled ?? 0;
    succeeded += s;
    failed += f;
    canceled += c;
    perJob[name] = {
      count: s + f + c,
      succeeded: s,
      failed: f,
      canceled: c,
      successRate: s + f > 0 ? s / (s + f) : null,
      p50Ms: percentile(r.durations ?? [], 50),
      p95Ms: percentile(r.durations ?? [], 95),
      lastRun: r.lastRun ? { ...r.lastRun } : null,
    };
  }
  return { perJob, succeeded, failed, canceled };
}

/**
 * Whether an enabled scheduled job has had no success within twice its period (the gap between
 * its next two fires); a job that never succeeded counts from `since`.
 */
function staleness(job: EffectiveJob, record: Readonly<JobState>, registeredAt: number, now: number): StaleJob | null {
  if (!job.enabled || !job.schedule) return null;
  let periodMs: number;
  try {
    const first = job.schedule.next(now);
    const second = first === null ? null : job.schedule.next(first);
    if (first === null || second === null) return null;
    periodMs = second - first;
  } catch {
    return null; // the scheduler logs a schedule that cannot compute its next fire
  }
  const lastSuccessAt = record.lastSuccessAt ?? null;
  const since = lastSuccessAt !== null ? Date.parse(lastSuccessAt) : registeredAt;
  return now - since > 2 * periodMs ? { job: job.name, schedule: job.schedule.label, periodMs, lastSuccessAt } : null;
}

/** Every stale job among `jobs` (see `staleness`). */
export function staleJobs(
  jobs: Iterable<[string, { job: EffectiveJob; registeredAt: number }]>,
  record: (name: string) => Readonly<JobState>,
  now: number,
): StaleJob[] {
  const stale: StaleJob[] = [];
  for (const [name, { job, registeredAt }] of jobs) {
    const s = staleness(job, record(name), registeredAt, now);
    if (s) stale.push(s);
  }
  return stale;
}

/** `GET /stats`: lifetime totals from the job states, live depths from the backend. */
export function hostStats(
  state: HostState,
  jobs: Iterable<EffectiveJob>,
  records: ReadonlyMap<string, Readonly<JobState>>,
  depths: Depths,
  store: BackendStats,
  seq: number,
): Stats {
  const registered = [...jobs];
  const withCounts = [...records].filter(([, r]) => r.counts).map(([n]) => n);
  const { perJob, succeeded, failed, canceled } = runStats(records, [...registered.map((j) => j.name), ...withCounts]);
  let enabled = 0;
  let scheduled = 0;
  for (const job of registered) {
    if (job.enabled) enabled++;
    if (job.enabled && job.schedule) scheduled++;
  }
  return {
    state,
    totals: {
      runs: succeeded + failed + canceled,
      succeeded,
      failed,
      canceled,
      queued: depths.ready + depths.parked,
      delayed: depths.delayed,
      running: depths.running,
    },
    successRate: succeeded + failed > 0 ? succeeded / (succeeded + failed) : null,
    jobs: { total: registered.length, enabled, running: depths.running, scheduled },
    perJob,
    queues: depths.queues,
    store,
    events: { seq },
  };
}

/** Nearest-rank percentile of unsorted values; null for none. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

/** `GET /cluster` from the live hosts (SPEC §11): `drift` lists jobs whose version differs between the hosts that load them. */
export function clusterView(backend: ClusterView['backend'], self: string, hosts: readonly ClusterHost[]): ClusterView {
  const byJob = new Map<string, Record<string, string>>();
  for (const h of hosts) for (const j of h.jobs) byJob.set(j.name, { ...byJob.get(j.name), [h.id]: j.version });
  const drift: ClusterView['drift'] = [];
  for (const [job, versions] of [...byJob].sort(([a], [b]) => a.localeCompare(b))) {
    if (new Set(Object.values(versions)).size > 1) drift.push({ job, hosts: Object.keys(versions).sort(), versions });
  }
  return { backend, self, hosts: [...hosts], drift };
}

/** This host as it announces itself to the others (`GET /cluster`): its URL, start, and each loaded job's version. */
export function describeHost(
  jobs: Iterable<[string, { job: EffectiveJob }]>,
  url: string | null,
  startedAt: string,
  destinations: readonly string[] = [],
): Pick<ClusterHost, 'url' | 'startedAt' | 'jobs' | 'destinations'> {
  const list = [...jobs].map(([name, e]) => ({ name, version: jobVersion(e.job) })).sort((a, b) => a.name.localeCompare(b.name));
  return { url, startedAt, jobs: list, destinations: [...destinations].sort() };
}
