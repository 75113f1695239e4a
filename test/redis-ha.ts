import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Socket, connect as tcpConnect } from 'node:net';
import path from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { type Tap, tempDir, until } from './helpers.js';
import { closedPort } from './live-host.js';

/**
 * Redis beyond one plain process, for the high-availability tests (SPEC §11): TLS servers with
 * ACL users and certificates made here with openssl, and a Sentinel set (a master, two replicas,
 * three Sentinels). Every process runs on a free port in a temp dir and is stopped by its pid
 * when the test ends.
 */

/** A redis-server (or Sentinel) process started by a test. */
export interface ServerProcess {
  port: number;
  pid: number;
  /** A crash: SIGKILL; resolves once it has exited. */
  kill9(): Promise<void>;
}

/**
 * Starts `redis-server <args>` (a conf file path first, or flags) and waits until `probe` (ioredis
 * options for port) answers PING; SIGTERM at teardown (SIGKILL 5 s later).
 */
async function spawnServer(t: Tap, args: string[], port: number, probe: RedisOptions = {}): Promise<ServerProcess> {
  let stderr = '';
  const child: ChildProcess = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  t.teardown(async () => {
    if (!alive()) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  });
  await until(
    async () => {
      if (!alive()) throw new Error(`redis-server ${args.join(' ')} exited: ${stderr}`);
      const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, ...probe });
      c.on('error', () => undefined);
      try {
        await c.connect();
        return (await c.ping()) === 'PONG';
      } catch {
        return false;
      } finally {
        c.disconnect();
      }
    },
    20_000,
    `redis-server on port ${port} to answer PING`,
  );
  return {
    port,
    pid: child.pid!,
    async kill9() {
      if (alive()) child.kill('SIGKILL');
      await exited;
    },
  };
}

// ------------------------------------------------------------------ TLS and ACL

export interface Certs {
  /** The private CA the server's certificate is signed by. */
  ca: string;
  /** A client certificate and key signed by the same CA (the server asks for one). */
  cert: string;
  key: string;
  /** Another CA, which did not sign the server's certificate: a client trusting only it must refuse the server. */
  otherCa: string;
  /** The server's files. */
  server: { cert: string; key: string };
}

/** A private CA, a server certificate for 127.0.0.1, a client certificate, and a stranger CA. */
export function makeCerts(t: Tap): Certs {
  const dir = tempDir(t, 'jobhost-certs-');
  const f = (name: string): string => path.join(dir, name);
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ca = (name: string): void => {
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.crt`));
  };
  const signed = (name: string, ext: string): void => {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`));
    writeFileSync(f(`${name}.ext`), ext);
    ssl(
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f('ca.crt'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-days',
      '2',
      '-out',
      f(`${name}.crt`),
      '-extfile',
      f(`${name}.ext`),
    );
  };
  ca('ca');
  ca('other-ca');
  signed('server', 'subjectAltName=IP:127.0.0.1\n');
  signed('client', 'extendedKeyUsage=clientAuth\n');
  return { ca: f('ca.crt'), cert: f('client.crt'), key: f('client.key'), otherCa: f('other-ca.crt'), server: { cert: f('server.crt'), key: f('server.key') } };
}

/**
 * A redis-server that speaks TLS only (client certificates required) with ACL users from `users`
 * (conf `user` lines, e.g. `acc on >secret ~* &* +@all`); the default user is off.
 */
