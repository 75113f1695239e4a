import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, open, rename } from 'node:fs/promises';
import path from 'node:path';
import { type Clock, isoTime } from '../contract/clock.js';
import type { Logger } from '../contract/logger.js';
import { type DamageReport, damageReport, describeReport, type LostLine } from '../contract/store-health.js';
import { type BadLine, syncDir } from './files.js';

/**
 * Damage in the store's append-only files, told apart from the torn tail a crash leaves. A torn
 * tail (unreadable lines after the last readable one that are unterminated or hold NUL bytes, see
 * `parseNdjson`) is one interrupted append, never acknowledged, and is dropped with a warning. Any
 * other unreadable line (a complete last line too), or a line missing from a segment the
 * checkpoint counts it in, was durable once: something outside jobhost changed the file. So was a
 * file gone that the checkpoint names (a segment it counts lines in, the journal it opened): it
 * was deleted from outside. Like Redis, which truncates an incomplete last AOF entry but refuses a
 * malformed one, jobhost
 * treats that as an operator's problem: it keeps a copy of the file as found, says what was lost,
 * and reports it until acknowledged — but unlike Redis it still loads every readable line.
 */

/** Damage found by a reader, before it is described and reported. */
export interface DamageFound {
  kind: DamageReport['kind'];
  /** The journal's or segment's number (0 for the checkpoint). */
  n: number;
  /** Absolute path of the file. */
  file: string;
  /** The lines that did not load. */
  bad: readonly BadLine[];
  /** Lines the checkpoint counts in a segment (its index, or its fold marker for the open one) that the file no longer has. */
  missing: number;
  /** The whole file was already moved here (an unreadable state.json): nothing to copy. */
  movedTo?: string;
  /**
   * The file is gone (a segment the checkpoint counts lines in, or the journal it names): nothing
   * to copy; `missing` counts a segment's runs (a journal's lines are not known).
   */
  absent?: boolean;
  /** Why the file did not load, when it is one error (state.json's JSON error). */
  reason?: string;
}

/**
 * An unreadable state.json: only ever replaced whole, so only outside damage gets here. It is
 * moved aside (the store rebuilds it from the journals and segments) and reported as damage:
 * what it alone held is gone (see `describeReport`).
 */
export async function setCheckpointAside(file: string, now: number, reason: string): Promise<DamageFound> {
  const movedTo = `${file}.damaged-${now}`;
  await rename(file, movedTo);
  await syncDir(path.dirname(file));
  return { kind: 'checkpoint', n: 0, file, bad: [], missing: 0, movedTo, reason };
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
  // A segment holds finished runs only, so a torn line (or zeros) is one; a line of other text with
  // nothing of a run in it (written from outside) is no run lost.
  if (kind === 'segment') {
    const run = bad.torn || base.runId !== null || text.startsWith('{"id":') || /^\0*$/.test(text);
    return { ...base, record: run ? 'finished run' : 'unknown' };
  }
  if (text.startsWith('{"r":')) {
    return { ...base, record: status === null ? 'run' : FINAL.has(status) ? 'finished run' : 'unfinished run' };
  }
  if (text.startsWith('{"j":')) return { ...base, record: 'job flags', runId: null, status: null, job: /^\{"j":"([^"\\]{1,200})"/.exec(text)?.[1] ?? null };
  if (text.startsWith('{"n":')) return { ...base, record: 'notification', runId: /"runId":"([0-9a-z]{6,40})"/.exec(text)?.[1] ?? null, status: null };
  if (text.startsWith('{"d":')) return { ...base, record: 'damage report', runId: null, job: null, status: null };
  return { ...base, record: 'unknown' };
}

/**
 * The same damage found again (the file is read on every start) gets the same id. A file moved
 * aside whole is never found again: its copy's name tells one such damage from the next.
 */
