import type { ClusterInfo, Job, LogLine } from './client.js';
import type { ClientEvent } from './client-stream.js';

/**
 * What the CLI prints: colors (only on a terminal, never with NO_COLOR), the jobs table, the
 * progress bar, and one line per event. Pure functions of their inputs, so they are tested
 * without a terminal.
 */

/** Should output to this stream be colored? NO_COLOR (any value) wins, then FORCE_COLOR, then "is it a terminal". */
export function useColor(stream: { isTTY?: boolean | undefined }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env['NO_COLOR'] !== undefined && env['NO_COLOR'] !== '') return false;
  const force = env['FORCE_COLOR'];
  if (force !== undefined && force !== '') return force !== '0' && force !== 'false';
  return Boolean(stream.isTTY) && env['TERM'] !== 'dumb';
}

type Paint = (text: string) => string;
export interface Palette {
  bold: Paint;
  dim: Paint;
  red: Paint;
  green: Paint;
  yellow: Paint;
  blue: Paint;
  magenta: Paint;
  cyan: Paint;
  gray: Paint;
}

const SGR = {
  bold: [1, 22],
  dim: [2, 22],
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  blue: [34, 39],
  magenta: [35, 39],
  cyan: [36, 39],
  gray: [90, 39],
} as const;

/** ANSI colors when `enabled`, identity functions otherwise. */
export function palette(enabled: boolean): Palette {
  const entries = Object.entries(SGR).map(([name, [open, close]]) => [name, enabled ? (s: string) => `\x1b[${open}m${s}\x1b[${close}m` : (s: string) => s]);
  return Object.fromEntries(entries) as Palette;
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/** The length of a string as it shows on screen (color codes take no room). */
export function visibleLength(text: string): number {
  return text.replace(ANSI, '').length;
}

/** Cuts a plain string to `max` characters, marking the cut with an ellipsis. */
export function truncate(text: string, max: number): string {
  if (max <= 0) return '';
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

/** A compact JSON rendering of any value, cut to `max` characters. */
export function preview(value: unknown, max = 80): string {
  let text: string;
  try {
    text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return truncate(text, max);
}

/** 850 → `850ms`, 1234 → `1.2s`, 90000 → `1m30s`, 93784000 → `1d2h`. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(ms)}ms`;
  if (abs < 60_000) return `${(ms / 1000).toFixed(abs < 10_000 ? 1 : 0)}s`;
  const units: Array<[string, number]> = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  const parts: string[] = [];
  let rest = Math.round(abs / 1000) * 1000;
  for (const [unit, size] of units) {
    if (rest >= size && parts.length < 2) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    } else if (parts.length > 0) break;
  }
  return (ms < 0 ? '-' : '') + parts.join('');
}

/** A time relative to `now`: `in 5m`, `3h ago`, `now`. */
export function relativeTime(iso: string, now: number): string {
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return iso;
  const diff = at - now;
  if (Math.abs(diff) < 1000) return 'now';
  return diff > 0 ? `in ${formatMs(diff)}` : `${formatMs(-diff)} ago`;
}

export interface TableOptions {
  /** Columns aligned right (numbers). */
  right?: ReadonlySet<number>;
  color?: Palette;
}

/** Rows under a header, columns padded to their widest cell (color codes do not count). */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>, options: TableOptions = {}): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => visibleLength(r[i] ?? ''))));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => {
        const pad = ' '.repeat(Math.max(0, widths[i]! - visibleLength(cell)));
        if (options.right?.has(i)) return pad + cell;
        return i === cells.length - 1 ? cell : cell + pad;
      })
      .join('  ');
  const bold = options.color?.bold ?? ((s: string) => s);
  return [bold(line(header)), ...rows.map(line)].join('\n');
}

/** The color of a run status or an event type. */
export function statusPaint(status: string, c: Palette): Paint {
  if (/succeeded$/.test(status)) return c.green;
  if (/(failed|error)$/.test(status)) return c.red;
  if (/(retrying|skipped|canceled|stopping|disabled)$/.test(status)) return c.yellow;
  if (/(running|started)$/.test(status)) return c.cyan;
  if (/progress$/.test(status)) return c.dim;
  if (/queued$/.test(status)) return c.blue;
  if (status.startsWith('job.') || status.startsWith('config.')) return c.magenta;
  return (s) => s;
}

/** The PAUSED cell: `yes` (the job's own pause), `queue <name>` (its queue's), both, or `-`; what `jobhost resume` takes. */
function pausedCell(job: Job, c: Palette): string {
  const held = [job.pause.job && 'yes', job.pause.queue && `queue ${job.queue}`].filter((p): p is string => Boolean(p));
  return held.length === 0 ? c.dim('-') : c.yellow(held.join(', '));
}

