import { STATUS_CODES } from 'node:http';
import { ERROR_CODES, type ErrorCode, type HttpErrorBody, isHostError } from '../contract/errors.js';

/**
 * The one place where anything thrown while serving a request becomes an HTTP answer in fastify's
 * shape, `{ statusCode, code, error, message }`, with a stable code from `errors.ts`.
 */

export type { HttpErrorBody };

export interface HttpError {
  statusCode: number;
  body: HttpErrorBody;
  /** True for a failure of ours (a 5xx): log it; the client only sees a generic message. */
  internal: boolean;
  /** Headers that go with the answer (`Retry-After` for a temporary 503). */
  headers?: Record<string, string>;
}

/** Fastify's own client-side failures, by status: what the client did wrong. */
const CLIENT_CODES: Readonly<Record<number, ErrorCode>> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  426: 'UPGRADE_REQUIRED',
};

/** `{ statusCode, code, error, message }` plus extra fields (never overriding the four). */
export function errorBody(code: ErrorCode, message: string, extra: Readonly<Record<string, unknown>> = {}): HttpErrorBody {
  const statusCode = ERROR_CODES[code].status;
  const body: HttpErrorBody = { statusCode, code, error: STATUS_CODES[statusCode] ?? 'Error', message };
  for (const [key, value] of Object.entries(extra)) if (!(key in body)) body[key] = value;
  return body;
}

interface ValidationIssue {
  instancePath?: string;
  message?: string;
}

/** Where a fastify validation error came from: `body`, `querystring`, `params`, `headers`. */
function describeValidation(err: { validation: ValidationIssue[]; validationContext?: string }): HttpError {
  const context = err.validationContext ?? 'body';
  const issues = err.validation.map((v) => ({
    path: [context, ...(v.instancePath ?? '').split('/').filter(Boolean)].join('.'),
    message: v.message ?? 'invalid',
  }));
  const first = issues[0];
  const body = errorBody('INVALID_BODY', first ? `${first.path}: ${first.message}` : `${context}: invalid`, { issues });
  return { statusCode: body.statusCode, body, internal: false };
}

/** 5xx codes that describe the host's state to the client (retry later), not a failure inside it. */
const STATE_CODES: ReadonlySet<ErrorCode> = new Set(['SHUTTING_DOWN', 'NOT_STARTED', 'QUEUE_FULL', 'EVENTS_OVERFLOW']);

/**
 * True for a code whose message describes the server's inside (a file path, a stack of causes):
 * the client gets the code's meaning instead, and the log keeps the message and details.
 */
export function isServerSide(code: string): boolean {
  const entry = (ERROR_CODES as Readonly<Record<string, { status: number } | undefined>>)[code];
  return entry !== undefined && entry.status >= 500 && !STATE_CODES.has(code as ErrorCode);
}

/** What a client is told of an error recorded as `{ code, message }`: the message, unless it is server-side. */
export function clientMessage(code: string, message: string): string {
  return isServerSide(code) ? ERROR_CODES[code as ErrorCode].text : message;
}

/** The system error code (`ENOSPC`) somewhere in an error's causes: what a client may know of an I/O failure. */
function systemCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && typeof e === 'object' && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Maps anything thrown to the answer the client gets. */
export function toHttpError(err: unknown): HttpError {
  if (isHostError(err)) {
    let answer: HttpError;
    if (isServerSide(err.code)) {
      // The message and details of a failure of ours name files and directories: log them, answer with the meaning.
      const cause = systemCode(err.cause) ?? systemCode({ code: err.details?.['errno'] });
      // What a client may know of a failure of ours: the system error code and when to retry.
      const extra: Record<string, unknown> = cause === undefined ? {} : { errno: cause };
      if (typeof err.details?.['retryAfter'] === 'number') extra['retryAfter'] = err.details['retryAfter'];
      const body = errorBody(err.code, cause === undefined ? ERROR_CODES[err.code].text : `${ERROR_CODES[err.code].text} (${cause})`, extra);
      // A 503 is a temporary state the host already reports (a full disk), not a bug to log per request.
      answer = { statusCode: body.statusCode, body, internal: body.statusCode !== 503 };
    } else {
      const body = errorBody(err.code, err.message, err.details);
      answer = { statusCode: body.statusCode, body, internal: body.statusCode >= 500 && body.statusCode !== 503 };
    }
    const retryAfter = err.details?.['retryAfter'];
    if (typeof retryAfter === 'number') answer.headers = { 'retry-after': String(Math.max(1, Math.ceil(retryAfter))) };
    return answer;
  }
  if (typeof err === 'object' && err !== null) {
    const e = err as { validation?: unknown; validationContext?: string; statusCode?: unknown; message?: unknown };
    if (Array.isArray(e.validation)) {
      return describeValidation({ validation: e.validation as ValidationIssue[], ...(e.validationContext ? { validationContext: e.validationContext } : {}) });
    }
    const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
    if (status >= 400 && status < 500) {
      const code = CLIENT_CODES[status] ?? 'BAD_REQUEST';
      const message = typeof e.message === 'string' && e.message !== '' ? e.message : ERROR_CODES[code].text;
      const body = errorBody(code, message);
      return { statusCode: body.statusCode, body, internal: false };
    }
  }
  const body = errorBody('INTERNAL', 'internal error; the host logged the details');
  return { statusCode: 500, body, internal: true };
}
