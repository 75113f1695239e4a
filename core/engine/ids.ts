/**
 * Run ids sort by creation time (a 9-char base-36 millisecond stamp, then a counter), so a page of
 * history is a range of ids, and `before=<id>` is a stable cursor across restarts. The last three
 * characters name the node that minted it: random for a host alone with its store, given by the
 * backend when hosts share one (two hosts must never mint the same id).
 */
export interface IdGenerator {
  (): string;
  /** Replaces the node part (three base-36 characters) of the ids minted from now on. */
  setNode(node: string): void;
}

export function createIdGenerator(now: () => number, random: () => number = Math.random): IdGenerator {
  let node = Math.floor(random() * 36 ** 3)
    .toString(36)
    .padStart(3, '0');
  let last = 0;
  let counter = 0;
  const next = (): string => {
    const t = Math.max(now(), last);
    if (t !== last) {
      last = t;
      counter = 0;
    }
    counter++;
    return `${t.toString(36).padStart(9, '0')}${counter.toString(36).padStart(4, '0')}${node}`;
  };
  return Object.assign(next, {
    setNode(value: string): void {
      if (!/^[0-9a-z]{3}$/.test(value)) throw new Error(`an id node is three base-36 characters, got "${value}"`);
      node = value;
    },
  });
}
