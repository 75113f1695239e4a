import { isIP } from 'node:net';
import { HostError } from '../contract/errors.js';

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopback(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  // An IPv4-mapped IPv6 loopback (::ffff:127.0.0.1).
  if (h.startsWith('::ffff:')) return isLoopback(h.slice(7));
  return false;
}

/** Throws INSECURE_BIND for a non-loopback address without a token (SPEC §7). */
export function assertSafeBind(host: string, token: string | null | undefined): void {
  if (!isLoopback(host) && !token) {
    throw new HostError(
      'INSECURE_BIND',
      `refusing to listen on ${host} without a token: anyone who can reach it could run jobs. ` + 'Set server.token (or JOBHOST_TOKEN), or bind 127.0.0.1.',
      { host },
    );
  }
}

/** The token of an `Authorization: Bearer <token>` header, if that is what it carries. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match?.[1];
}

/** A request URL as a log line may show it: a `?token=` (the WebSocket's) redacted, however its name is encoded. */
export function redactedUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const pairs = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq < 0) return pair;
      const key = pair.slice(0, eq);
      let name = key;
      try {
        name = decodeURIComponent(key.replaceAll('+', ' '));
      } catch {
        // not decodable: the query parser keeps it as it is too
      }
      return name === 'token' ? `${key}=[redacted]` : pair;
    });
  return `${url.slice(0, q + 1)}${pairs.join('&')}`;
}
