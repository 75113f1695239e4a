// The HTTP client of the dashboard: JSON in and out, the token as a Bearer header.
// The token lives in sessionStorage: asked for once, kept for this tab, gone when it closes.

const KEY = 'jobhost.token';
let memoryToken = null; // when storage is blocked, the token lives as long as the page

/** An error answer of the API: `status`, and the body `{ statusCode, code, error, message, ... }`. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
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

export function setToken(token) {
  memoryToken = token || null;
  try {
    if (token) sessionStorage.setItem(KEY, token);
    else sessionStorage.removeItem(KEY);
  } catch {
    // storage disabled: memoryToken has it
  }
}

let unauthorized = () => {};
/** Called on every 401, so the page can ask for the token again. */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

/** A request to the API; resolves with the parsed body, rejects with ApiError (or a network TypeError). */
export async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  const token = getToken();
  if (token) headers.authorization = `Bearer ${token}`;
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
    const err = new ApiError(res.status, json);
    if (res.status === 401) unauthorized(err);
    throw err;
  }
  return json;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body);

/** `/runs?job=a&status=failed`: a path with the defined query values. */
export function withQuery(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** The WebSocket URL of the event stream; browsers cannot set headers there, so the token rides in the query. */
export function eventsUrl(since, filter = {}) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${withQuery('/events', { ...filter, since, token: getToken() })}`;
}
