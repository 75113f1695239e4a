import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, open } from 'node:fs/promises';
import path from 'node:path';
import { syncDir, type BadLine } from './files.js';
import type { DamageReport, LostLine } from './store-records.js';

/**
 * Damage in the store's append-only files, told apart from the torn tail a crash leaves. A torn
 * tail (unreadable lines after the last readable one) is one interrupted append, never
 * acknowledged, and is dropped with a warning. An unreadable line with a readable one after it,
 * or a line missing from a sealed segment, was durable once: something outside jobhost changed
 * the file. Like Redis, which truncates a torn AOF tail but refuses a damaged middle, jobhost
 * treats that as an operator's problem: it keeps a copy of the file as found, says what was lost,
 * and reports it until acknowledged — but unlike Redis it still loads every readable line.
 */

/** Damage found by a reader, before it is described and reported. */
export interface DamageFound {
  kind: 'journal' | 'segment';
  /** The journal's or segment's number. */
  n: number;
  /** Absolute path of the file. */
  file: string;
  /** The lines that did not load. */
  bad: readonly BadLine[];
  /** Lines a segment's index counts that the file no longer has. */
  missing: number;
}

const RUN_ID = /"id":"([0-9a-z]{6,40})"/;
const JOB = /"job":"([^"\\]{1,200})"/;
const STATUS = /"status":"(queued|running|succeeded|failed|canceled)"/;
const FINAL = new Set(['succeeded', 'failed', 'canceled']);

/** What a damaged line held, read from what is left of its bytes. */
export function describeLine(kind: DamageFound['kind'], bad: BadLine): Omit<LostLine, 'loadedElsewhere'> {
  const text = bad.text;
  const status = STATUS.exec(text)?.[1] ?? null;
  const base = { line: bad.line, runId: RUN_ID.exec(text)?.[1] ?? null, job: JOB.exec(text)?.[1] ?? null, status };
  if (kind === 'segment') return { ...base, record: 'finished run' };
  if (text.startsWith('{"r":')) {
    return { ...base, record: status === null ? 'run' : FINAL.has(status) ? 'finished run' : 'unfinished run' };
  }
  if (text.startsWith('{"j":')) return { ...base, record: 'job flags', runId: null, status: null, job: /^\{"j":"([^"\\]{1,200})"/.exec(text)?.[1] ?? null };
  if (text.startsWith('{"n":')) return { ...base, record: 'notification', runId: /"runId":"([0-9a-z]{6,40})"/.exec(text)?.[1] ?? null, status: null };
  if (text.startsWith('{"d":')) return { ...base, record: 'damage report', runId: null, job: null, status: null };
  return { ...base, record: 'unknown' };
}

/** The same damage found again (the file is read on every start) gets the same id. */
export function damageId(kind: DamageFound['kind'], n: number, lines: readonly number[], missing: number): string {
  return createHash('sha256').update(`${kind}:${n}:${lines.join(',')}:${missing}`).digest('hex').slice(0, 12);
}

/**
 * Copies `file` as it is to `<file>.damaged-<ms>` and syncs the copy, before anything truncates or
 * deletes the original. Returns the copy's path.
 */
export async function copyAside(file: string, now: number): Promise<string> {
  for (let i = 0; ; i++) {
    const aside = `${file}.damaged-${now}${i === 0 ? '' : `-${i}`}`;
    try {
      await copyFile(file, aside, constants.COPYFILE_EXCL);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && i < 100) continue;
      throw err;
    }
    const handle = await open(aside, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await syncDir(path.dirname(aside));
    return aside;
  }
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

/** One line for the log and `/ready`: the file, the lines, what was lost, where the copy is. */
export function describeReport(r: DamageReport): string {
  const parts = r.lost.map(describeLost);
  if (r.missing > 0) parts.push(`${r.missing} line${r.missing === 1 ? '' : 's'} the index counts are missing (the file was cut short)`);
  const copy = r.aside ? `the file as found is copied to ${r.aside}` : 'the file could not be copied aside';
  return `store file ${r.file} is damaged (not a torn tail from a crash): ${parts.join('; ')}; every readable line loaded; ${copy}`;
}