/** `jobhost list`: one row per job. */
export function formatJobs(jobs: readonly Job[], now: number, c: Palette = palette(false)): string {
  if (jobs.length === 0) return 'no jobs registered';
  const dash = c.dim('-');
  const rows = [...jobs]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((job) => [
      c.bold(job.name),
      job.schedule ?? dash,
      job.enabled ? 'yes' : c.yellow('no'),
      pausedCell(job, c),
      job.nextRun && job.enabled ? relativeTime(job.nextRun, now) : dash,
      job.lastRun ? `${statusPaint(job.lastRun.status, c)(job.lastRun.status)} ${relativeTime(job.lastRun.at, now)}` : dash,
      String(job.counts.succeeded),
      job.counts.failed > 0 ? c.red(String(job.counts.failed)) : '0',
      String(job.counts.canceled),
      job.counts.running > 0 ? c.cyan(String(job.counts.running)) : '0',
      String(job.counts.queued),
    ]);
  return table(['NAME', 'SCHEDULE', 'ENABLED', 'PAUSED', 'NEXT RUN', 'LAST RUN', 'OK', 'FAILED', 'CANCELED', 'RUNNING', 'QUEUED'], rows, {
    right: new Set([6, 7, 8, 9, 10]),
    color: c,
  });
}

/** `jobhost list` in cluster mode: one row per live host, then the jobs whose definition differs between hosts. */
export function formatHosts(cluster: ClusterInfo, now: number, c: Palette = palette(false)): string {
  const rows = cluster.hosts.map((h) => [
    h.id === cluster.self ? c.bold(`${h.id} *`) : h.id,
    h.url ?? c.dim('-'),
    relativeTime(h.startedAt, now),
    relativeTime(h.lastSeen, now),
    String(h.running),
    String(h.jobs.length),
  ]);
  const out = [table(['HOST', 'URL', 'STARTED', 'LAST SEEN', 'RUNNING', 'JOBS'], rows, { right: new Set([4, 5]), color: c })];
  for (const d of cluster.drift) out.push(c.yellow(`drift: ${d.job} differs between ${d.hosts.join(', ')}`));
  return out.join('\n');
}

/** `[██████░░░░░░]  45%`: `width` cells between the brackets. */
export function progressBar(fraction: number, width = 24): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const full = Math.floor(f * width);
  return `[${'█'.repeat(full)}${'░'.repeat(width - full)}] ${percent(f).padStart(4)}`;
}

/** 0.456 → `46%`; never shows 100% before the end (0.996 → `99%`). */
export function percent(fraction: number): string {
  const f = Math.min(1, Math.max(0, fraction));
  return `${f < 1 ? Math.min(99, Math.round(f * 100)) : 100}%`;
}

/** The bar and the progress text, cut to fit `columns`. */
export function progressLine(fraction: number, text: string | null, columns = 80): string {
  const bar = progressBar(fraction, Math.max(10, Math.min(30, Math.floor(columns / 4))));
  return text ? `${bar} ${truncate(text, columns - bar.length - 1)}` : bar;
}

type Data = Readonly<Record<string, unknown>>;
const str = (d: Data, key: string): string | undefined => (typeof d[key] === 'string' ? (d[key] as string) : undefined);
const num = (d: Data, key: string): number | undefined => (typeof d[key] === 'number' ? (d[key] as number) : undefined);
const list = (d: Data, key: string): string => (Array.isArray(d[key]) ? (d[key] as unknown[]).map(String).join(', ') : '');
/** `CODE: message` of a run error `{ code, message }`. */
export const errorText = (value: unknown): string => {
  if (typeof value !== 'object' || value === null) return preview(value);
  const e = value as Data;
  return `${str(e, 'code') ?? 'ERROR'}: ${str(e, 'message') ?? ''}`;
};

