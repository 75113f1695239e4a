import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { RedisOptions } from 'ioredis';
import type { RedisBackendConfig } from '../contract/config.js';
import { HostError } from '../contract/errors.js';

/**
 * How to reach Redis, from `backend` (SPEC §11, high availability): one server from `url`, or
 * the master Redis Sentinel names; TLS for `rediss://` with `backend.tls`'s files read once here;
 * a URL's user and password for Redis ACLs. What it says about the target (`target`) never
 * carries a credential: logs, `/ready`, `/cluster` and errors show only that.
 */

/** The part of `backend` that says where Redis is and how to talk to it. */
export type ReachConfig = Pick<RedisBackendConfig, 'url' | 'sentinels' | 'name' | 'sentinelUsername' | 'sentinelPassword' | 'tls'>;

export interface Reach {
  /** `redis://host:port/db`, `rediss://…`, or `redis+sentinel://s1:p1,s2:p2/<name>`: never credentials. */
  target: string;
  /** ioredis options for every connection (the caller adds its own: timeouts, queues, names). */
  options: RedisOptions;
}

/** `redis://host:port/db`, without the credentials a URL may carry: what logs and `/ready` show. */
export function redisTarget(url: string): string {
  const u = new URL(url);
  const db = u.pathname && u.pathname !== '/' ? u.pathname : '';
  return `${u.protocol}//${u.hostname}:${u.port || '6379'}${db}`;
}

function readTlsFile(field: 'ca' | 'cert' | 'key', file: string | undefined): Buffer | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new HostError('BACKEND_UNAVAILABLE', `backend.tls.${field}: cannot read ${file} (${reason})`, { field: `backend.tls.${field}` });
  }
}

/** The TLS options of a rediss:// URL: Node's default trust (the system's CAs) unless `backend.tls.ca` names a CA. */
function tlsOptions(config: ReachConfig): ConnectionOptions {
  const ca = readTlsFile('ca', config.tls?.ca);
  const cert = readTlsFile('cert', config.tls?.cert);
  const key = readTlsFile('key', config.tls?.key);
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
}

/** Resolves `backend` into ioredis options; reads the TLS files (a file it cannot read is BACKEND_UNAVAILABLE). */
export function reachOf(config: ReachConfig): Reach {
  const url = new URL(config.url);
  const tls = url.protocol === 'rediss:' ? tlsOptions(config) : undefined;
  const db = Number(url.pathname.slice(1) || '0');
  const options: RedisOptions = {
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    db,
    // A master demoted by a failover answers writes READONLY while the connection stays up:
    // reconnect (through Sentinel, to the new master) and send the command again.
    reconnectOnError: (err) => (/^READONLY\b/.test(err.message) ? 2 : false),
  };
  if (config.sentinels && config.name) {
    const scheme = tls ? 'rediss+sentinel' : 'redis+sentinel';
    return {
      target: `${scheme}://${config.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}/${config.name}${db ? `/${db}` : ''}`,
      options: {
        ...options,
        sentinels: config.sentinels.map((s) => ({ host: s.host, port: s.port })),
        name: config.name,
        ...(config.sentinelUsername ? { sentinelUsername: config.sentinelUsername } : {}),
        ...(config.sentinelPassword ? { sentinelPassword: config.sentinelPassword } : {}),
        ...(tls ? { tls, enableTLSForSentinelMode: true, sentinelTLS: tls } : {}),
        // Sentinel tells every client of a switch of master (+switch-master): the connections move
        // at once instead of staying on a demoted master (whose blocked reads would never end).
        failoverDetector: true,
        // Sentinels down for a while are tried again, at most 2 s apart, like Redis itself.
        sentinelRetryStrategy: (times) => Math.min(times * 100, 2000),
      },
    };
  }
  return {
    target: redisTarget(config.url),
    options: { ...options, host: url.hostname, port: Number(url.port || '6379'), ...(tls ? { tls } : {}) },
  };
}

/** A socket or TLS error's code: what it means for a start, in words (the code alone says little). */
const EXPLAINED: Record<string, string> = {
  WRONGPASS: 'wrong user name or password (check the URL)',
  NOAUTH: 'Redis needs a password (put user and password in the URL)',
  NOPERM: 'the Redis user lacks a permission jobhost needs (give it ~* &* +@all)',
  DEPTH_ZERO_SELF_SIGNED_CERT: "the server's certificate is self-signed and not trusted (backend.tls.ca)",
  SELF_SIGNED_CERT_IN_CHAIN: "the server's certificate is signed by a CA jobhost does not trust (backend.tls.ca)",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the server's certificate is signed by a CA jobhost does not trust (backend.tls.ca)",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the server's certificate is signed by a CA jobhost does not trust (backend.tls.ca)",
  CERT_HAS_EXPIRED: "the server's certificate has expired",
  ERR_TLS_CERT_ALTNAME_INVALID: "the server's certificate does not name the host in the URL",
  // What a Redis with `tls-auth-clients yes` answers a client without a certificate under TLS 1.3,
  // when its alert arrives before the reset (else: ECONNRESET, below).
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'the server asks for a client certificate: backend.tls.cert and key',
};

/**
 * What a failed connect says, as the reason of a start error (never a credential).
 * `resetMeansNoCert`: the first connect over TLS without a client certificate, where a reset has
 * one usual cause worth naming.
 */
export function connectFailure(err: Error, resetMeansNoCert = false): string {
  // Through Sentinel, ioredis says "All sentinels are unreachable. Retrying from scratch after …"
  // whatever the Sentinels answered, with their last error at the end: that is the reason.
  if (/^All sentinels are unreachable/.test(err.message)) {
    const last = /Last error: (.+)$/.exec(err.message)?.[1];
    if (last === undefined) return 'no Sentinel of backend.sentinels answered';
    if (/No such master/i.test(last)) return `${last}: the Sentinels know no master of that name (backend.name)`;
    return `no Sentinel of backend.sentinels gave the master's address (last error: ${last})`;
  }
  const code = (err as { code?: unknown }).code;
  const word = typeof code === 'string' ? code : (/^([A-Z]+)\b/.exec(err.message)?.[1] ?? '');
  const explained = EXPLAINED[word];
  if (explained) return `${word}: ${explained}`;
  if (/DB index is out of range/.test(err.message)) return `${err.message}: this Redis has no database of the URL's number (its \`databases\` setting)`;
  if (resetMeansNoCert && code === 'ECONNRESET')
    return 'ECONNRESET: Redis closed the connection as it opened (a Redis with `tls-auth-clients yes` does so to a client without a certificate: backend.tls.cert and key)';
  return typeof code === 'string' ? code : err.message;
}

/**
 * ioredis puts the failed command on its errors (`err.command.args`): for AUTH that is the user
 * and the password. Called first on every error, before any listener may log it.
 */
export function scrubCredentials(err: unknown): void {
  const command = (err as { command?: { name?: unknown; args?: unknown } } | null)?.command;
  if (command && typeof command.name === 'string' && /^(auth|hello)$/i.test(command.name)) command.args = ['[redacted]'];
}
