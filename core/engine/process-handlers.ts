import { flushLogSync, type Logger } from '../contract/logger.js';
import { attributeStray, traceStrays } from './executor.js';

/**
 * Process-wide `uncaughtException` / `unhandledRejection` handlers: installed only for a host told
 * to (`HostOptions.processHandlers`; `jobhost start` is), from `start()` to the end of `stop()`. A
 * library does not decide for the service it is embedded in what a stray exception means.
 *
 * A stray traced to an inline attempt (`attributeStray`) fails that attempt and the host carries
 * on (SPEC §4); one of an attempt that had already ended is logged with its run. Anything else
 * happened outside every run: the process's state may be broken, so it is logged as fatal, what
 * can be flushed is flushed, and the process exits 1 for its supervisor to restart it (or the
 * host's `fatal` decides instead).
 */

/** Where an unattributed failure came from. */
export type FatalOrigin = 'uncaughtException' | 'unhandledRejection';

/** `HostOptions.processHandlers`: false (default) installs nothing; true exits 1 on a fatal failure; `fatal` replaces that exit. */
export type ProcessHandlersOption = boolean | { fatal(err: unknown, origin: FatalOrigin): void };

interface Registration {
  logger: Logger;
  /** Makes what was recorded durable (the backend's flush), before the exit. */
  flush(): Promise<void>;
  fatal: ((err: unknown, origin: FatalOrigin) => void) | undefined;
}

/** Hosts of this process with handlers; one pair of listeners serves them all, so a stray is attributed once. */
const registered = new Set<Registration>();
let exiting = false;

/** Installs the handlers for one host (a no-op for `false`); returns the function that removes them. */
export function installProcessHandlers(option: ProcessHandlersOption | undefined, host: Omit<Registration, 'fatal'>): () => void {
  if (!option) return () => undefined;
  const registration: Registration = { ...host, fatal: option === true ? undefined : option.fatal };
  if (registered.size === 0) {
    process.on('unhandledRejection', onUnhandledRejection);
    process.on('uncaughtException', onUncaughtException);
  }
  registered.add(registration);
  const untrace = traceStrays();
  return () => {
    untrace();
    if (!registered.delete(registration) || registered.size > 0) return;
    process.off('unhandledRejection', onUnhandledRejection);
    process.off('uncaughtException', onUncaughtException);
  };
}

function onUnhandledRejection(reason: unknown): void {
  stray(reason, 'UNHANDLED_REJECTION', 'unhandledRejection');
}

function onUncaughtException(err: unknown): void {
  stray(err, 'UNCAUGHT_EXCEPTION', 'uncaughtException');
}

function stray(err: unknown, code: 'UNHANDLED_REJECTION' | 'UNCAUGHT_EXCEPTION', origin: FatalOrigin): void {
  const owner = attributeStray(err, code);
  const first = [...registered][0];
  if (!first) return;
  if (owner) {
    // Its attempt failed with `code` (the run's record says so), or it had ended: the handler's code, not the host's state.
    if (!owner.failed)
      first.logger.error(
        { err, code, job: owner.job, runId: owner.runId, attempt: owner.attempt },
        'a stray failure from a run that had already ended; its outcome stands',
      );
    return;
  }
  first.logger.fatal(
    { err, origin },
    `${origin === 'uncaughtException' ? 'uncaught exception' : 'unhandled rejection'} outside any run: the process state may be broken`,
  );
  if (first.fatal) return first.fatal(err, origin);
  if (exiting) return;
  exiting = true;
  process.exitCode = 1;
  void exitAfterFlush(first);
}

/** Flushes what was recorded (bounded: a broken process may hang in it) and the log, then exits 1. */
async function exitAfterFlush(r: Registration): Promise<void> {
  const bounded = (p: Promise<unknown>, ms: number): Promise<unknown> =>
    Promise.race([p.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, ms))]);
  await bounded(r.flush(), 2000);
  r.logger.fatal('exiting with code 1');
  flushLogSync(r.logger);
  process.exit(1);
}
