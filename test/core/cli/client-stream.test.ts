import net from 'node:net';
import t, { type Test } from 'tap';
import { WebSocketServer } from 'ws';
import { type ClientEvent, type EventStream, type Hello, openEventStream, type StreamOptions } from '../../../core/cli/client-stream.js';
import { until } from '../../helpers.js';
import { closedPort, rejects, startLiveHost } from '../../live-host.js';

/** A stream closed when the test ends, with everything it reports recorded. */
function record(t: Test, options: StreamOptions): { stream: EventStream; events: ClientEvent[]; hellos: Hello[]; drops: number[] } {
  const stream = openEventStream(options);
  t.teardown(() => stream.close());
  const events: ClientEvent[] = [];
  const hellos: Hello[] = [];
  const drops: number[] = [];
  stream.on('event', (e) => events.push(e));
  stream.on('open', (h) => hellos.push(h));
  stream.on('drop', (d) => drops.push(d.code));
  return { stream, events, hellos, drops };
}

/** A bare WebSocket server standing in for a host. */
async function fakeHost(t: Test, options: { autoPong?: boolean } = {}): Promise<{ wss: WebSocketServer; url: string }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', autoPong: options.autoPong ?? true });
  await new Promise((resolve) => wss.once('listening', resolve));
  t.teardown(() => {
    for (const c of wss.clients) c.terminate();
    return new Promise((resolve) => wss.close(resolve));
  });
  return { wss, url: `http://127.0.0.1:${(wss.address() as { port: number }).port}` };
}

t.test('filters by job and type, says hello, and tracks the seq to resume from', async (t) => {
  const live = await startLiveHost(t);
  const { stream, events, hellos } = record(t, { url: live.url, job: ['work'], type: ['run.*'] });
  const hello = await stream.ready;
  t.match(hello, { type: 'hello', since: null, gap: false });
  t.equal(stream.connected, true);
  t.equal(stream.cursor, hello.seq, 'before any event, the cursor is the hello seq');

  await live.host.trigger('quick');
  const { runId } = await live.host.trigger('work', { params: { steps: 1 } });
  await until(() => events.some((e) => e.type === 'run.succeeded'), 5000, 'run.succeeded');
  t.ok(
    events.every((e) => e.data.job === 'work' && e.type.startsWith('run.')),
    'only run events of work',
  );
  t.same(
    events.map((e) => e.type),
    ['run.queued', 'run.started', 'run.progress', 'run.succeeded'],
  );
  t.equal(events[0]!.data.runId, runId);
  t.equal(stream.cursor, events.at(-1)!.seq);
  t.equal(hellos.length, 1);

  // since= replays what came after
  const replay = record(t, { url: live.url, job: ['work'], since: events[1]!.seq });
  await until(() => replay.events.length === 2, 5000, 'the replay');
  t.same(
    replay.events.map((e) => e.seq),
    events.slice(2).map((e) => e.seq),
  );
  t.equal(replay.hellos[0]!.since, events[1]!.seq);

  stream.close();
  stream.close();
  await stream.done;
  t.equal(stream.connected, false);
});

t.test('after a drop it reconnects with since= and misses nothing', async (t) => {
  const live = await startLiveHost(t);
  const { stream, events, hellos, drops } = record(t, { url: live.url, job: ['work'], retryDelayMs: 20, maxRetryDelayMs: 100 });
  await stream.ready;
  const first = await live.host.trigger('work', { params: { steps: 1 } });
  await until(() => events.some((e) => e.type === 'run.succeeded'), 5000, 'the first run');

  await live.down();
  await until(() => drops.length === 1, 5000, 'the drop');
  t.same(drops, [1001], 'the server said going away');
  t.equal(stream.connected, false);
  // Events while the client is away are replayed on reconnection.
  const second = await live.host.trigger('work', { params: { steps: 1 } });
  await live.host.wait(second.runId);
  await live.up();
  await until(() => events.filter((e) => e.type === 'run.succeeded').length === 2, 5000, 'the replayed run');
  t.equal(hellos.length, 2);
  t.equal(hellos[1]!.gap, false);
  const seqs = events.map((e) => e.seq);
  t.same(
    seqs,
    [...seqs].sort((a, b) => a - b),
    'in order',
  );
  t.equal(new Set(seqs).size, seqs.length, 'no duplicates');
  t.same(new Set(events.map((e) => e.data.runId)), new Set([first.runId, second.runId]));
});

