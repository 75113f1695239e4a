import { type ChildProcess, spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { type Tap, tempDir } from './helpers.js';
import { closedPort } from './live-host.js';

/**
 * A private redis-server for a test: a free port on 127.0.0.1, a temp dir, AOF on (`appendfsync
 * always` unless asked otherwise), no RDB snapshots, in the foreground. Stopped by its pid when
 * the test ends; never a system service, never a fixed port.
 */
export interface TestRedis {
  port: number;
  url: string;
  dir: string;
  /** The running server's pid. */
  readonly pid: number;
  /** SIGTERM (Redis flushes its AOF and exits); resolves once it has exited. */
  stop(): Promise<void>;
  /** SIGKILL: a crash of the Redis process. */
  kill9(): Promise<void>;
  /** Starts it again on the same port and directory (it loads its AOF); resolves once it answers PING. */
  restart(): Promise<void>;
  /** A plain client for the test's own reads (closed at teardown). */
  client(): Redis;
}

async function waitForPing(port: number, child: ChildProcess, err: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}): ${err()}`);
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      // PING answers LOADING while the AOF is read back: wait for PONG.
      if ((await probe.ping()) === 'PONG') return;
    } catch {
      // not up yet
    } finally {
      probe.disconnect();
    }
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within 20 s: ${err()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A redis-server in `dir` (the caller owns both): for benchmarks; tests use `startRedis`. */
export async function spawnRedis(
  dir: string,
  options: { appendfsync?: 'always' | 'everysec' } = {},
): Promise<Omit<TestRedis, 'client' | 'dir'> & { dir: string; close(): Promise<void> }> {
  const port = await closedPort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const launch = async (): Promise<void> => {
    let stderr = '';
    const proc = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        options.appendfsync ?? 'always',
        '--daemonize',
        'no',
        '--loglevel',
        'warning',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child = proc;
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    await waitForPing(port, proc, () => stderr);
  };

  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill(sig);
      await exited;
    }
  };

  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    get pid() {
      return child?.pid ?? -1;
    },
    stop: () => signal('SIGTERM'),
    kill9: () => signal('SIGKILL'),
    restart: launch,
    async close() {
      if (child && child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child?.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

export async function startRedis(t: Tap, options: { appendfsync?: 'always' | 'everysec' } = {}): Promise<TestRedis> {
  const server = await spawnRedis(tempDir(t, 'jobhost-redis-'), options);
  const clients: Redis[] = [];
  t.teardown(async () => {
    for (const c of clients) c.disconnect();
    await server.close();
  });
  return {
    port: server.port,
    url: server.url,
    dir: server.dir,
    get pid() {
      return server.pid;
    },
    stop: server.stop,
    kill9: server.kill9,
    restart: server.restart,
    client() {
      const c = new Redis({ port: server.port, host: '127.0.0.1', maxRetriesPerRequest: null });
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    },
  };
}
