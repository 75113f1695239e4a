import { z } from 'zod';
import { HostError } from './errors.js';

/**
 * The condition of where runs are recorded, as the engine, `/ready`, `/metrics` and the CLI see
 * it: why the backend cannot write (a full disk), and damage found in its files. Shapes and
 * wording shared by every part; finding damage is the backend's business.
 */

const iso = z.string().min(1);

/** What a damaged line held, as far as its bytes still tell. */
export const lostLine = z.object({
  /** 1-based line number in the file. */
  line: z.number().int().positive(),
  record: z.enum(['finished run', 'unfinished run', 'run', 'job flags', 'notification', 'damage report', 'unknown']),
  runId: z.string().nullable(),
  job: z.string().nullable(),
  status: z.string().nullable(),
  /** Another record of the same run loaded (an earlier or later state of it): the run itself is not gone. */
  loadedElsewhere: z.boolean(),
});

/** One damaged store file, as reported in the log, on `/ready` and kept in the checkpoint until acknowledged. */
export const damageReport = z.object({
  /** Stable for the same damage: the file and its damaged lines. */
  id: z.string().min(1),
  /** `checkpoint`: state.json did not load, and the store was rebuilt without it. */
  kind: z.enum(['journal', 'segment', 'checkpoint']),
  /** The journal's or segment's number (0 for the checkpoint). */
  n: z.number().int().nonnegative(),
  /** Relative to the store directory. */
  file: z.string(),
  /** The copy of the file as it was found, relative to the store directory (null if the copy failed). */
  aside: z.string().nullable(),
  foundAt: iso,
  /** 1-based line numbers of the lines that did not load. */
  lines: z.array(z.number().int().positive()),
  /**
   * Lines the checkpoint counts in the segment (its index for a sealed one, its fold marker for the
   * open one) that the file no longer has (it was cut short, or is gone).
   */
  missing: z.number().int().nonnegative(),
  /**
   * The file itself is gone: a segment the checkpoint counts lines in (`missing` is every run it
   * counted), or the journal the checkpoint names (what it held cannot be known).
   */
  absent: z.boolean().default(false),
  lost: z.array(lostLine),
  acknowledgedAt: iso.nullable(),
});

export type LostLine = z.output<typeof lostLine>;
export type DamageReport = z.output<typeof damageReport>;

/** Why the store cannot write (a full disk): set by a failed commit, cleared by the next that succeeds. */
export interface StoreWriteError {
  /** The errno code (`ENOSPC`, `EDQUOT`, `EIO`, ...), or `STORE_WRITE_FAILED` when there is none. */
  code: string;
  message: string;
  /** When commits started failing. */
  since: string;
  /** Seconds until the store tries again. */
  retryAfter: number;
}

/** The 503 a trigger gets while the store cannot write: no path in it, a time to retry. */
export function storeUnavailable(e: StoreWriteError, cause?: unknown): HostError {
  return new HostError(
    'STORE_WRITE_FAILED',
    `the store cannot write (${e.code}); nothing was acknowledged: retry after ${e.retryAfter}s`,
    { retryAfter: e.retryAfter, errno: e.code },
    cause === undefined ? undefined : { cause },
  );
}

/** Whether the backend can be reached (the local one always can; Redis may be down). */
export interface BackendReach {
  kind: 'local' | 'redis';
  available: boolean;
  /** Where it is: `redis://host:port` (never with credentials); null for the local backend. */
  target: string | null;
  /** Why it cannot be reached, since when (ISO), while it cannot. */
  error: string | null;
  since: string | null;
}

/** Events from the other hosts this host never received: its reading fell behind the cluster stream by more than the stream keeps. */
export interface EventGap {
  /** When the gap was found (ISO). */
  at: string;
  /** How many events (stream entries) were lost; null when Redis cannot tell. */
  lost: number | null;
  /** The last stream entry read before the gap, and the oldest one still there after it. */
  from: string;
  to: string;
}

/** Cluster mode: what cuts from Redis cost this host since it started (README, Cluster mode: partitions). */
export interface ClusterFaults {
  /** Ends of attempts made here that BullMQ refused because another host had taken the run over (late finishes). */
  lateFinishes: number;
  /** Gaps in the events received from the other hosts, and the stream entries lost in them. */
  eventGaps: number;
  eventsLost: number;
  lastGap: EventGap | null;
}

/** A condition of the backend worth a /ready warning (not a reason for 503). */
export interface BackendWarning {
  code: 'REDIS_MAXMEMORY_POLICY';
  message: string;
}

