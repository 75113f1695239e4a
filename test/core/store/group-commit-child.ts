import { openSync, writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { AppendFile } from '../../../core/store/files.js';
import { GroupCommit } from '../../../core/store/group-commit.js';

/**
 * The child of group-commit.test.ts's kill test: a closed loop of `producers` saves in flight
 * (each awaits its save's acknowledgement, then saves the next item, as the engine benchmark's
 * triggers do) through the real GroupCommit onto a real O_DSYNC AppendFile. It logs every step
 * to a file with synchronous writes (what the parent reads is what happened before the kill),
 * and kills itself with SIGKILL at the first acknowledgement of commit k delivered while commit
 * k + 1 is on the disk: the moment the overlap creates. Exits 3 if that moment never comes.
 * The log goes to a file (`<file>.log`): a pipe to a busy parent could refuse a write (EAGAIN).
 *
 * Log lines: `start <k> <item,item,...>`, `end <k>`, `ack <item>`, `kill <item>`.
 */

export type ChildLine = { kind: 'start'; commit: number; items: number[] } | { kind: 'end'; commit: number } | { kind: 'ack' | 'kill'; item: number };

/** The child's log, line by line. */
export function parseChildLog(text: string): ChildLine[] {
  const out: ChildLine[] = [];
  for (const line of text.split('\n')) {
    const [kind, a, b] = line.split(' ');
    if (kind === 'start') out.push({ kind, commit: Number(a), items: b ? b.split(',').map(Number) : [] });
    else if (kind === 'end') out.push({ kind, commit: Number(a) });
    else if (kind === 'ack' || kind === 'kill') out.push({ kind, item: Number(a) });
  }
  return out;
}

async function main(file: string, producers: number, max: number): Promise<void> {
  const fd = openSync(`${file}.log`, 'a');
  const log = (line: string): void => void writeSync(fd, line + '\n');
  const out = new AppendFile(file, { fsync: true });
  await out.open();
  let dirty: number[] = [];
  const commitOf = new Map<number, number>();
  let started = 0;
  let ended = 0;
  const group = new GroupCommit(
    async () => {
      const taken = dirty;
      dirty = [];
      const k = ++started;
      for (const item of taken) {
        commitOf.set(item, k);
        out.append(JSON.stringify({ item }) + '\n');
      }
      log(`start ${k} ${taken.join(',')}`);
      try {
        await out.commit();
      } catch (err) {
        dirty = [...taken, ...dirty];
        throw err;
      }
      ended = k;
      log(`end ${k}`);
    },
    { committed: () => undefined, failed: (err) => err },
  );
  let next = 0;
  const producer = async (): Promise<void> => {
    while (next < max) {
      const item = next++;
      dirty.push(item);
      await group.request();
      log(`ack ${item}`);
      // Commit k's waiter, heard while commit k + 1 (started after k's write returned) is on the disk.
      if (started > ended && commitOf.get(item)! < started) {
        log(`kill ${item}`);
        process.kill(process.pid, 'SIGKILL');
      }
    }
  };
  await Promise.all(Array.from({ length: producers }, producer));
  process.exitCode = 3;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await main(process.argv[2]!, Number(process.argv[3] ?? 1024), Number(process.argv[4] ?? 100_000));
}