/** The short "what happened" of an event, from its data. Unknown types show their data as JSON. */
export function summarize(event: ClientEvent): string {
  const d: Data = event.data;
  const join = (...parts: Array<string | false | undefined>): string => parts.filter((p): p is string => Boolean(p)).join(', ');
  switch (event.type) {
    case 'host.started':
      return join(num(d, 'pid') !== undefined && `pid ${num(d, 'pid')}`, num(d, 'jobs') !== undefined && `${num(d, 'jobs')} jobs`);
    case 'host.stopping':
      return join(str(d, 'reason'), num(d, 'graceMs') !== undefined && `grace ${formatMs(num(d, 'graceMs')!)}`);
    case 'host.stopped':
      return str(d, 'reason') ?? '';
    case 'job.registered':
    case 'job.updated':
      return join(
        str(d, 'file'),
        `schedule ${str(d, 'schedule') ?? 'none'}`,
        d['enabled'] === false && 'disabled',
        list(d, 'changed') && `changed ${list(d, 'changed')}`,
      );
    case 'job.removed':
      return str(d, 'file') ?? '';
    case 'run.queued': {
      const runAt = str(d, 'runAt');
      return join(
        str(d, 'source'),
        `queue ${str(d, 'queue') ?? '?'}`,
        d['delayed'] === true && runAt && `until ${runAt}`,
        str(d, 'key') && `key ${str(d, 'key')}`,
      );
    }
    case 'run.started':
      return `attempt ${num(d, 'attempt') ?? '?'}`;
    case 'run.progress':
      return `${percent(num(d, 'fraction') ?? 0)} ${str(d, 'text') ?? ''}`.trimEnd();
    case 'run.retrying':
      return `attempt ${num(d, 'attempt') ?? '?'} failed (${errorText(d['error'])}); attempt ${num(d, 'nextAttempt') ?? '?'} in ${formatMs(num(d, 'delayMs') ?? 0)}`;
    case 'run.succeeded':
      return join(
        num(d, 'durationMs') !== undefined && formatMs(num(d, 'durationMs')!),
        d['result'] !== undefined && d['result'] !== null && `result ${preview(d['result'], 60)}`,
      );
    case 'run.failed':
      return join(errorText(d['error']), num(d, 'attempt') !== undefined && `attempt ${num(d, 'attempt')}`);
    case 'run.canceled':
      return str(d, 'reason') ?? '';
    case 'run.skipped':
      return join(str(d, 'reason'), str(d, 'detail'));
    case 'notification': {
      const priority = str(d, 'priority');
      const message = str(d, 'message');
      return `${priority ? `[${priority}] ` : ''}${str(d, 'title') ?? ''}${message ? ` — ${message}` : ''}`;
    }
    case 'notification.delivered':
      return `to ${str(d, 'destination') ?? '?'} after ${num(d, 'attempts') ?? '?'} attempt${num(d, 'attempts') === 1 ? '' : 's'}`;
    case 'notification.failed':
      return `to ${str(d, 'destination') ?? '?'} dead after ${num(d, 'attempts') ?? '?'} attempt${num(d, 'attempts') === 1 ? '' : 's'}: ${errorText(d['error'])}`;
    case 'plugin.error':
      return `${str(d, 'file') ?? '?'}: ${str(d, 'code') ?? 'ERROR'}: ${str(d, 'message') ?? ''}`;
    case 'config.reloaded':
      return join(
        list(d, 'changed') ? `changed ${list(d, 'changed')}` : 'no change',
        list(d, 'restartRequired') && `restart required for ${list(d, 'restartRequired')}`,
      );
    case 'config.error':
      return `${str(d, 'code') ?? 'ERROR'}: ${str(d, 'message') ?? ''}`;
    case 'events.gap':
      return `${num(d, 'lost') ?? 'some'} stream entries of other hosts' events lost (${str(d, 'from') ?? '?'} to ${str(d, 'to') ?? '?'})`;
    default: {
      const { job: _job, runId: _runId, host: _host, ...rest } = d;
      return Object.keys(rest).length > 0 ? preview(rest, 100) : '';
    }
  }
}

/** `12:04:05.123` in local time. */
export function clockTime(iso: string): string {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}.${String(at.getMilliseconds()).padStart(3, '0')}`;
}

/** `jobhost tail`: time, type, job, run id and a summary, on one line. */
export function formatEvent(event: ClientEvent, c: Palette = palette(false), columns = Infinity): string {
  const job = event.data.job ?? '-';
  const runId = event.data.runId ?? '-';
  const head = `${clockTime(event.at)}  ${event.type.padEnd(15)}  ${job.padEnd(20)}  ${runId.padEnd(16)}`;
  // Another host's event (cluster mode) says where it happened.
  const host = typeof event.data['host'] === 'string' ? `[${event.data['host']}] ` : '';
  const summary = host + summarize(event).replace(/\s*\n\s*/g, ' ');
  const text = truncate(summary, columns - head.length - 2);
  return [c.dim(clockTime(event.at)), statusPaint(event.type, c)(event.type.padEnd(15)), c.bold(job.padEnd(20)), c.gray(runId.padEnd(16)), text]
    .join('  ')
    .trimEnd();
}

/** The color of a log level. */
function levelPaint(level: string, c: Palette): Paint {
  if (level === 'error' || level === 'fatal') return c.red;
  if (level === 'warn') return c.yellow;
  if (level === 'debug' || level === 'trace') return c.dim;
  return (s) => s;
}

/** A logged line: level, message and the logged object, on one line (`info  read 3 rows {"rows":3}`). */
export function formatLogLine(line: LogLine, c: Palette = palette(false), columns = Infinity): string {
  const fields = line.fields ? ` ${JSON.stringify(line.fields)}` : '';
  const text = truncate(`${line.msg}${fields}`.replace(/\s*\n\s*/g, ' '), columns - 7);
  return `${levelPaint(line.level, c)(line.level.padEnd(5))}  ${text}`.trimEnd();
}

/** `jobhost tail --logs`: a `run.log` event is one line per logged line, each with the usual head. */
export function formatLogEvent(event: ClientEvent, lines: readonly LogLine[], c: Palette = palette(false), columns = Infinity): string[] {
  const job = (event.data.job ?? '-').padEnd(20);
  const runId = (event.data.runId ?? '-').padEnd(16);
  const width = columns - (12 + 15 + 20 + 16 + 8);
  return lines.map((line) =>
    [c.dim(clockTime(line.at)), statusPaint(event.type, c)(event.type.padEnd(15)), c.bold(job), c.gray(runId), formatLogLine(line, c, width)]
      .join('  ')
      .trimEnd(),
  );
}
