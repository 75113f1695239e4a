/**
 * Run ids sort by creation time (a 9-char base-36 millisecond stamp, then a counter), so a page of
 * history is a range of ids, and `before=<id>` is a stable cursor across restarts.
 */
export function createIdGenerator(now: () => number, random: () => number = Math.random): () => string {
  const node = Math.floor(random() * 36 ** 3)
    .toString(36)
    .padStart(3, '0');
  let last = 0;
  let counter = 0;
  return () => {
    const t = Math.max(now(), last);
    if (t !== last) {
      last = t;
      counter = 0;
    }
    counter++;
    return `${t.toString(36).padStart(9, '0')}${counter.toString(36).padStart(4, '0')}${node}`;
  };
}
