import { type Client, ClientError, FINAL_STATUSES, type LogLine, logLineSchema, type Run, type TriggerBody } from './client.js';
import { type ClientEvent, type EventStream, openEventStream, type StreamOptions } from './client-stream.js';

/**
 * Triggering a run and following it to its end, for `jobhost run --wait`. The event stream is
 * opened before the trigger, so no event of the run can be missed; the run is also read over HTTP
 * right after, in case it is already over. While the stream is down the run is polled over HTTP,
 * and after the stream comes back it is read once more (the replay may have had a gap). If
 * neither the stream nor HTTP reaches the host for `lostAfterMs`, the wait ends with
 * CONNECTION_LOST: it never hangs on a host that went away.
 */

export interface WaitHooks {
  /** Once the host has acknowledged the trigger. */
  onTriggered?(runId: string): void;
  /** Every run event of this run, in order (`run.queued`, `run.started`, `run.progress`, ...). */
  onEvent?(event: ClientEvent): void;
  /**
   * Each line the run's handler logs, once: as it comes on the stream, and at the end any line the
   * stream missed (it does not replay log lines after a drop), read from `GET /runs/:id/logs`.
   */
  onLog?(line: LogLine): void;
  /** The run as read over HTTP while it is not over (polling while the stream is down). */
  onRun?(run: Run): void;
  /** Connection news for the user: the stream dropped, came back, polling. */
  onNotice?(message: string): void;
}

export interface WaitOptions extends WaitHooks {
  /** Poll interval while the stream is down (default 1 s). */
  pollMs?: number | undefined;
  /** Give up after this long without reaching the host at all (default 30 s). */
  lostAfterMs?: number | undefined;
  /** Give up waiting (WAIT_TIMEOUT) after this long; the run goes on (default: no limit). */
  timeoutMs?: number | undefined;
  /** Stream settings (retry delays, heartbeat); url, token and filters come from the client and the job. */
  stream?: Omit<StreamOptions, 'url' | 'token' | 'job' | 'type' | 'since'> | undefined;
}

/** What a job may be named (contract/plugin-schema.ts's JOB_NAME: the client imports nothing of the host). */
const JOB_NAME = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

const isDown = (err: unknown): boolean => err instanceof ClientError && (err.code === 'UNREACHABLE' || err.code === 'REQUEST_TIMEOUT');

/** Subscribes to the job's run events, triggers the job, and resolves with the run once it is final. */
export async function triggerAndWait(client: Client, job: string, body: TriggerBody, options: WaitOptions = {}): Promise<Run> {
  // A name no job can have: the stream would refuse it as a filter; the trigger's answer (404
  // JOB_NOT_FOUND) is the one to show, as without --wait.
  if (!JOB_NAME.test(job)) await client.trigger(job, body);
  const stream = openEventStream({ ...options.stream, url: client.url, token: client.token, job: [job], type: ['run.*'], logs: options.onLog !== undefined });
  const backlog: ClientEvent[] = [];
  const hold = (e: ClientEvent): number => backlog.push(e);
  stream.on('event', hold);
  try {
    await stream.ready;
    const runId = await client.trigger(job, body);
    options.onTriggered?.(runId);
    stream.off('event', hold);
    return await follow(client, stream, runId, backlog, options);
  } finally {
    stream.close();
  }
}

function follow(client: Client, stream: EventStream, runId: string, backlog: ClientEvent[], options: WaitOptions): Promise<Run> {
  const pollMs = options.pollMs ?? 1000;
  const lostAfterMs = options.lostAfterMs ?? 30_000;
  return new Promise<Run>((resolve, reject) => {
    let settled = false;
    let streamDead = false;
    let finalSeen = false;
    let lastContact = Date.now();
    let pollTimer: NodeJS.Timeout | undefined;
    let polling = false;
    const deadline =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            fail(new ClientError('WAIT_TIMEOUT', `stopped waiting for run ${runId} after ${options.timeoutMs} ms; it goes on`));
          }, options.timeoutMs);

    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(pollTimer);
      clearTimeout(deadline);
      stream.off('event', onEvent);
      stream.off('open', onOpen);
      stream.off('drop', onDrop);
      return true;
    };
    const printed = new Set<string>();
    const log = (line: LogLine): void => {
      const key = `${line.attempt}:${line.i}`;
      if (printed.has(key)) return;
      printed.add(key);
      options.onLog?.(line);
    };
    /** Lines the stream did not bring (it was down for a while), before the end is told. */
    const catchUp = async (): Promise<void> => {
      if (!options.onLog) return;
      try {
        const kept = await client.runLog(runId);
        for (const line of kept.lines) log(line);
      } catch {
        // a host without run logs, or gone again: what was printed stands
      }
    };
    const done = (run: Run): void => {
      if (settled) return;
      void catchUp().then(() => {
        if (settle()) resolve(run);
      });
    };
    function fail(err: unknown): void {
      if (settle()) reject(err);
    }

    /** Reads the run over HTTP: resolves the wait when it is final. */
    const check = async (): Promise<void> => {
      let run: Run;
      try {
        run = await client.run(runId);
      } catch (err) {
        if (settled) return;
        if (!isDown(err)) return fail(err);
        if (Date.now() - lastContact >= lostAfterMs) {
          fail(
            new ClientError(
              'CONNECTION_LOST',
              `lost jobhost at ${client.url} for ${lostAfterMs} ms while waiting for run ${runId}; it may still be running (GET /runs/${runId})`,
            ),
          );
        }
        return;
      }
      lastContact = Date.now();
      if (settled) return;
      if (FINAL_STATUSES.has(run.status)) return done(run);
      options.onRun?.(run);
    };

    /** Polls while the stream cannot be trusted to bring the end: down, dead, or its final event seen but the run not yet read. */
    const needPoll = (): boolean => streamDead || finalSeen || !stream.connected;
    const ensurePolling = (): void => {
      if (polling || settled) return;
      polling = true;
      const tick = (): void => {
        pollTimer = setTimeout(() => {
          void check().then(() => {
            if (!settled && needPoll()) tick();
            else polling = false;
          });
        }, pollMs);
      };
      tick();
    };

    function onEvent(e: ClientEvent): void {
      lastContact = Date.now();
      if (e.data.runId !== runId || settled) return;
      if (e.type === 'run.log') {
        const lines = logLineSchema.array().safeParse((e.data as { lines?: unknown }).lines);
        if (lines.success) for (const line of lines.data) log(line);
        return;
      }
      options.onEvent?.(e);
      if (FINAL_STATUSES.has(e.type.replace(/^run\./, ''))) {
        finalSeen = true;
        // The event carries the outcome; the run read over HTTP carries all of it (attempts, timings).
        void check().then(() => ensurePolling());
      }
    }
    function onOpen(): void {
      lastContact = Date.now();
      options.onNotice?.('event stream back');
      void check();
    }
    function onDrop(info: { code: number; reason: string }): void {
      options.onNotice?.(`lost the event stream (${info.code}${info.reason ? ` ${info.reason}` : ''}); reconnecting, polling meanwhile`);
      ensurePolling();
    }

    stream.on('event', onEvent);
    stream.on('open', onOpen);
    stream.on('drop', onDrop);
    stream.done.catch((err: unknown) => {
      if (settled) return;
      streamDead = true;
      options.onNotice?.(`event stream gone (${err instanceof Error ? err.message : String(err)}); polling`);
      ensurePolling();
    });
    for (const e of backlog) onEvent(e);
    // The run may be over already (a fast handler), or the stream may have dropped meanwhile.
    void check().then(() => {
      if (needPoll()) ensurePolling();
    });
  });
}
