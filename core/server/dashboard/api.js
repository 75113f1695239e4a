// @ts-check
// The HTTP client of the dashboard: JSON in and out, the token as a Bearer header.
// The token lives in sessionStorage: asked for once, kept for this tab, gone when it closes.
// What the API answers is `unknown` here: each caller names the shape it reads, a type from
// core/contract/, so `npm run lint` checks every field the page reads against the contract.

/** @import { HttpErrorBody } from '../../contract/errors.js' */
/** @import { StreamMessage } from '../../contract/events.js' */

const KEY = 'jobhost.token';
/** @type {string | null} */
let memoryToken = null; // when storage is blocked, the token lives as long as the page

/** An error answer of the API: `status`, and the body `{ statusCode, code, error, message, ... }`. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {Partial<HttpErrorBody> | null} body
   */
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    /** @type {Partial<HttpErrorBody>} */
    this.body = body ?? {};
    this.code = this.body.code ?? null;
  }
}

export function getToken() {
  try {
    return sessionStorage.getItem(KEY) ?? memoryToken;
  } catch {
    return memoryToken;
  }
}

/** @param {string | null} token */
export function setToken(token) {
  memoryToken = token || null;
  try {
    if (token) sessionStorage.setItem(KEY, token);
    else sessionStorage.removeItem(KEY);
  } catch {
    // storage disabled: memoryToken has it
  }
}

/** @type {(err: ApiError) => void} */
let unauthorized = () => {};
/**
 * Called on every 401, so the page can ask for the token again.
 * @param {(err: ApiError) => void} fn
 */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

/**
 * A request to the API; resolves with the parsed body, rejects with ApiError (or a network TypeError).
 * @param {'GET' | 'POST'} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<unknown>}
 */
export async function api(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json' };
  const token = getToken();
  if (token) headers.authorization = `Bearer ${token}`;
  /** @type {RequestInit} */
  const init = { method, headers };
  // The host takes a POST only when it says JSON, body or not (what a cross-site form cannot say).
  if (method !== 'GET') headers['content-type'] = 'application/json';
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(path, init);
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const err = new ApiError(res.status, /** @type {Partial<HttpErrorBody> | null} */ (json));
    if (res.status === 401) unauthorized(err);
    throw err;
  }
  return json;
}

export const get = (/** @type {string} */ path) => api('GET', path);
export const post = (/** @type {string} */ path, /** @type {unknown} */ body = undefined) => api('POST', path, body);

/**
 * `/runs?job=a&status=failed`: a path with the defined query values.
 * @param {string} path
 * @param {Readonly<Record<string, unknown>>} query
 */
export function withQuery(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/**
 * The WebSocket URL of the event stream; browsers cannot set headers there, so the token rides in the query.
 * @param {number | null | undefined} since
 * @param {Readonly<Record<string, string>>} [filter]
 */
export function eventsUrl(since, filter = {}) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${withQuery('/events', { ...filter, since, token: getToken() })}`;
}

/**
 * One message of the event stream (the `hello`, then events), or null for one that is not JSON.
 * @param {MessageEvent} message
 * @returns {StreamMessage | null}
 */
export function parseMessage(message) {
  try {
    return JSON.parse(message.data);
  } catch {
    return null;
  }
}