t.test('gives up after giveUpAfterMs without a host', async (t) => {
  const live = await startLiveHost(t);
  const { stream, drops } = record(t, { url: live.url, retryDelayMs: 10, maxRetryDelayMs: 40, giveUpAfterMs: 300 });
  await stream.ready;
  const started = Date.now();
  await live.down();
  await rejects(t, stream.done, 'CONNECTION_LOST', /lost the event stream .* for 300 ms: no jobhost at/);
  t.ok(Date.now() - started >= 250, 'tried for about giveUpAfterMs');
  t.same(drops, [1001]);
});

t.test('the first connection fails fast: no host, bad token, bad query', async (t) => {
  const port = await closedPort();
  const none = openEventStream({ url: `http://127.0.0.1:${port}` });
  await rejects(t, none.ready, 'UNREACHABLE', /no jobhost at/);
  await t.rejects(none.done);

  const live = await startLiveHost(t, { token: 'stream-token-1' });
  const denied = openEventStream({ url: live.url });
  const err = await rejects(t, denied.ready, 'UNAUTHORIZED', /needs a token/);
  t.equal(err.status, 401);
  const ok = record(t, { url: live.url, token: 'stream-token-1' });
  t.match(await ok.stream.ready, { type: 'hello' });

  const bad = openEventStream({ url: live.url, token: 'stream-token-1', since: -1 });
  await rejects(t, bad.ready, 'INVALID_BODY', /since/);

  const closedEarly = openEventStream({ url: live.url, token: 'stream-token-1' });
  closedEarly.close();
  await rejects(t, closedEarly.ready, 'CONNECTION_LOST', /closed before it connected/);
  await closedEarly.done;
});

t.test('a host that takes the connection and never answers: REQUEST_TIMEOUT, as a request gets', async (t) => {
  // Accepts and holds every connection, says nothing.
  const held: net.Socket[] = [];
  const server = net.createServer((socket) => void held.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of held) s.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const stream = openEventStream({ url, handshakeTimeoutMs: 200 });
  await rejects(t, stream.ready, 'REQUEST_TIMEOUT', /no answer from jobhost at .* within 200 ms \(the event stream\)/);
  await t.rejects(stream.done);
});

t.test('a since ahead of the host (it restarted) comes back as a gap, and the cursor follows the host', async (t) => {
  const live = await startLiveHost(t);
  const { stream } = record(t, { url: live.url, since: 1_000_000 });
  const hello = await stream.ready;
  t.equal(hello.gap, true);
  t.equal(stream.cursor, hello.seq);
});

t.test('a host that stops answering pings is dropped and retried', async (t) => {
  const { wss, url } = await fakeHost(t, { autoPong: false });
  let n = 0;
  const asked: string[] = [];
  wss.on('connection', (socket, req) => {
    asked.push(req.url ?? '');
    socket.send(JSON.stringify({ type: 'hello', seq: 10 + n, since: null, gap: false }));
    socket.send(JSON.stringify({ seq: 11 + n, type: 'custom.thing', at: new Date().toISOString(), data: { job: null, x: 1 } }));
    socket.send('not json');
    socket.send(JSON.stringify({ seq: 'bad' }));
    n += 10;
  });
  const { stream, events, hellos, drops } = record(t, { url, heartbeatMs: 50, retryDelayMs: 10 });
  await stream.ready;
  await until(() => hellos.length >= 2, 5000, 'a reconnection after the missed pong');
  t.equal(drops[0], 1006, 'terminated, not closed');
  t.same(asked.slice(0, 2), ['/events', '/events?since=11'], 'resumed after the last event seen');
  t.same(
    events.slice(0, 2).map((e) => e.type),
    ['custom.thing', 'custom.thing'],
    'garbage between events is skipped',
  );
});

t.test('a first message that is not a hello, and a listener that throws, end the stream', async (t) => {
  const { wss, url } = await fakeHost(t);
  let hello = false;
  wss.on('connection', (socket) => {
    socket.send(hello ? JSON.stringify({ type: 'hello', seq: 1, since: null, gap: false }) : '{"not":"hello"}');
    if (hello) socket.send(JSON.stringify({ seq: 2, type: 'x', at: 'now', data: {} }));
  });
  const bad = openEventStream({ url });
  await rejects(t, bad.ready, 'BAD_RESPONSE', /expected a hello message first/);

  hello = true;
  const throwing = openEventStream({ url });
  throwing.on('event', () => {
    throw new Error('listener bug');
  });
  await throwing.ready;
  await t.rejects(throwing.done, { message: 'listener bug' });
  t.equal(throwing.connected, false);
});
