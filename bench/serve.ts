/**
 * The server side of the HTTP and WebSocket benchmarks, run in a child process so the load
 * generator (autocannon, the WebSocket clients) never shares an event loop with what it measures.
 * `tsx bench/serve.ts <kind>` prints nothing; it talks to its parent over IPC:
 *   → { url }                    once listening
 *   ← { cmd: 'emit', n }         broadcast n events (WebSocket kinds), then → { emitted: n }
 *   ← { cmd: 'stop' }            close everything and exit
 */
import Fastify from 'fastify';
import { WebSocketServer } from 'ws';
import { createHost, createServer, type Host, silentLogger } from '../core/index.js';
import { NOOP_FILE, registerFile } from './runs.js';
import { benchDir } from './util.js';

export type ServeKind =
  | 'jobhost-disk'
  | 'jobhost-memory'
  | 'jobhost-disk-worker'
  | 'burn-worker'
  | 'burn-inline'
  | 'bare-http'
  | 'bare-trigger'
  | 'jobhost-ws'
  | 'bare-ws';

type Message = { cmd: 'emit'; n: number } | { cmd: 'burn'; n: number } | { cmd: 'stop' };

/** A handler that computes without end, a second at a time, until its signal is aborted (a long report). */
const burnFile = (isolation: 'worker' | 'inline'): string => `export default {
  name: 'burn',
  concurrency: 8,
  timeout: 0,
  isolation: '${isolation}',
  handler: async (ctx) => {
    while (!ctx.signal.aborted) {
      const end = Date.now() + 1000;
      while (Date.now() < end) {}
      await new Promise((r) => setImmediate(r));
    }
  },
};
`;

const BATCH = 100;

/** The event both WebSocket servers broadcast: a run.progress, the most frequent event. */
function progress(i: number): { job: string; runId: string; fraction: number; text: string } {
  return { job: 'report', runId: '0mwt91n1z00019ws', fraction: (i % 100) / 100, text: `step ${i}` };
}

/** Emits n events in batches, yielding between batches so sockets can flush (same pacing for both). */
async function paced(n: number, emit: (i: number) => void): Promise<void> {
  for (let i = 0; i < n; ) {
    const end = Math.min(n, i + BATCH);
    for (; i < end; i++) emit(i);
    await new Promise((r) => setImmediate(r));
  }
}

/** A host with the `noop` job: registered in code (inline) or from a plugin file (a worker thread); and `burn`. */
async function startHost(
  store: 'disk' | 'memory',
  noop: 'inline' | 'worker' = 'inline',
  burn?: 'inline' | 'worker',
): Promise<{ host: Host; remove: () => void }> {
  const { dir, remove } = benchDir();
  const host: Host = createHost({ store, config: { store: { dir, keepRuns: 10_000 }, concurrency: 64, workers: { grace: '1s' } }, logger: silentLogger() });
  if (noop === 'worker') await registerFile(host, dir, 'noop', NOOP_FILE);
  else host.register({ name: 'noop', concurrency: 64, handler: async () => undefined });
  if (burn) await registerFile(host, dir, 'burn', burnFile(burn));
  await host.start();
  return { host, remove };
}

async function jobhost(
  kind: ServeKind,
): Promise<{ url: string; emit?: (n: number) => Promise<void>; burn?: (n: number) => Promise<void>; stop: () => Promise<void> }> {
  const worker = kind === 'jobhost-disk-worker' || kind === 'burn-worker';
  const burn = kind === 'burn-worker' ? 'worker' : kind === 'burn-inline' ? 'inline' : undefined;
  const { host, remove } = await startHost(kind === 'jobhost-memory' ? 'memory' : 'disk', worker ? 'worker' : 'inline', burn);
  // A bound far above what paced emission reaches: the benchmark measures fan-out, not cutoffs.
  const server = createServer(host, { host: '127.0.0.1', port: 0, ws: { maxBuffered: 64 * 1024 * 1024 } });
  const { url } = await server.listen();
  return {
    url,
    emit: (n) => paced(n, (i) => host.bus.emit('run.progress', progress(i))),
    // n burning runs, resolved once all have started.
    burn: async (n) => {
      let started = 0;
      let all!: () => void;
      const going = new Promise<void>((resolve) => (all = resolve));
      const off = host.on('run.started', (e) => {
        if (e.data.job === 'burn' && ++started === n) all();
      });
      for (let i = 0; i < n; i++) await host.trigger('burn');
      await going;
      off();
    },
    stop: async () => {
      await server.close();
      await host.stop();
      remove();
    },
  };
}

async function bareHttp(): Promise<{ url: string; emit?: (n: number) => Promise<void>; stop: () => Promise<void> }> {
  const app = Fastify({ logger: false });
  let n = 0;
  // Same shape as POST /jobs/:name/run: a JSON body in, 202 with a small JSON object out.
  app.post('/jobs/:name/run', async (_request, reply) => reply.code(202).send({ runId: `run-${++n}` }));
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { url, stop: () => app.close() };
}

async function bareWs(): Promise<{ url: string; emit: (n: number) => Promise<void>; stop: () => Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/events' });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const address = wss.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  let seq = 0;
  return {
    url: `http://127.0.0.1:${port}`,
    // The textbook ws broadcast: stringify once, send to every open client.
    emit: (n) =>
      paced(n, (i) => {
        const json = JSON.stringify({ seq: ++seq, type: 'run.progress', at: new Date().toISOString(), data: progress(i) });
        for (const client of wss.clients) if (client.readyState === 1) client.send(json);
      }),
    stop: () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve());
      }),
  };
}

/** The same engine (disk store) behind a bare route: what the server layer itself costs. */
async function bareTrigger(): Promise<{ url: string; emit?: (n: number) => Promise<void>; stop: () => Promise<void> }> {
  const { host, remove } = await startHost('disk');
  const app = Fastify({ logger: false });
  app.post('/jobs/:name/run', async (request, reply) => {
    const { name } = request.params as { name: string };
    const { params } = (request.body ?? {}) as { params?: unknown };
    return reply.code(202).send(await host.trigger(name, { params, source: 'http' }));
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    url,
    stop: async () => {
      await app.close();
      await host.stop();
      remove();
    },
  };
}

const kind = process.argv[2] as ServeKind;
const server =
  kind === 'bare-http' ? await bareHttp() : kind === 'bare-trigger' ? await bareTrigger() : kind === 'bare-ws' ? await bareWs() : await jobhost(kind);
process.on('message', (message: Message) => {
  if (message.cmd === 'emit') {
    void server.emit?.(message.n).then(() => process.send?.({ emitted: message.n }));
  } else if (message.cmd === 'burn') {
    void (server as { burn?: (n: number) => Promise<void> }).burn?.(message.n).then(() => process.send?.({ burning: message.n }));
  } else if (message.cmd === 'stop') {
    void server.stop().then(() => process.exit(0));
  }
});
process.send?.({ url: server.url });
