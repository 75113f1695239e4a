import t from 'tap';
import type { AnyHostEvent, HostEvent } from '../../../core/contract/events.js';
import { logArgs } from '../../../core/contract/log-capture.js';
import type { JobContext } from '../../../core/contract/plugin.js';
import { LOG_MAX_FIELDS, LOG_MAX_MSG } from '../../../core/contract/run-log.js';
import { captureLogger, gate, startHost } from '../../helpers.js';

/**
 * ctx.log lines: captured at any level, still written to the host's logger, numbered per attempt,
 * sent in batches as `run.log` events before the run's state change, and only to those who ask.
 */

t.test("a run's lines arrive as run.log events before its outcome; they are not numbered and only for those who ask", async (t) => {
  const { logger, lines: hostLog } = captureLogger();
  const { host, events } = await startHost(t, { logger });
  host.register({
    name: 'talker',
    handler(ctx: JobContext) {
      ctx.log.info('one');
      ctx.log.trace('two');
      return 'ok';
    },
  });
  const logs: Array<HostEvent<'run.log'>> = [];
  const order: string[] = [];
  host.on('run.log', (e) => {
    logs.push(e);
    order.push(e.type);
  });
  host.on('run.succeeded', (e) => order.push(e.type));
  const asked: AnyHostEvent[] = [];
  const notAsked: AnyHostEvent[] = [];
  const a = host.bus.subscribe({ logs: true }, (e) => asked.push(e));
  const b = host.bus.subscribe({ type: ['run.*'] }, (e) => notAsked.push(e));
  const { runId } = await host.trigger('talker');
  await host.wait(runId);
  a.close();
  b.close();

  t.same(order, ['run.log', 'run.succeeded'], 'the lines come first, in one batch');
  t.same(
    logs[0]!.data.lines.map((l) => [l.attempt, l.i, l.level, l.msg]),
    [
      [1, 1, 'info', 'one'],
      [1, 2, 'trace', 'two'],
    ],
    'every level is kept, whatever the host logs',
  );
  t.match(logs[0]!.data, { job: 'talker', runId, dropped: 0 });
  const before = events.filter((e) => e.seq <= logs[0]!.seq).at(-1)!;
  t.equal(logs[0]!.seq, before.seq, 'its seq is the last numbered event’s');
  t.notOk(
    events.some((e) => e.type === 'run.log'),
    "'*' listeners do not get them",
  );
  t.ok(
    asked.some((e) => e.type === 'run.log'),
    'a subscription with logs: true does',
  );
  t.notOk(
    notAsked.some((e) => e.type === 'run.log'),
    'run.* alone does not',
  );
  t.same(
    host.bus.since(0).events.filter((e) => e.type === 'run.log'),
    [],
    'not kept for replay',
  );

  const line = hostLog.find((l) => l['msg'] === 'one');
  t.match(line, { level: 30, job: 'talker', runId, attempt: 1 }, "the host's log still gets the line, with the run's bindings");
  t.notOk(
    hostLog.some((l) => l['msg'] === 'two'),
    'below its level it does not',
  );
});

t.test('subscriptions filter run.log by type and run', async (t) => {
  const { host } = await startHost(t);
  host.register({ name: 'talker', handler: (ctx: JobContext) => ctx.log.info(`I am ${ctx.runId}`) });
  const mine: AnyHostEvent[] = [];
  const typed: AnyHostEvent[] = [];
  host.pause(); // both runs wait until the subscriptions are in place
  const first = (await host.trigger('talker')).runId;
  const second = (await host.trigger('talker')).runId;
  const a = host.bus.subscribe({ type: ['run.log'], run: [second] }, (e) => mine.push(e));
  const b = host.bus.subscribe({ type: ['run.log'] }, (e) => typed.push(e));
  host.resume();
  await host.wait(first);
  await host.wait(second);
  a.close();
  b.close();
  t.same(
    mine.map((e) => [e.type, e.data.job, 'runId' in e.data && e.data.runId]),
    [['run.log', 'talker', second]],
  );
  t.same(
    typed.map((e) => 'runId' in e.data && e.data.runId),
    [first, second],
    'type=run.log asks for them',
  );
});

t.test('lines a handler writes after its attempt ended (it ignored its timeout) are not kept', async (t) => {
  const { host, clock } = await startHost(t);
  const late = gate();
  const wrote = gate();
  host.register({
    name: 'stubborn',
    timeout: '1s',
    async handler(ctx: JobContext) {
      ctx.log.info('before');
      await late.promise;
      ctx.log.info('after the timeout');
      wrote.open();
    },
  });
  const { runId } = await host.trigger('stubborn');
  await clock.advance(1000);
  t.equal((await host.wait(runId)).error?.code, 'TIMEOUT');
  late.open();
  await wrote.promise;
  t.same(
    (await host.runLog(runId)).log.lines.map((l) => l.msg),
    ['before'],
  );
});

t.test('a call becomes a message and fields the way pino reads it', async (t) => {
  t.same(logArgs(['a %s and %d', 'b', 3]), { msg: 'a b and 3', fields: undefined });
  t.same(logArgs([{ rows: 2 }, 'read %s', 'x']), { msg: 'read x', fields: { rows: 2 } });
  t.same(logArgs([{ msg: 'from the object', n: 1 }]), { msg: 'from the object', fields: { n: 1 } });
  t.same(logArgs([42]), { msg: '42', fields: undefined });
  t.same(logArgs(['x'], { step: 'load' }), { msg: 'x', fields: { step: 'load' } });
  const err = Object.assign(new Error('nope'), { code: 'E_NOPE' });
  t.match(logArgs([err]), { msg: 'nope', fields: { err: { type: 'Error', message: 'nope', code: 'E_NOPE', stack: String } } });
  t.match(logArgs([{ err }, 'failed']), { msg: 'failed', fields: { err: { message: 'nope' } } });
  const circular: Record<string, unknown> = {};
  circular['self'] = circular;
  t.match(logArgs([circular, 'loop']), { msg: 'loop', fields: { unserializable: /circular/i } });
  t.match(logArgs([{ n: 1n }, 'big']), { fields: { unserializable: /BigInt/ } });
  const huge = logArgs([{ blob: 'y'.repeat(LOG_MAX_FIELDS * 2) }, 'huge']);
  t.equal((huge.fields!['truncated'] as string).length, LOG_MAX_FIELDS + 1, 'fields past the bound are cut, and say so');
  t.equal(logArgs(['z'.repeat(LOG_MAX_MSG + 10)]).msg.length, LOG_MAX_MSG + 1, 'a long message is cut, with …');
});
