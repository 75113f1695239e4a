import type { Test } from 'tap';
import { z } from 'zod';
import { ClientError } from '../core/cli/client.js';
import { systemClock } from '../core/contract/clock.js';
import { silentLogger } from '../core/contract/logger.js';
import { definePlugin } from '../core/contract/plugin.js';
import { createHost, type Host } from '../core/engine/host.js';
import { createServer, type Server } from '../core/server/server.js';
import { gate, type Tap } from './helpers.js';

/**
 * A host on the real clock with a real server on 127.0.0.1, for the client and the CLI: the
 * things under test only talk HTTP and WebSocket to it. Its server can be taken down and brought
 * back on the same port (the host, and its event numbering, go on), to test reconnection.
 */
export interface LiveHost {
  host: Host;
  url: string;
  port: number;
  /** Closes the server (WebSockets get 1001); the host keeps running. */
  down(): Promise<void>;
  /** A new server on the same port. */
  up(): Promise<void>;
  /** Lets every `work` run waiting with `hold: true` go on. */
  release(): void;
}

/**
 * `work`: progress `step i of n` for each step, logging each `log` line at step 1 (and `logEnd` at the end); with `hold`, waits after step 1 until `release()`;
 * with `fail`, throws an error with code WORK_FAILED and that message. Returns `{ steps }`.
 */
function workPlugin(held: () => Promise<void>) {
  return definePlugin({
    name: 'work',
    description: 'test job',
    concurrency: 4,
    params: z.object({
      steps: z.number().int().min(1).max(100).default(2),
      hold: z.boolean().default(false),
      fail: z.string().optional(),
      log: z.array(z.string()).default([]),
      logEnd: z.array(z.string()).default([]),
    }),
    async handler(ctx) {
      for (let i = 1; i <= ctx.params.steps; i++) {
        ctx.progress(i / ctx.params.steps, `step ${i} of ${ctx.params.steps}`);
        if (i === 1) for (const line of ctx.params.log) ctx.log.info({ step: i }, line);
        if (i === 1 && ctx.params.hold) await held();
      }
      for (const line of ctx.params.logEnd) ctx.log.info(line);
      if (ctx.params.fail !== undefined) throw Object.assign(new Error(ctx.params.fail), { code: 'WORK_FAILED' });
      return { steps: ctx.params.steps };
    },
  });
}

/** quick's schedule: on the real clock, one that fires within a test (every day's 03:00 did) would add runs the tests count. */
export const QUICK_SCHEDULE = '0 3 29 2 *';

export async function startLiveHost(t: Tap, options: { token?: string } = {}): Promise<LiveHost> {
  let latch = gate();
  const host = createHost({
    store: 'memory',
    clock: systemClock,
    logger: silentLogger(),
    config: { server: { token: options.token ?? null } },
    plugins: [workPlugin(() => latch.promise), definePlugin({ name: 'quick', schedule: QUICK_SCHEDULE, handler: () => 'done' })],
  });
  await host.start();
  t.teardown(() => host.stop({ graceMs: 0 }));
  let server: Server = createServer(host, { host: '127.0.0.1', port: 0 });
  const { url } = await server.listen();
  const port = Number(new URL(url).port);
  let open = true;
  t.teardown(() => (open ? server.close() : undefined));
  return {
    host,
    url,
    port,
    async down() {
      open = false;
      await server.close();
    },
    async up() {
      server = createServer(host, { host: '127.0.0.1', port });
      await server.listen();
      open = true;
    },
    release() {
      latch.open();
      latch = gate();
    },
  };
}

/** A port nothing listens on (bound once, then freed). */
export async function closedPort(): Promise<number> {
  const { createServer: createNetServer } = await import('node:net');
  const probe = createNetServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** Awaits a rejection with a ClientError of `code` (and a message matching). */
export async function rejects(t: Test, p: Promise<unknown>, code: string, message?: RegExp): Promise<ClientError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof ClientError)) throw new Error(`expected a ClientError ${code}, got ${String(err)}`);
  t.equal(err.code, code, `code ${code}`);
  if (message) t.match(err.message, message);
  return err;
}