export async function startTlsRedis(t: Tap, certs: Certs, users: string[], probe: { username: string; password: string }): Promise<ServerProcess> {
  const dir = tempDir(t, 'jobhost-redis-tls-');
  const port = await closedPort();
  const conf = path.join(dir, 'redis.conf');
  writeFileSync(
    conf,
    [
      'port 0',
      `tls-port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      'save ""',
      'appendonly no',
      'loglevel warning',
      `tls-cert-file ${certs.server.cert}`,
      `tls-key-file ${certs.server.key}`,
      `tls-ca-cert-file ${certs.ca}`,
      'tls-auth-clients yes',
      'user default off',
      ...users.map((u) => `user ${u}`),
      '',
    ].join('\n'),
  );
  const tls = { ca: readFileSync(certs.ca), cert: readFileSync(certs.cert), key: readFileSync(certs.key) };
  return spawnServer(t, [conf], port, { tls, ...probe });
}

/** A replica of the Redis on `masterPort` (AOF everysec), once in sync with it. */
export async function startReplica(t: Tap, masterPort: number): Promise<ServerProcess> {
  const dir = tempDir(t, 'jobhost-replica-');
  const port = await closedPort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec'];
  const replica = await spawnServer(t, [...args, '--loglevel', 'warning', '--replicaof', '127.0.0.1', String(masterPort)], port);
  await until(async () => (await infoOf(port)).includes('master_link_status:up'), 20_000, 'the replica in sync');
  return replica;
}

async function infoOf(port: number): Promise<string> {
  const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return await c.info('replication');
  } catch {
    return '';
  } finally {
    c.disconnect();
  }
}

// ------------------------------------------------------------------ Sentinel

/** A TCP proxy to `target` on 127.0.0.1 that holds every chunk from it for `delayMs`: a slow server. */
async function slowProxy(t: Tap, target: number, delayMs: number): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = tcpConnect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => s.destroy());
    }
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => setTimeout(() => client.destroyed || client.write(chunk), delayMs));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => setTimeout(() => client.destroy(), delayMs));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return (server.address() as { port: number }).port;
}

export interface SentinelSet {
  /** The master's name Sentinel monitors. */
  name: string;
  sentinels: Array<{ host: string; port: number }>;
  master: ServerProcess;
  replicas: ServerProcess[];
  /** The address Sentinel gives for the master now. */
  masterPort(): Promise<number>;
  /** `SENTINEL <args>` on the first Sentinel. */
  sentinelCommand(...args: string[]): Promise<unknown>;
}

async function sentinelCommand(port: number, ...args: string[]): Promise<unknown> {
  const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return await c.call('SENTINEL', ...args);
  } finally {
    c.disconnect();
  }
}

function fieldsOf(flat: unknown): Record<string, string> {
  const list = flat as string[];
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < list.length; i += 2) out[list[i]!] = list[i + 1]!;
  return out;
}

/**
 * A master (AOF everysec), two replicas of it, and three Sentinels (quorum 2, down after 1 s,
 * failover timeout 5 s), each on its own free port; resolves once every Sentinel sees both
 * replicas and the two other Sentinels, and both replicas are in sync.
 */
export async function startSentinelSet(t: Tap, options: { slowMs?: number } = {}): Promise<SentinelSet> {
  const name = 'jh-master';
  const dir = tempDir(t, 'jobhost-sentinel-');
  const redisArgs = (port: number, sub: string): string[] => {
    execFileSync('mkdir', ['-p', path.join(dir, sub)]);
    return [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      path.join(dir, sub),
      '--save',
      '',
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
      '--loglevel',
      'warning',
    ];
  };
  const masterPort = await closedPort();
  const master = await spawnServer(t, redisArgs(masterPort, 'm'), masterPort);
  const replicas: ServerProcess[] = [];
  for (const sub of ['r1', 'r2']) {
    const port = await closedPort();
    replicas.push(await spawnServer(t, [...redisArgs(port, sub), '--replicaof', '127.0.0.1', String(masterPort)], port));
  }
  const sentinels: Array<{ host: string; port: number }> = [];
  // Slow: clients (and the other Sentinels) reach each Sentinel through a proxy that holds its replies, the address it announces.
  const reached: Array<{ host: string; port: number }> = [];
  for (const sub of ['s1', 's2', 's3']) {
    const port = await closedPort();
    const via = options.slowMs ? await slowProxy(t, port, options.slowMs) : port;
    reached.push({ host: '127.0.0.1', port: via });
    execFileSync('mkdir', ['-p', path.join(dir, sub)]);
    const conf = path.join(dir, sub, 'sentinel.conf');
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${path.join(dir, sub)}`,
        'loglevel warning',
        ...(options.slowMs ? ['sentinel announce-ip 127.0.0.1', `sentinel announce-port ${via}`] : []),
        `sentinel monitor ${name} 127.0.0.1 ${masterPort} 2`,
        `sentinel down-after-milliseconds ${name} 1000`,
        `sentinel failover-timeout ${name} 5000`,
        `sentinel parallel-syncs ${name} 2`,
        '',
      ].join('\n'),
    );
    await spawnServer(t, [conf, '--sentinel'], port);
    sentinels.push({ host: '127.0.0.1', port });
  }
  await until(
    async () => {
      for (const s of sentinels) {
        const m = fieldsOf(await sentinelCommand(s.port, 'MASTER', name));
        if (m['num-slaves'] !== '2' || m['num-other-sentinels'] !== '2') return false;
      }
      for (const r of replicas) if (!(await infoOf(r.port)).includes('master_link_status:up')) return false;
      return true;
    },
    30_000,
    'Sentinels to see both replicas and each other',
  );
  return {
    name,
    sentinels: reached,
    master,
    replicas,
    sentinelCommand: (...args) => sentinelCommand(sentinels[0]!.port, ...args),
    async masterPort() {
      const [, port] = (await sentinelCommand(sentinels[0]!.port, 'GET-MASTER-ADDR-BY-NAME', name)) as [string, string];
      return Number(port);
    },
  };
}