export function damageId(kind: DamageFound['kind'], n: number, lines: readonly number[], missing: number, whole?: string): string {
  return createHash('sha256')
    .update(`${kind}:${n}:${lines.join(',')}:${missing}${whole === undefined ? '' : `:${whole}`}`)
    .digest('hex')
    .slice(0, 12);
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

/**
 * The store's damage reports: found, reported once, kept (in the checkpoint and the journal,
 * through `persist`) until acknowledged, and dropped once acknowledged and their file is gone.
 */
export class DamageLog {
  readonly #dir: string | null;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #reports = new Map<string, DamageReport>();
  /** Damage being reported now (its copy is being made): found again meanwhile, it is not reported twice. */
  readonly #finding = new Set<string>();
  #damagedLines = 0;

  constructor(options: { dir: string | null; clock: Clock; logger: Logger }) {
    this.#dir = options.dir;
    this.#clock = options.clock;
    this.#logger = options.logger;
  }

  /** Lines found damaged by this process. */
  get damagedLines(): number {
    return this.#damagedLines;
  }

  /** Copies of every report kept, acknowledged or not. */
  list(): DamageReport[] {
    return [...this.#reports.values()].map((r) => structuredClone(r));
  }

  /** Reports as the checkpoint had them (checked: a state file is read back from disk). */
  restore(raw: readonly unknown[]): void {
    for (const item of raw) {
      const parsed = damageReport.safeParse(item);
      if (parsed.success) this.#reports.set(parsed.data.id, parsed.data);
      else this.#logger.warn({ code: 'STORE_CORRUPT' }, 'state.json holds a damage report that is not one; dropped');
    }
  }

  /** A report as journaled (new, or acknowledged): the later record wins. */
  apply(report: DamageReport): void {
    this.#reports.set(report.id, report);
  }

  /**
   * Reports damage found in a file: copied aside as found, logged at error with what was lost,
   * counted, and kept. Returns the new report, or null when the same damage was known already
   * (a segment is read on each start, or again after it left the cache).
   */
  async found(found: DamageFound, loadedElsewhere: (runId: string) => boolean): Promise<DamageReport | null> {
    const lines = found.bad.map((b) => b.line);
    const id = damageId(found.kind, found.n, lines, found.missing, found.absent ? 'absent' : found.movedTo && path.basename(found.movedTo));
    const known = this.#reports.get(id);
    if (known || this.#finding.has(id)) {
      this.#logger.debug(
        { code: 'STORE_DAMAGED', damageId: id, acknowledged: known ? known.acknowledgedAt !== null : false },
        'known store damage found again',
      );
      return null;
    }
    // Two readers of one file at once (the background check and a history page) find it together:
    // the first one reports it, while its copy is being made too.
    this.#finding.add(id);
    try {
      return await this.#report(found, id, lines, loadedElsewhere);
    } finally {
      this.#finding.delete(id);
    }
  }

  async #report(found: DamageFound, id: string, lines: number[], loadedElsewhere: (runId: string) => boolean): Promise<DamageReport> {
    const dir = this.#dir ?? path.dirname(found.file);
    const relative = (p: string): string => path.relative(dir, p).split(path.sep).join('/');
    const now = this.#clock.now();
    let aside: string | null = found.movedTo === undefined ? null : relative(found.movedTo);
    if (found.movedTo === undefined && !found.absent) {
      try {
        aside = relative(await copyAside(found.file, now));
      } catch (err) {
        this.#logger.error({ err, file: found.file }, 'could not copy a damaged store file aside');
      }
    }
    const report: DamageReport = {
      id,
      kind: found.kind,
      n: found.n,
      file: relative(found.file),
      aside,
      foundAt: isoTime(now),
      lines,
      missing: found.missing,
      absent: found.absent ?? false,
      lost: found.bad.map((b) => {
        const d = describeLine(found.kind, b);
        return { ...d, loadedElsewhere: d.runId !== null && loadedElsewhere(d.runId) };
      }),
      acknowledgedAt: null,
    };
    this.#reports.set(id, report);
    // A whole file lost with a number of lines nothing knows (state.json, one JSON document; a journal gone) counts as one.
    const unknownLines = found.kind === 'checkpoint' || (found.kind === 'journal' && found.absent === true);
    this.#damagedLines += unknownLines ? 1 : lines.length + found.missing;
    this.#logger.error(
      { code: 'STORE_DAMAGED', damageId: id, file: found.file, lines, missing: found.missing, lost: report.lost, aside, reason: found.reason },
      describeReport(report),
    );
    return report;
  }

  /** Marks reports acknowledged (every unacknowledged one without `ids`); `changed` are the ones to persist. */
  acknowledge(ids: readonly string[] | undefined): { acknowledged: DamageReport[]; unknown: string[]; changed: DamageReport[] } {
    const wanted = ids ?? [...this.#reports.values()].filter((r) => r.acknowledgedAt === null).map((r) => r.id);
    const acknowledged: DamageReport[] = [];
    const unknown: string[] = [];
    const changed: DamageReport[] = [];
    for (const id of new Set(wanted)) {
      const report = this.#reports.get(id);
      if (!report) {
        unknown.push(id);
        continue;
      }
      if (report.acknowledgedAt === null) {
        report.acknowledgedAt = isoTime(this.#clock.now());
        changed.push(report);
      }
      acknowledged.push(structuredClone(report));
    }
    return { acknowledged, unknown, changed };
  }

  /**
   * The reports a checkpoint keeps: unacknowledged ones, and acknowledged ones whose file may be
   * read again (a journal is deleted after its load, state.json replaced, a missing segment left
   * out of the index; a segment older than `oldestSegment` is gone).
   */
  kept(oldestSegment: number): DamageReport[] {
    for (const [id, r] of this.#reports) {
      if (r.acknowledgedAt !== null && (r.kind !== 'segment' || r.absent || r.n < oldestSegment)) this.#reports.delete(id);
    }
    return [...this.#reports.values()];
  }
}
