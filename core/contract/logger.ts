import { type Logger as PinoLogger, pino } from 'pino';

/** The logger every module takes: pino's, so the host, fastify and plugins share one stream. */
export type Logger = PinoLogger;

export interface LoggerOptions {
  level?: string;
  /** Pretty, coloured lines (for a terminal); JSON lines otherwise. */
  pretty?: boolean;
}

/**
 * Redis clients put a failed command's arguments on the error (`err.command.args`): for AUTH that
 * is a password. Never logged, whichever module logs the error.
 */
const redact = { paths: ['err.command.args', 'err.cause.command.args', '*.command.args'], censor: '[redacted]' };

/** pino at `level` (default `info`, or `LOG_LEVEL`); pretty through pino-pretty when asked. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env['LOG_LEVEL'] ?? 'info';
  if (options.pretty) {
    return pino({
      level,
      redact,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } },
    });
  }
  return pino({ level, redact });
}

/** A logger that drops everything, for embedding and tests that assert on events instead. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * Writes out what the logger still buffers, synchronously: before a process ends without its exit
 * hooks (SIGKILL), and in place of `logger.flush(cb)`, whose callback pino's default stream calls
 * at once, before the lines are written. Best effort: a stream that cannot is left as it is.
 */
export function flushLogSync(logger: Logger): void {
  const stream = (logger as unknown as Record<symbol, { flushSync?: () => void } | undefined>)[pino.symbols.streamSym];
  try {
    stream?.flushSync?.();
  } catch {
    // not ready, or destroyed: nothing more can be written
  }
}
