/**
 * WebSocket fan-out (issue 5): 100 clients on GET /events, N run.progress events emitted on the
 * host's bus, against a bare `ws` server broadcasting the same messages (stringify once, send to
 * every client), both in a child process with the same pacing, in one run. Goal: ≥ 80% of bare.
 * Run: `npm run bench -- ws` (or `npx tsx bench/ws.ts [events]`).
 */
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import { WebSocket } from 'ws';
import { fmt, header, row, spawnServer } from './util.js';

const CLIENTS = 100;

async function fanOut(kind: string, events: number): Promise<{ perSecond: number; ms: number }> {
  const server = await spawnServer(kind);
  const sockets: WebSocket[] = [];
  try {
    let delivered = 0;
    const target = CLIENTS * events;
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    for (let i = 0; i < CLIENTS; i++) {
      const socket = new WebSocket(`${server.url.replace('http', 'ws')}/events`);
      sockets.push(socket);
      let first = kind === 'jobhost-ws'; // jobhost greets with a hello first; it is not an event
      socket.on('message', () => {
        if (first) {
          first = false;
          return;
        }
        if (++delivered === target) done();
      });
      await once(socket, 'open');
    }
    const t0 = performance.now();
    await server.ask({ cmd: 'emit', n: events });
    await finished;
    const ms = performance.now() - t0;
    return { perSecond: (target / ms) * 1000, ms };
  } finally {
    for (const socket of sockets) socket.terminate();
    await server.stop();
  }
}

export async function wsBench(events = 10_000): Promise<void> {
  header(`ws: ${fmt(events)} events to ${CLIENTS} clients (${fmt(events * CLIENTS)} messages)`);
  await fanOut('bare-ws', 2_000); // warm-up
  const bare = await fanOut('bare-ws', events);
  const jobhost = await fanOut('jobhost-ws', events);
  row('bare ws broadcast', `${fmt(bare.perSecond)} messages/s delivered (${fmt(bare.ms)} ms)`);
  row('jobhost GET /events', `${fmt(jobhost.perSecond)} messages/s delivered (${fmt(jobhost.ms)} ms)`);
  row('jobhost / bare', fmt(jobhost.perSecond / bare.perSecond, 2));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await wsBench(Number(process.argv[2] ?? 10_000));
}
