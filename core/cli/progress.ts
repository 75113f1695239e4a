import type { LogLine, Run } from './client.js';
import type { ClientEvent } from './client-stream.js';
import { errorText, formatLogLine, formatMs, type Palette, percent, progressLine } from './format.js';

/**
 * What `jobhost run --wait` shows while it waits. On a terminal: one live line with the bar and
 * the progress text, redrawn in place, with state changes (started, retrying) printed above it.
 * Elsewhere (a pipe, a log file): one plain line per change, no control codes.
 */

export interface Output {
  write(text: string): unknown;
}

export interface RunReporter {
  /** A run event of the run (from the stream). */
  event(event: ClientEvent): void;
  /** The run as polled over HTTP. */
  run(run: Run): void;
  /** A line the run's handler logged. */
  log(line: LogLine): void;
  /** A line of connection news. */
  notice(message: string): void;
  /** Ends the live line (it stays on screen, as the last state); call before printing the outcome. */
  end(): void;
}

export interface ReporterOptions {
  /** Draw the live bar (a terminal) or print plain lines. */
  live: boolean;
  color: Palette;
  /** The terminal's width (read on every draw: it may change). */
  columns?: () => number;
}

const CLEAR_LINE = '\r\x1b[2K';

export function createRunReporter(out: Output, options: ReporterOptions): RunReporter {
  const c = options.color;
  const columns = (): number => options.columns?.() ?? 80;
  let bar: { fraction: number; text: string | null } | undefined;
  let barShown = false;
  let lastProgress = '';
  let attempt = 0;

  const line = (text: string): void => {
    if (barShown) out.write(CLEAR_LINE);
    out.write(`${text}\n`);
    barShown = false;
    if (bar && options.live) draw();
  };
  const draw = (): void => {
    if (!bar) return;
    out.write(CLEAR_LINE + progressLine(bar.fraction, bar.text, columns() - 1));
    barShown = true;
  };
  const progress = (fraction: number, text: string | null): void => {
    const key = `${percent(fraction)} ${text ?? ''}`;
    if (key === lastProgress) return;
    lastProgress = key;
    bar = { fraction, text };
    if (options.live) draw();
    else out.write(`progress ${key.trimEnd()}\n`);
  };
  const started = (n: number): void => {
    if (n <= attempt) return;
    attempt = n;
    line(c.cyan(n > 1 ? `started attempt ${n}` : 'started'));
  };

  return {
    event(e) {
      const d = e.data as Readonly<Record<string, unknown>>;
      switch (e.type) {
        case 'run.queued':
          if (d['delayed'] === true && typeof d['runAt'] === 'string') line(c.blue(`queued until ${d['runAt']}`));
          break;
        case 'run.started':
          started(typeof d['attempt'] === 'number' ? d['attempt'] : attempt + 1);
          break;
        case 'run.progress':
          progress(typeof d['fraction'] === 'number' ? d['fraction'] : 0, typeof d['text'] === 'string' ? d['text'] : null);
          break;
        case 'run.retrying': {
          const delay = typeof d['delayMs'] === 'number' ? ` in ${formatMs(d['delayMs'])}` : '';
          line(c.yellow(`attempt ${String(d['attempt'] ?? attempt)} failed: ${errorText(d['error'])}; retrying${delay}`));
          bar = undefined;
          lastProgress = '';
          break;
        }
        default:
          break; // the outcome is printed by the caller, from the run
      }
    },
    run(run) {
      if (run.status !== 'running') return;
      started(Math.max(1, run.attempts.length));
      if (run.progress.fraction > 0 || run.progress.text) progress(run.progress.fraction, run.progress.text);
    },
    log(logged) {
      line(formatLogLine(logged, c, options.live ? columns() - 1 : Infinity));
    },
    notice(message) {
      line(c.dim(message));
    },
    end() {
      if (barShown) out.write('\n');
      barShown = false;
      bar = undefined;
    },
  };
}
