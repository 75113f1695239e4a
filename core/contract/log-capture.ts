import { format } from 'node:util';
import type { Logger } from './logger.js';
import { LOG_LEVELS, LOG_MAX_FIELDS, LOG_MAX_MSG, type LogLevel } from './run-log.js';

/**
 * `ctx.log` keeps what a handler logs with its run: the handler gets the host's pino child logger
 * as before, and every call at any level (the host's log level decides only what reaches the
 * host's log) is also handed to a sink as a level, a message and the logged object. Pure
 * functions of the call, so a worker thread can turn a call into a line the same way and post it.
 */

/** Where captured lines go: `RunLogs.line` for the attempt the logger belongs to. */
export type LineSink = (level: LogLevel, msg: string, fields: Record<string, unknown> | undefined) => void;

const LEVELS: ReadonlySet<string> = new Set(LOG_LEVELS);

/** An Error as pino's standard serializer shows it. */
function errorFields(err: Error): Record<string, unknown> {
  const code = (err as { code?: unknown }).code;
  return { type: err.name, message: err.message, ...(code !== undefined && { code }), stack: err.stack };
}

/** A JSON copy of the logged object, bounded; something JSON cannot carry is said, not thrown. */
function jsonFields(value: Record<string, unknown>): Record<string, unknown> | undefined {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    return { unserializable: err instanceof Error ? err.message : String(err) };
  }
  if (json === undefined || json === '{}') return undefined;
  if (json.length > LOG_MAX_FIELDS) return { truncated: `${json.slice(0, LOG_MAX_FIELDS)}…` };
  return JSON.parse(json) as Record<string, unknown>;
}

const cut = (msg: string): string => (msg.length > LOG_MAX_MSG ? `${msg.slice(0, LOG_MAX_MSG)}…` : msg);

/**
 * The message and fields of a pino call: `(msg, ...args)`, `(obj, msg?, ...args)` or `(err, msg?)`,
 * with `%s`-style interpolation as pino does it; `bindings` (from `child()`) join the fields.
 */
export function logArgs(args: readonly unknown[], bindings?: Record<string, unknown>): { msg: string; fields: Record<string, unknown> | undefined } {
  const [first, ...rest] = args;
  let obj: Record<string, unknown> = {};
  let msgArgs: unknown[];
  if (first instanceof Error) {
    obj = { err: errorFields(first) };
    msgArgs = rest.length > 0 ? rest : [first.message];
  } else if (typeof first === 'object' && first !== null) {
    obj = { ...(first as Record<string, unknown>) };
    msgArgs = rest;
    if (msgArgs.length === 0 && typeof obj['msg'] === 'string') msgArgs = [obj['msg']];
    delete obj['msg'];
    if (obj['err'] instanceof Error) obj['err'] = errorFields(obj['err']);
  } else {
    msgArgs = args.slice();
  }
  const msg = msgArgs.length === 0 ? '' : typeof msgArgs[0] === 'string' ? format(...(msgArgs as [string, ...unknown[]])) : format('%s', ...msgArgs);
  return { msg: cut(msg), fields: jsonFields(bindings ? { ...bindings, ...obj } : obj) };
}

/** `base`, with every level method (and those of its children) also feeding `sink`. */
export function capturingLogger(base: Logger, sink: LineSink, bindings?: Record<string, unknown>): Logger {
  return new Proxy(base, {
    get(target, prop) {
      if (typeof prop === 'string' && LEVELS.has(prop)) {
        const level = prop as LogLevel;
        return (...args: unknown[]) => {
          const { msg, fields } = logArgs(args, bindings);
          sink(level, msg, fields);
          (target[level] as (...a: unknown[]) => void).apply(target, args);
        };
      }
      if (prop === 'child') {
        return (childBindings: Record<string, unknown>, options?: object) =>
          capturingLogger(target.child(childBindings, options), sink, { ...bindings, ...childBindings });
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
