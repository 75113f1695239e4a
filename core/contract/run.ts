import type { RunError } from './errors.js';

export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';
export type RunSource = 'schedule' | 'http' | 'event' | 'retry' | 'recovery' | 'catch-up' | 'api';
export const FINAL_STATUSES: ReadonlySet<RunStatus> = new Set(['succeeded', 'failed', 'canceled']);

export interface Attempt {
  n: number;
  startedAt: string;
  endedAt: string | null;
  error: RunError | null;
}

export interface Progress {
  fraction: number;
  text: string | null;
}

/** A run as it is stored and served (SPEC §6). Times are ISO strings. */
export interface Run {
  id: string;
  job: string;
  status: RunStatus;
  source: RunSource;
  params: unknown;
  priority: number;
  key: string | null;
  queue: string;
  createdAt: string;
  runAt: string;
  startedAt: string | null;
  endedAt: string | null;
  durationMs: number | null;
  progress: Progress;
  attempts: Attempt[];
  maxAttempts: number;
  result: unknown;
  error: RunError | null;
  /** For a run created by `POST /runs/:id/retry`, the run it replays. */
  retryOf: string | null;
  /** The event that created the run, when `source` is `event`. */
  event: string | null;
  /** For a run re-queued after a crash (`source: 'recovery'`), the source it was created with. */
  origin?: RunSource;
}

export function isFinal(status: RunStatus): boolean {
  return FINAL_STATUSES.has(status);
}

/**
 * Run ids sort by creation time (a 9-char base-36 millisecond stamp, then a counter), so a page of
 * history is a range of ids, and `before=<id>` is a stable cursor across restarts.
 */
export function createIdGenerator(now: () => number, random: () => number = Math.random): () => string {
  const node = Math.floor(random() * 36 ** 3).toString(36).padStart(3, '0');
  let last = 0;
  let counter = 0;
  return () => {
    const t = Math.max(now(), last);
    if (t !== last) {
      last = t;
      counter = 0;
    }
    counter++;
    return `${t.toString(36).padStart(9, '0')}${counter.toString(36).padStart(4, '0')}${node}`;
  };
}

// ---------------------------------------------------------------------------------------------
// Serialization. JSON.stringify of a run costs ~5µs on Node 20; writing the known shape by hand
// costs ~1µs, and the store serializes every finished run, so this is the hot path of the disk.
// Fields written raw (`q`) only ever hold characters that need no escaping: ids are base-36, job
// and queue names are validated kebab/word names, status and source are enums, times are ISO.
// A test checks the output against JSON.stringify for runs with every field set.

const q = (s: string | null): string => (s === null ? 'null' : '"' + s + '"');
const j = (v: unknown): string => (v === null || v === undefined ? 'null' : (JSON.stringify(v) ?? 'null'));
const num = (n: number | null): string => (n === null || !Number.isFinite(n) ? 'null' : String(n));

function value(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'object' && !Array.isArray(v)) {
    for (const _ in v) return JSON.stringify(v);
    return '{}';
  }
  return JSON.stringify(v) ?? 'null';
}

function attempts(list: Attempt[]): string {
  let s = '[';
  for (let i = 0; i < list.length; i++) {
    const a = list[i]!;
    if (i > 0) s += ',';
    s += '{"n":' + num(a.n) + ',"startedAt":' + q(a.startedAt) + ',"endedAt":' + q(a.endedAt) + ',"error":' + j(a.error) + '}';
  }
  return s + ']';
}

/** `JSON.stringify(run)`, about five times faster, for runs built by the host. */
export function serializeRun(r: Run): string {
  return (
    '{"id":' + q(r.id) +
    ',"job":' + q(r.job) +
    ',"status":' + q(r.status) +
    ',"source":' + q(r.source) +
    ',"params":' + value(r.params) +
    ',"priority":' + num(r.priority) +
    ',"key":' + j(r.key) +
    ',"queue":' + q(r.queue) +
    ',"createdAt":' + q(r.createdAt) +
    ',"runAt":' + q(r.runAt) +
    ',"startedAt":' + q(r.startedAt) +
    ',"endedAt":' + q(r.endedAt) +
    ',"durationMs":' + num(r.durationMs) +
    ',"progress":{"fraction":' + num(r.progress.fraction) + ',"text":' + j(r.progress.text) + '}' +
    ',"attempts":' + attempts(r.attempts) +
    ',"maxAttempts":' + num(r.maxAttempts) +
    ',"result":' + value(r.result) +
    ',"error":' + j(r.error) +
    ',"retryOf":' + j(r.retryOf) +
    ',"event":' + j(r.event) +
    (r.origin !== undefined ? ',"origin":' + q(r.origin) : '') +
    '}'
  );
}
