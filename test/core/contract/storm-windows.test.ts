import t from 'tap';
import { StormWindows } from '../../../core/contract/storm-windows.js';

/** Storm-control windows in one process (the local backend's `throttle`, `takeHeld`, `takeEnded`). */

t.test('a window opens, counts what it holds back, and its digest takes the counts once it ended', async (t) => {
  const w = new StormWindows();
  t.same(w.throttle('job:hook', 1000, 'failed', 0), {}, 'the first message opens the window, nothing held before it');
  t.equal(w.throttle('job:hook', 1000, 'failed', 400), 600, 'held back: the ms left');
  t.equal(w.throttle('job:hook', 1000, 'retrying', 500), 500);
  t.equal(w.takeEnded('job:hook', 900), 100, 'not taken while open');
  t.same(w.takeEnded('job:hook', 1000), { failed: 1, retrying: 1 }, 'the digest takes them at the end');
  t.same(w.takeEnded('job:hook', 1000), {}, 'once');
});

t.test('a message opening the next window before the last one was digested takes its counts (it tells them)', async (t) => {
  const w = new StormWindows();
  w.throttle('job:hook', 1000, 'failed', 0);
  w.throttle('job:hook', 1000, 'failed', 100);
  w.throttle('job:hook', 1000, 'failed', 200);
  t.same(w.throttle('job:hook', 1000, 'failed', 1000), { failed: 2 }, 'the opener gets what the last window held');
  t.same(w.takeEnded('job:hook', 2000), {}, 'no digest of them later: told once');
});
