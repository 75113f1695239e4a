import { createHash } from 'node:crypto';

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
  // The millisecond part is written once per millisecond, not once per id: under load many ids
  // share one (a trigger over HTTP mints two, its run's and its audit record's).
  let stamp = (0).toString(36).padStart(9, '0');
  const next = (): string => {
    const t = Math.max(now(), last);
    if (t !== last) {
      last = t;
      counter = 0;
      stamp = t.toString(36).padStart(9, '0');
    }
    counter++;
    return stamp + (counter < 36 ? '000' : counter < 1296 ? '00' : '') + (counter < 1296 ? counter.toString(36) : counter.toString(36).padStart(4, '0')) + node;
  };
  return Object.assign(next, {
    setNode(value: string): void {
      if (!/^[0-9a-z]{3}$/.test(value)) throw new Error(`an id node is three base-36 characters, got "${value}"`);
      node = value;
    },
  });
}

/**
 * The run id of a schedule fire on a shared backend: the same on every host for one job and fire
 * time, so hosts that fire together name one run. The counter part `0000` is one the generator
 * never mints (it counts from 1); eight base-36 characters of the job name's hash follow, so fires
 * of two jobs at one time differ.
 */
export function fireRunId(job: string, at: number): string {
  return `${at.toString(36).padStart(9, '0')}0000${jobHash(job)}`;
}

/**
 * The id of the run of `job` that the end of run `parentId` triggers (`after`, SPEC §13): the
 * same whenever that end is recorded (twice, after a crash between the end and its record), so
 * the trigger is idempotent on it. It sorts right after its parent's id.
 */
export function afterRunId(parentId: string, job: string): string {
  return `${parentId}${jobHash(job)}`;
}

/** Eight base-36 characters of a job name's hash. */
function jobHash(job: string): string {
  const hash = Number.parseInt(createHash('sha1').update(job).digest('hex').slice(0, 10), 16) % 36 ** 8;
  return hash.toString(36).padStart(8, '0');
}
