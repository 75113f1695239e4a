// @ts-check
// One WebSocket to /events for the whole page. It reconnects with backoff and `since=<last seq>`,
// so a dropped connection misses nothing the host still buffers; when it did miss something
// (`gap`, or the host restarted) the page reloads its state over HTTP.
import { parseMessage } from './api.js';

/** @import { AnyHostEvent, HelloMessage } from '../../contract/events.js' */

/**
 * @param {{
 *   url: (since: number | null) => string,
 *   onEvent: (event: AnyHostEvent, covered: boolean) => void,
 *   onHello: (hello: HelloMessage, reload: boolean) => void,
 *   onState: (state: 'connecting' | 'live' | 'reconnecting') => void,
 *   onRefused?: () => void,
 * }} options  `covered` is true for replayed events that a reload already accounts for.
 *   `onRefused`: the connection was refused or closed for its token (a WebSocket says no more
 *   than that: the page asks over HTTP, whose 401 brings up the token prompt).
 */
export function createLive({ url, onEvent, onHello, onState, onRefused }) {
  /** @type {WebSocket | null} */
  let socket = null;
  /** @type {number | null} */
  let lastSeq = null;
  let coveredUpTo = -1;
  let failures = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  let stopped = true;
  /** @type {string | undefined} */
  let boot;

  const live = {
    /**
     * The last `hello`, for the curious (and the browser tests).
     * @type {HelloMessage | null}
     */
    hello: null,
    get lastSeq() {
      return lastSeq;
    },
    /**
     * Connects; `since` asks for buffered history first (shown in the feed, not re-applied).
     * @param {number | null} [since]
     */
    start(since = null) {
      stopped = false;
      connect(since);
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      socket?.close(1000, 'bye');
    },
    /** Reconnects now instead of after the backoff (e.g. once a token has been entered). */
    retryNow() {
      if (stopped || socket) return;
      clearTimeout(timer);
      connect(lastSeq);
    },
    /** Drops the connection as a network failure would: the normal reconnect follows. */
    drop() {
      socket?.close(4000, 'dropped by the page');
    },
  };

  /** @param {number | null} since */
  function connect(since) {
    onState(failures === 0 ? 'connecting' : 'reconnecting');
    // `since` counts in the boot of the last hello: a host restarted meanwhile replays all it has, with `gap`.
    const base = url(since);
    const ws = new WebSocket(since !== null && boot ? `${base}${base.includes('?') ? '&' : '?'}boot=${boot}` : base);
    socket = ws;
    let first = lastSeq === null;
    let greeted = false;
    ws.onmessage = (message) => {
      const msg = parseMessage(message);
      if (!msg) return;
      if (msg.type === 'hello') {
        greeted = true;
        failures = 0;
        live.hello = msg;
        boot = msg.boot;
        const reload = first || msg.gap;
        if (reload) {
          lastSeq = msg.seq;
          coveredUpTo = msg.seq;
        }
        first = false;
        onState('live');
        onHello(msg, reload);
        return;
      }
      if (typeof msg.seq !== 'number') return;
      if (lastSeq === null || msg.seq > lastSeq) lastSeq = msg.seq;
      onEvent(msg, msg.seq <= coveredUpTo);
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = null;
      if (stopped) return;
      // 1008: the host closed it for its token (removed or changed in the config). An upgrade
      // refused (a 401 for a token rotated while the host was down) never says hello.
      if (event.code === 1008 || !greeted) onRefused?.();
      failures++;
      onState('reconnecting');
      // 0.5 s, 1 s, 2 s ... capped at 10 s, with some spread so many tabs do not return at once.
      const delay = Math.min(10_000, 500 * 2 ** Math.min(failures - 1, 5)) * (0.8 + Math.random() * 0.4);
      timer = setTimeout(() => connect(lastSeq), delay);
    };
  }

  return live;
}
