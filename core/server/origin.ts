import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { canonicalOrigin, parseHost } from '../contract/config.js';
import { HostError } from '../contract/errors.js';
import { isLoopback, redactedUrl } from './auth.js';

/**
 * What keeps a token-less host on a developer's machine out of reach of the web pages its user
 * visits (SPEC §7). A page elsewhere can make the browser send requests here; the browser then
 * says where the page came from (`Origin`) and which name it used for this host (`Host`). A
 * foreign `Origin` is cross-site request forgery or WebSocket hijacking; a `Host` that names
 * neither loopback nor a listed name is DNS rebinding (a hostile name resolved to 127.0.0.1).
 * Clients that are not browsers (curl, the CLI, other servers) send no `Origin` and pass.
 */

/** The origin of a page served by this server under the name in `hostHeader` (it speaks plain HTTP). */
function ownOrigin(hostHeader: string): string | null {
  if (!parseHost(hostHeader)) return null;
  try {
    return new URL(`http://${hostHeader.trim()}`).origin;
  } catch {
    return null;
  }
}

/** A header value as it may appear in an error message: bounded, so a huge header is not echoed back. */
const shown = (value: string): string => JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}…` : value);

export interface RequestGuardOptions {
  /** The address the server binds: the Host check applies only to a loopback one. */
  bindHost: string;
  /** Canonical origins (`canonicalOrigin`) admitted besides the host's own. */
  allowedOrigins: readonly string[];
  /** Names (any port) or `name:port` pairs admitted in `Host` besides loopback ones. */
  allowedHosts: readonly string[];
}

export interface GuardedHeaders {
  host?: string | undefined;
  origin?: string | undefined;
}

/**
 * A check of one request's `Host` and `Origin` headers: throws HOST_NOT_ALLOWED or
 * ORIGIN_NOT_ALLOWED, else returns. The same check runs on WebSocket upgrades.
 */
export function requestGuard(options: RequestGuardOptions): (headers: GuardedHeaders) => void {
  const checkHost = isLoopback(options.bindHost);
  const hostNames = new Set<string>();
  const hostPairs = new Set<string>();
  for (const entry of options.allowedHosts) {
    const parsed = parseHost(entry);
    if (!parsed) continue; // the config schema refuses these; an embedder's typo admits nothing
    if (parsed.port === null) hostNames.add(parsed.name);
    else hostPairs.add(`${parsed.name}:${Number(parsed.port)}`);
  }
  const origins = new Set(options.allowedOrigins.map((o) => canonicalOrigin(o)).filter((o): o is string => o !== null));

  // The Host values admitted so far: a client sends the same one on every request, so the parse
  // runs once per value. Bounded, so distinct values cannot grow it without end.
  const admitted = new Set<string>();
  const hostAllowed = (header: string): boolean => {
    if (admitted.has(header)) return true;
    const parsed = parseHost(header);
    if (!parsed) return false;
    const ok = isLoopback(parsed.name) || hostNames.has(parsed.name) || (parsed.port !== null && hostPairs.has(`${parsed.name}:${Number(parsed.port)}`));
    if (ok && admitted.size < 64) admitted.add(header);
    return ok;
  };

  return ({ host, origin }) => {
    // HTTP/1.0 may omit Host; a browser never does, so there is no rebinding to stop.
    if (checkHost && host !== undefined && !hostAllowed(host)) {
      throw new HostError(
        'HOST_NOT_ALLOWED',
        `Host ${shown(host)} is not served: this host listens on ${options.bindHost} and answers to loopback names ` +
          '(127.0.0.1, localhost, [::1]) and the names in server.allowedHosts',
      );
    }
    if (origin === undefined) return;
    // Browsers send the serialized origin, so an exact comparison is the right one; `null` (a
    // sandboxed frame, a file: page) is never this host.
    const own = host === undefined ? null : ownOrigin(host);
    if (origin === own || origins.has(origin)) return;
    throw new HostError(
      'ORIGIN_NOT_ALLOWED',
      `Origin ${shown(origin)} is not allowed: a web page may use this host only from its own origin` +
        `${own === null ? '' : ` (${own})`} or one listed in server.allowedOrigins`,
    );
  };
}

/** True for a `content-type` of `application/json`, with or without parameters (`; charset=utf-8`). */
export function isJsonContentType(header: string | undefined): boolean {
  if (header === undefined) return false;
  return header.split(';', 1)[0]!.trim().toLowerCase() === 'application/json';
}

/**
 * The guard as a fastify plugin: an `onRequest` hook on every route, the WebSocket upgrade
 * included. Its answers also say they are for this host's own pages (no other site may embed or
 * sniff them).
 */
export function originGuard(guard: (headers: GuardedHeaders) => void): FastifyPluginAsync {
  // Each refused Origin/Host pair is logged once: a hostile page that keeps trying cannot flood
  // the log, and an operator behind a proxy still learns what to allow.
  const logged = new Set<string>();
  const plugin: FastifyPluginAsync = async (scope) => {
    // A callback hook (a throw reaches fastify's error handling): no promise per request.
    scope.addHook('onRequest', (request, reply, done) => {
      void reply.header('x-content-type-options', 'nosniff').header('cross-origin-resource-policy', 'same-origin');
      const { host, origin } = request.headers;
      try {
        guard({ host, origin });
      } catch (err) {
        const key = `${origin ?? ''} ${host ?? ''}`;
        if (logged.size < 100 && !logged.has(key)) {
          logged.add(key);
          const code = err instanceof HostError ? err.code : undefined;
          request.log.warn(
            // A WebSocket's `?token=` is a secret: never in the log.
            { code, origin, host, url: redactedUrl(request.url) },
            'refused a request from a foreign web page (server.allowedOrigins / server.allowedHosts admit one)',
          );
        }
        throw err;
      }
      done();
    });
  };
  return fp(plugin);
}

/**
 * Refuses (415) a POST that does not say `application/json`, with a body or without one. That is
 * what a cross-site form or no-cors fetch sends without a CORS preflight, so none reaches a handler.
 */
export const jsonPostsOnly: FastifyPluginAsync = fp(async (scope) => {
  scope.addHook('onRequest', (request, _reply, done) => {
    // `is404`, not `routeOptions.url`: the same test, without the 12-field object fastify builds on each `routeOptions` read.
    if (request.method === 'POST' && !request.is404 && !isJsonContentType(request.headers['content-type'])) {
      throw new HostError('UNSUPPORTED_MEDIA_TYPE', 'a POST must say content-type: application/json, with a JSON body or none');
    }
    done();
  });
});
