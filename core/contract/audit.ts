import { matchesAny } from './glob.js';
import type { Page } from './run.js';

/**
 * The audit trail (SPEC §14): one record per change asked of the API, made or refused. Records
 * are kept by the backend as durably as runs and by the same retention (`store.keepRuns`,
 * `store.keepDays`); in cluster mode every host writes to one trail.
 */

export const AUDIT_OUTCOMES = ['ok', 'forbidden', 'error'] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

export interface AuditRecord {
  /** Sorts by time like run ids (the cursor of `GET /audit`). */
  id: string;
  at: string;
  /** The token's name: `admin` for server.token, `anonymous` when no token is configured. */
  token: string;
  /** What was asked: `job.run`, `run.cancel`, `runs.retry`, `store.damage.ack`, ... */
  action: string;
  /** What it was asked of: `job:<name>`, `run:<id>`, `notification:<id>`, `event:<type>`, ... */
  target: string;
  ip: string;
  outcome: AuditOutcome;
  /** The HTTP status of the answer. */
  status: number;
  /** The error code of a refusal or failure (null when ok). */
  code: string | null;
  /** The host that took the request (its `cluster.id`). */
  host: string;
}

export interface AuditQuery {
  /** A token name. */
  token?: string | undefined;
  /** An action, or a `*` glob of them (`job.*`). */
  action?: string | undefined;
  /** A target, or a `*` glob of them (`job:deploy-*`). */
  target?: string | undefined;
  outcome?: AuditOutcome | undefined;
  limit?: number | undefined;
  /** Cursor: records older than this id. */
  before?: string | undefined;
}

/** Where a backend keeps the trail: durable when `append` resolves; newest first. */
export interface AuditStore {
  append(record: AuditRecord): Promise<void>;
  list(query: AuditQuery): Promise<Page<AuditRecord>>;
}

export const AUDIT_DEFAULT_LIMIT = 50;
export const AUDIT_MAX_LIMIT = 1000;

/** Whether a record passes the query's filters (not the cursor). */
export function auditMatches(record: AuditRecord, query: AuditQuery): boolean {
  if (query.token !== undefined && record.token !== query.token) return false;
  if (query.outcome !== undefined && record.outcome !== query.outcome) return false;
  if (query.action !== undefined && !matchesAny([query.action], record.action)) return false;
  if (query.target !== undefined && !matchesAny([query.target], record.target)) return false;
  return true;
}

/** The page size a query asks for, within bounds. */
export function auditLimit(query: AuditQuery): number {
  return Math.max(1, Math.min(query.limit ?? AUDIT_DEFAULT_LIMIT, AUDIT_MAX_LIMIT));
}

/**
 * Where retention cuts, as an id prefix: ids older than `keepDays` sort below it (ids start with
 * their time, 9 base-36 characters of milliseconds). Empty when `keepDays` is 0 (no age limit).
 */
export function auditCutoff(now: number, keepDays: number): string {
  if (keepDays <= 0) return '';
  return Math.max(0, Math.floor(now - keepDays * 86_400_000))
    .toString(36)
    .padStart(9, '0');
}
