import type { Slot } from './slot.js';

/**
 * Where the pool places a new attempt, and when a thread counts as held by what runs on it. A
 * thread runs many attempts at once; a new one goes to the thread with the fewest, passing over a
 * thread that has stopped reading its messages (a handler on the CPU) and one held recently (a
 * handler computing in slices, which reads between them); when every thread is held, the pool
 * starts one more.
 */

/**
 * A thread that has not read a batch for this long is busy (a handler holds its CPU): new
 * attempts go elsewhere. Threads with runs in flight are pinged every half of it, so one that
 * stops reading is known within this bound even when nothing else is sent to it.
 */
export const STALL_MS = 50;
/** What a stalled thread adds to its load when the pool picks one. */
const STALLED = 1_000_000;
/** What a thread held recently (see `HELD_MS`) adds: it reads its messages now, so it beats a stalled one. */
const HELD = 1000;
/**
 * Every thread stalled this long, as the main thread sees it: one more starts. Much longer than
 * `STALL_MS`, so a pool that is merely saturated (its threads take a few ms to reach the next
 * batch), or a main thread that was itself busy for a while, does not grow: only one whose
 * threads are all held by handlers on the CPU. A thread silent this long also gives up the
 * attempts placed on it that have not started (`WorkerPool`, see `CLAIM`).
 */
export const OVERFLOW_AFTER_MS = 1000;
/**
 * A batch that waited this long unread in its thread (as the thread's own read time says) means
 * what runs there held it: that thread counts as held for `HELD_RECENTLY_MS` after, is passed
 * over while another is not, and when every thread is held one more starts. A handler that
 * computes in slices reads its messages between them, and that is when its runs end and new ones
 * are placed: judged by its stall alone, its thread looked free at every pick, and quick runs
 * went back behind the next slice for good (measured: two handlers computing in 1 s slices on a
 * pool of two let ~30 no-op runs a second through, each waiting ~2 s).
 */
const HELD_MS = 500;
const HELD_RECENTLY_MS = 3000;
/**
 * The least busy thread for a new attempt (undefined: none alive), and whether every thread is
 * held (then one more should start).
 */
export function place(slots: readonly Slot[], now: number): { best: Slot | undefined; allHeld: boolean } {
  let best: Slot | undefined;
  let bestScore = Infinity;
  let allHeld = true;
  for (const slot of slots) {
    if (slot.ending) continue;
    // A thread still starting is neither stalled nor held: it has run nothing yet.
    const stalled = slot.started ? slot.stalledFor(now) : 0;
    const recently = now - slot.heldAt < HELD_RECENTLY_MS;
    if (stalled < OVERFLOW_AFTER_MS && !recently) allHeld = false;
    const score = slot.tasks.size + (stalled > STALL_MS ? STALLED : recently ? HELD : 0);
    if (score < bestScore) {
      best = slot;
      bestScore = score;
    }
  }
  return { best, allHeld };
}

/**
 * An answer from `slot` read new batches, the last at `readAt` (`performance.timeOrigin + now()`
 * in its thread): marks the thread held when the oldest of them waited there `HELD_MS` or more.
 * Call it before the slot's `acked` moves.
 */
export function markHeld(slot: Slot, readAt: number): void {
  const sent = slot.sentAt.get(slot.acked + 1);
  if (sent !== undefined && readAt - performance.timeOrigin - sent >= HELD_MS) slot.heldAt = performance.now();
}

/**
 * Whether the unstarted attempts of `held` (silent past OVERFLOW_AFTER_MS) may move: to a thread
 * that answers, or to one more (up to `max`) when every other is held too. Not after `STALL_MS`:
 * a machine that is merely busy delays answers by tens of ms, and moving runs between threads that
 * are all slow would gain nothing; and not between threads all held at `max`, where a move would
 * only put them behind another computation.
 */
export function mayTakeBack(slots: readonly Slot[], held: Slot, now: number, max: number): boolean {
  const others = slots.filter((s) => s !== held && !s.ending);
  if (others.some((s) => !s.started || s.stalledFor(now) <= STALL_MS)) return true;
  return slots.length < max && others.every((s) => s.started && s.stalledFor(now) > OVERFLOW_AFTER_MS);
}
