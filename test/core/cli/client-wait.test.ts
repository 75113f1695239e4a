import t from 'tap';
import { createClient, type Run } from '../../../core/cli/client.js';
import type { ClientEvent } from '../../../core/cli/client-stream.js';
import { triggerAndWait, type WaitOptions } from '../../../core/cli/client-wait.js';
import { until } from '../../helpers.js';
import { rejects, startLiveHost } from '../../live-host.js';

/** Hooks that record what the wait reports. */
function recorder(): { hooks: WaitOptions; events: ClientEvent[]; runs: Run[]; notices: string[]; ids: string[] } {
  const events: ClientEvent[] = [];
  const runs: Run[] = [];
  const notices: string[] = [];
  const ids: string[] = [];
  return {
    events,
    runs,
    notices,
    ids,
    hooks: {
      onTriggered: (id) => ids.push(id),
      onEvent: (e) => events.push(e),
      onRun: (r) => runs.push(r),
      onNotice: (m) => notices.push(m),
    },
  };
}

const fast = { stream: { retryDelayMs: 20, maxRetryDelayMs: 50 }, pollMs: 30 };

t.test('follows a run to success, with every event of that run only', async (t) => {
  const live = await startLiveHost(t);
  const client = createClient({ url: live.url });
  const other = await live.host.trigger('work', { params: { hold: true } });
  const r = recorder();
  const run = await triggerAndWait(client, 'work', { params: { steps: 3 } }, r.hooks);
  t.match(run, { status: 'succeeded', result: { steps: 3 }, job: 'work' });
  t.same(r.ids, [run.id]);
  t.ok(
    r.events.every((e) => e.data.runId === run.id),
    'only its own events',
  );
  t.same(r.events[0]?.type, 'run.queued', 'from the very first event: subscribed before the trigger');
  t.ok(r.events.some((e) => e.type === 'run.progress'));
  t.equal(r.events.at(-1)?.type, 'run.succeeded');
  t.notOk(r.events.some((e) => e.data.runId === other.runId));
  live.release();
});

t.test('a failed run resolves too: the caller decides what failure means', async (t) => {
  const live = await startLiveHost(t);
  const run = await triggerAndWait(createClient({ url: live.url }), 'work', { params: { fail: 'boom' } });
  t.match(run, { status: 'failed', error: { code: 'WORK_FAILED', message: 'boom' } });
});

t.test('a refused trigger rejects with the host error', async (t) => {
  const live = await startLiveHost(t);
  const client = createClient({ url: live.url });
  await rejects(t, triggerAndWait(client, 'nope', {}), 'JOB_NOT_FOUND');
  // A name no job can have: the trigger's 404, not the event stream's refusal of it as a filter.
  await rejects(t, triggerAndWait(client, 'No_Such', {}), 'JOB_NOT_FOUND');
  await rejects(t, triggerAndWait(client, 'work', { params: { steps: 'x' } }), 'INVALID_PARAMS');
});

t.test('the stream drops mid-wait: it reconnects with since= and the run still ends', async (t) => {
  const live = await startLiveHost(t);
  const r = recorder();
  const waiting = triggerAndWait(createClient({ url: live.url }), 'work', { params: { hold: true } }, { ...r.hooks, ...fast });
  await until(() => r.events.some((e) => e.type === 'run.progress'), 5000, 'progress');
  await live.down();
  await until(() => r.notices.some((n) => n.startsWith('lost the event stream (1001')), 5000, 'the drop notice');
  live.release();
  await live.up();
  const run = await waiting;
  t.equal(run.status, 'succeeded');
  t.ok(r.notices.includes('event stream back'));
});

t.test('the lines the run logs come once each: from the stream, and those it missed (a drop) from GET /runs/:id/logs at the end', async (t) => {
  const live = await startLiveHost(t);
  const lines: string[] = [];
  const r = recorder();
  const hooks = { ...r.hooks, ...fast, onLog: (l: { msg: string }) => lines.push(l.msg) };
  const first = await triggerAndWait(createClient({ url: live.url }), 'work', { params: { log: ['a', 'b'] } }, hooks);
  t.equal(first.status, 'succeeded');
  t.same(lines, ['a', 'b']);
  t.notOk(
    r.events.some((e) => e.type === 'run.log'),
    'log events go to onLog, not onEvent',
  );

  // Lines logged while the stream is down are not replayed: the end reads them back.
  lines.length = 0;
  const held = triggerAndWait(createClient({ url: live.url }), 'work', { params: { hold: true, log: ['one'], logEnd: ['after the drop'] } }, hooks);
  await until(() => lines.length === 1, 5000, 'the first line');
  await live.down();
  await until(() => r.notices.some((n) => n.startsWith('lost the event stream (1001')), 5000, 'the drop');
  live.release(); // the run logs its last line and ends while no stream is there
  const id = r.ids.at(-1)!;
  await live.host.wait(id);
  await live.up();
  const run = await held;
  t.equal(run.status, 'succeeded');
  t.same(lines, ['one', 'after the drop'], 'each once; the one logged during the drop was read back');
});

t.test('when the stream gives up, polling over HTTP finds the end', async (t) => {
  const live = await startLiveHost(t);
  const r = recorder();
  const waiting = triggerAndWait(
    createClient({ url: live.url }),
    'work',
    { params: { hold: true } },
    { ...r.hooks, ...fast, stream: { retryDelayMs: 10, giveUpAfterMs: 50 } },
  );
  await until(() => r.events.some((e) => e.type === 'run.progress'), 5000, 'progress');
  await live.down();
  await until(() => r.notices.some((n) => n.startsWith('event stream gone')), 5000, 'the stream to give up');
  await live.up();
  await until(() => r.runs.length > 0, 5000, 'a poll of the running run');
  t.match(r.runs[0], { status: 'running', progress: { fraction: 0.5, text: 'step 1 of 2' } });
  live.release();
  t.match(await waiting, { status: 'succeeded', result: { steps: 2 } });
});

t.test('a host gone for lostAfterMs ends the wait with CONNECTION_LOST', async (t) => {
  const live = await startLiveHost(t);
  const r = recorder();
  const waiting = triggerAndWait(createClient({ url: live.url }), 'work', { params: { hold: true } }, { ...r.hooks, ...fast, lostAfterMs: 300 });
  await until(() => r.events.some((e) => e.type === 'run.progress'), 5000, 'progress');
  await live.down();
  await rejects(t, waiting, 'CONNECTION_LOST', new RegExp(`lost jobhost at ${live.url} for 300 ms while waiting for run ${r.ids[0]}`));
  live.release();
});

t.test('timeoutMs ends the wait with WAIT_TIMEOUT; the run goes on', async (t) => {
  const live = await startLiveHost(t);
  const r = recorder();
  await rejects(
    t,
    triggerAndWait(createClient({ url: live.url }), 'work', { params: { hold: true } }, { ...r.hooks, timeoutMs: 150 }),
    'WAIT_TIMEOUT',
    /after 150 ms; it goes on/,
  );
  t.match(await live.host.run(r.ids[0]!), { status: 'running' });
  live.release();
});
