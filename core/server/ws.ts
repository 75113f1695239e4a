import type { FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { HostError } from '../contract/errors.js';
import type { AnyHostEvent, HelloMessage } from '../contract/events.js';
import type { Host } from '../engine/host.js';
import type { TrackedSocket } from './access.js';
import { errors, eventsQuery } from './http-schemas.js';
import type { StreamObserver } from './metrics.js';
import type { JobhostApp } from './routes.js';

/**
 * `GET /events` (SPEC §5, §6): every bus event as `{ seq, type, at, data }`, filtered by `job=` and
 * `type=`, with `since=` replay. The first message is a `hello` that says where the stream starts
 * and whether the replay is complete. A client that stops reading is cut off once its send
 * buffer passes a bound, so one stuck client never grows the host's memory without limit.
 */

export interface EventStreamOptions {
  /** Bytes a client may have waiting to be sent before it is cut off (default 1 MiB). */
  maxBuffered?: number | undefined;
  /** After the close frame, how long a cut-off client has before its socket is destroyed (default 2 s). */
  cutoffGraceMs?: number | undefined;
  observer?: StreamObserver | undefined;
  /** Each socket as it opens, with its upgrade request (access control tracks whose token it uses). */
  opened?: ((socket: TrackedSocket, request: FastifyRequest) => void) | undefined;
}

export interface EventStream {
  /** Open connections. */
  readonly clients: number;
  /**
   * Closes every connection (1001 going away) and resolves once they are closed; a client that
   * does not answer the close within `graceMs` (default 1 s) has its socket destroyed.
   */
  closeAll(reason: string, graceMs?: number): Promise<void>;
}

const OPEN = 1;
export const CLOSE_POLICY = 1008;
export const CLOSE_GOING_AWAY = 1001;

/** Stringifies each event once, however many clients it goes to (all sends of one emit are synchronous). */
function encoder(): (event: AnyHostEvent) => Buffer | undefined {
  let last: AnyHostEvent | undefined;
  let lastBuffer: Buffer | undefined;
  return (event) => {
    if (event !== last) {
      last = event;
      try {
        lastBuffer = Buffer.from(JSON.stringify(event));
      } catch {
        lastBuffer = undefined; // a payload JSON cannot carry; nothing sensible to send
      }
    }
    return lastBuffer;
  };
}

export function registerEventStream(app: JobhostApp, host: Host, options: EventStreamOptions = {}): EventStream {
  const maxBuffered = options.maxBuffered ?? 1024 * 1024;
  const graceMs = options.cutoffGraceMs ?? 2000;
  const observer = options.observer;
  const sockets = new Set<WebSocket>();
  const encode = encoder();

  const connect = (
    socket: WebSocket,
    query: {
      job?: string[] | undefined;
      run?: string[] | undefined;
      type?: string[] | undefined;
      logs?: boolean;
      since?: number | undefined;
      boot?: string | undefined;
    },
  ): void => {
    sockets.add(socket);
    observer?.opened();
    let live = false;
    let cut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const replay: Buffer[] = [];
    // Bytes the replay may add above the bound: a full replay is sent in one go, and a healthy client
    // needs time to take it in. The slack ends once the buffer is back under the bound.
    let allowance = maxBuffered;

    const cutOff = (): void => {
      cut = true;
      subscription.close();
      observer?.cut();
      host.logger.warn({ buffered: socket.bufferedAmount, bound: maxBuffered }, 'WebSocket client is not reading its events: cut off');
      socket.close(CLOSE_POLICY, `send buffer passed ${maxBuffered} bytes: the client is not reading`);
      // A client that does not read will not read the close frame either: free its buffer soon.
      killTimer = setTimeout(() => socket.terminate(), graceMs);
    };

    const deliver = (event: AnyHostEvent): void => {
      const data = encode(event);
      if (!data || cut) return;
      if (!live) {
        replay.push(data);
        return;
      }
      if (socket.readyState !== OPEN) return;
      const buffered = socket.bufferedAmount;
      if (buffered > allowance) return cutOff();
      if (buffered <= maxBuffered) allowance = maxBuffered;
      socket.send(data, { binary: false });
    };

    // Replay and subscription happen in one synchronous step (Bus.subscribe): no gap, no duplicate.
    // A `since` of another boot (the host restarted) counts in another numbering: everything
    // buffered is replayed, and the client hears of the gap (reload).
    const otherBoot = query.boot !== undefined && query.since !== undefined && query.boot !== host.bus.boot;
    const since = otherBoot ? 0 : query.since;
    const subscription = host.bus.subscribe({ job: query.job, run: query.run, type: query.type, logs: query.logs }, deliver, since);
    const hello: HelloMessage = { type: 'hello', seq: host.bus.seq, since: query.since ?? null, gap: subscription.gap || otherBoot, boot: host.bus.boot };
    socket.send(JSON.stringify(hello));
    for (const data of replay) {
      allowance += data.length;
      socket.send(data, { binary: false });
    }
    replay.length = 0;
    live = true;

    socket.on('close', () => {
      if (!cut) subscription.close();
      clearTimeout(killTimer);
      sockets.delete(socket);
      observer?.closed();
    });
    // Clients have nothing to say; anything they send is ignored (maxPayload keeps it small).
  };

  app.route({
    method: 'GET',
    url: '/events',
    schema: {
      summary: 'Live events (WebSocket)',
      description:
        'Upgrade to a WebSocket. First message: `{ type: "hello", seq, since, gap, boot }`; then every matching event as ' +
        '`{ seq, type, at, data }`. A plain GET answers 426.',
      tags: ['events'],
      querystring: eventsQuery,
      response: errors(400, 401, 426),
    },
    handler: async () => {
      throw new HostError('UPGRADE_REQUIRED', 'GET /events is a WebSocket: connect with a WebSocket client');
    },
    wsHandler: (socket, request) => {
      options.opened?.(socket, request);
      connect(socket, request.query);
    },
  });

  return {
    get clients() {
      return sockets.size;
    },
    async closeAll(reason, closeGraceMs = 1000) {
      const closed = [...sockets].map(
        (socket) =>
          new Promise<void>((resolve) => {
            socket.once('close', () => resolve());
            socket.close(CLOSE_GOING_AWAY, reason);
          }),
      );
      const timer = setTimeout(() => {
        for (const socket of sockets) socket.terminate();
      }, closeGraceMs);
      await Promise.all(closed);
      clearTimeout(timer);
    },
  };
}