/** What a backend reports of its health. */
export interface BackendHealth {
  backend: BackendReach;
  /** Conditions for /ready's warnings (cluster mode: a Redis that may evict keys). */
  warnings?: BackendWarning[];
  /** Set while writes fail (a full disk): new work is refused until it clears by itself. */
  writeError: StoreWriteError | null;
  /** Damage reports still kept: unacknowledged ones, and acknowledged ones while their file may be read again. */
  damage: DamageReport[];
  /** Damaged lines this process found. */
  damagedLines: number;
  /** Cluster mode only. */
  faults?: ClusterFaults;
}

function describeLost(l: LostLine): string {
  const run = `run ${l.runId ?? '(id unreadable)'}${l.job ? ` of job ${l.job}` : ''}`;
  switch (l.record) {
    case 'finished run':
      return `line ${l.line}: the final record of ${run}${l.loadedElsewhere ? ' (an earlier, unfinished state of it loaded: it is recovered as interrupted, and may run again)' : ' (gone from history)'}`;
    case 'unfinished run':
      return `line ${l.line}: acknowledged ${run}, ${l.status}, not finished${l.loadedElsewhere ? ' (another record of it loaded)' : ' (it will not run)'}`;
    case 'run':
      return `line ${l.line}: a record of ${run}${l.loadedElsewhere ? ' (another record of it loaded)' : ''}`;
    case 'job flags':
      return `line ${l.line}: the enabled/last-fire flags of job ${l.job ?? '(unreadable)'}`;
    case 'notification':
      return `line ${l.line}: a notification${l.runId ? ` of run ${l.runId}` : ''}`;
    case 'damage report':
      return `line ${l.line}: an earlier damage report`;
    default:
      return `line ${l.line}: an unreadable record`;
  }
}

/** What an unreadable state.json costs: what only the checkpoint held, which nothing left can list. */
const CHECKPOINT_LOST =
  'what only the checkpoint held is lost and cannot be listed: runs queued, delayed or running at the last checkpoint and not saved since (they will not run), ' +
  'job flags (enabled/disabled, last schedule fire) not changed since, recent notifications before it, its unacknowledged damage reports and the logs of its unfinished runs; ' +
  'kept: every finished run in the history segments (job counters, last success and so once and cooldown are rebuilt from them) and everything recorded since the checkpoint';

/** What a journal deleted from outside costs: what was recorded after its checkpoint, which nothing left can list. */
const JOURNAL_LOST =
  'what was recorded after that checkpoint and is not in a history segment is lost and cannot be listed (the journal may have been empty, as a clean stop leaves it): ' +
  'runs triggered since and not finished (they will not run), what happened since to runs the checkpoint holds (they load as they were at it), ' +
  'job flags changed since, notifications, acknowledgements of damage, audit records and run logs since; ' +
  'kept: everything the checkpoint holds and every finished run in the history segments (a run that finished since is there)';

/** One line for the log and `/ready`: the file, the lines, what was lost, where the copy is. */
export function describeReport(r: DamageReport): string {
  if (r.kind === 'checkpoint') {
    const copy = r.aside ? `set aside as ${r.aside}` : 'could not be set aside';
    return `store file ${r.file} is unreadable (changed from outside: it is only ever replaced whole) and was ${copy}; the store was rebuilt from its journals and segments; ${CHECKPOINT_LOST}`;
  }
  if (r.absent && r.kind === 'journal') {
    return `store file ${r.file} is missing (deleted from outside: the checkpoint names it, and jobhost creates it before writing the checkpoint): ${JOURNAL_LOST}`;
  }
  if (r.absent) {
    const runs = `${r.missing} finished run${r.missing === 1 ? '' : 's'}`;
    return (
      `store file ${r.file} is missing (deleted from outside: the checkpoint counts lines in it): the ${runs} the checkpoint counted in it are gone from history ` +
      "(their jobs' counters still count them), and, if it was the open segment, so is any run that finished into it after that checkpoint"
    );
  }
  const parts = r.lost.map(describeLost);
  if (r.missing > 0) parts.push(`${r.missing} line${r.missing === 1 ? '' : 's'} the checkpoint counts are missing (the file was cut short)`);
  const copy = r.aside ? `the file as found is copied to ${r.aside}` : 'the file could not be copied aside';
  return `store file ${r.file} is damaged (not a torn tail from a crash): ${parts.join('; ')}; every readable line loaded; ${copy}`;
}
