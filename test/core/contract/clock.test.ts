import t from 'tap';
import { createManualClock, settlesWithin, whenAborted } from '../../../core/contract/clock.js';

t.test('whenAborted resolves on the abort, and at once for a signal already aborted', async (t) => {
  const controller = new AbortController();
  let resolved = false;
  const waiting = whenAborted(controller.signal).then(() => (resolved = true));
  await Promise.resolve();
  t.notOk(resolved, 'not before the abort');
  controller.abort();
  await waiting;
  t.ok(resolved);
  t.equal(await Promise.race([whenAborted(AbortSignal.abort()).then(() => 'aborted'), new Promise((r) => setImmediate(() => r('late')))]), 'aborted');
});

t.test('settlesWithin: true when the work settles (rejected too) before the bound, false after it', async (t) => {
  const clock = createManualClock();
  t.equal(await settlesWithin(clock, 1000, Promise.reject(new Error('x'))), true);
  const late = settlesWithin(clock, 1000, new Promise(() => undefined));
  await clock.advance(1000);
  t.equal(await late, false);
});
