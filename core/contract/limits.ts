import { type ErrorCode, HostError } from './errors.js';
import type { Logger } from './logger.js';

/**
 * Byte limits on what clients and plugins hand the host (`limits` in the config). What is
 * measured is JSON text the host makes anyway (to store it, or to send it to another thread),
 * so a check costs no second serialization: a string's length bounds its UTF-8 size from both
 * sides (length ≤ bytes ≤ 3 × length), and only the narrow band between needs a count.
 */

/** True when `text` is more than `max` bytes as UTF-8. */
export function overBytes(text: string, max: number): boolean {
  if (text.length > max) return true;
  if (text.length * 3 <= max) return false;
  return Buffer.byteLength(text, 'utf8') > max;
}

/** The error for `what` (params, a result, an event payload) past its limit, naming the sizes. */
export function tooLarge(code: ErrorCode, what: string, text: string, max: number, setting: string): HostError {
  const bytes = Buffer.byteLength(text, 'utf8');
  return new HostError(code, `${what} is ${bytes} bytes as JSON, more than ${setting} (${max})`, { bytes, max });
}

/** The limits an attempt's handler runs under, in either thread (read per attempt: a config edit applies to the next one). */
export interface HandlerLimits {
  /** `limits.maxResultBytes`: a larger result fails the attempt with RESULT_TOO_LARGE. */
  readonly maxResultBytes: number;
  /** `limits.maxEventBytes`: `ctx.emit` of a larger payload throws EVENT_TOO_LARGE in the handler. */
  readonly maxEventBytes: number;
}

/** The error a handler's too-large result fails its attempt with. */
export function resultTooLarge(json: string, max: number): HostError {
  return tooLarge('RESULT_TOO_LARGE', "the handler's result", json, max, 'limits.maxResultBytes');
}

/** The error `ctx.emit` throws for a payload past its limit. */
function emitTooLarge(event: string, json: string, max: number): HostError {
  return tooLarge('EVENT_TOO_LARGE', `the payload of ctx.emit("${event.slice(0, 100)}")`, json, max, 'limits.maxEventBytes');
}

/**
 * `ctx.emit`'s payload as the JSON it is sent and measured as, in either thread: undefined for
 * none, null when it cannot be JSON (logged on `log`: the handler goes on). Throws
 * EVENT_TOO_LARGE past `maxBytes`, in the handler: the payload goes nowhere.
 */
export function emitPayload(event: string, payload: unknown, maxBytes: number, log: Logger): string | undefined | null {
  let json: string | undefined;
  try {
    json = payload === undefined ? undefined : JSON.stringify(payload);
  } catch (err) {
    log.error({ err, event }, 'ctx.emit failed: the payload cannot be sent as JSON');
    return null;
  }
  if (json !== undefined && overBytes(json, maxBytes)) throw emitTooLarge(String(event), json, maxBytes);
  return json;
}
