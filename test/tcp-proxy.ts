import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import type { Tap } from './helpers.js';

/**
 * A TCP proxy on 127.0.0.1 between one client (a host's Redis connections) and a server: a
 * network partition for tests. `cut()` destroys every connection through it and stops listening
 * (new connections are refused: ECONNREFUSED); `restore()` listens again on the same port.
 * The other side (Redis) sees the connections drop, as it would when the link goes.
 */
export interface TcpProxy {
  port: number;
  /** `redis://127.0.0.1:<port>`: the proxied Redis URL. */
  url: string;
  /** Connections open through the proxy now. */
  readonly open: number;
  readonly cutOff: boolean;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export interface TcpProxyOptions {
  /**
   * Cuts (as `cut()`) the first time what the client sends holds this text (read across chunk
   * boundaries), before any of that chunk reaches the server: a host cut off, or killed, just
   * before a given write. After `restore()` everything goes through.
   */
  cutBefore?: string;
  /**
   * The same, but the chunk holding the text reaches the server first, and its answer is lost with
   * the cut: a write that went through while its reply never came back.
   */
  cutAfter?: string;
}

/** Starts a proxy to `targetPort` on 127.0.0.1; closed when the test ends. */
export async function startTcpProxy(t: Tap, targetPort: number, options: TcpProxyOptions = {}): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let cutOff = false;
  let closed = false;
  /** `cutBefore` or `cutAfter` until it cut once. */
  let armed = options.cutBefore ?? options.cutAfter;
  const after = options.cutBefore === undefined;
  /** From `cutAfter`'s write to its cut: what the server answers is dropped. */
  let holding = false;

  const track = (s: Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };

  const server: Server = createServer((client) => {
    track(client);
    if (cutOff || closed) return void client.destroy();
    const upstream = tcpConnect(targetPort, '127.0.0.1');
    track(upstream);
    const needle = armed;
    if (needle === undefined) client.pipe(upstream);
    else {
      let tail = '';
      client.on('data', (chunk: Buffer) => {
        if (armed === undefined) return void upstream.write(chunk);
        const text = tail + chunk.toString('latin1');
        if (text.includes(needle)) {
          armed = undefined;
          if (!after) return void proxy.cut();
          // Written out before the cut: the server reads and runs it (given a moment), the client hears nothing back.
          holding = true;
          upstream.end(chunk);
          return void setTimeout(() => void proxy.cut().then(() => (holding = false)), 200);
        }
        tail = text.slice(-needle.length);
        upstream.write(chunk);
      });
    }
    upstream.on('data', (chunk: Buffer) => {
      if (!holding) client.write(chunk);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });

  const listen = (port: number): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  const stopListening = (): Promise<void> => new Promise<void>((resolve) => server.close(() => resolve()));

  await listen(0);
  const port = (server.address() as { port: number }).port;

  const proxy: TcpProxy = {
    port,
    url: `redis://127.0.0.1:${port}`,
    get open() {
      return sockets.size;
    },
    get cutOff() {
      return cutOff;
    },
    async cut() {
      if (cutOff || closed) return;
      cutOff = true;
      const stopped = stopListening();
      for (const s of sockets) s.destroy();
      await stopped;
    },
    async restore() {
      if (!cutOff || closed) return;
      cutOff = false;
      await listen(port);
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const s of sockets) s.destroy();
      if (server.listening) await stopListening();
    },
  };
  t.teardown(() => proxy.close());
  return proxy;
}
