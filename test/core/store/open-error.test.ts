import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { isHostError } from '../../../core/contract/errors.js';
import { startHost, type TestHost, tempDir } from '../../helpers.js';

const noop = (): undefined => undefined;

/** A stopped store: a checkpoint, its journal, a finished run in segment 1 and a waiting run. */
async function stoppedStore(t: Parameters<typeof tempDir>[0]): Promise<{ dir: string; journal: string; clock: TestHost['clock'] }> {
  const dir = tempDir(t);
  const a = await startHost(t, { dir });
  a.host.register({ name: 'a', handler: noop });
  await a.host.wait((await a.host.trigger('a')).runId);
  await a.host.trigger('a', { delay: '1h' });
  await a.host.stop();
  const { checkpoint } = JSON.parse(readFileSync(path.join(dir, 'state.json'), 'utf8')) as { checkpoint: number };
  return { dir, journal: `journal-${checkpoint}.ndjson`, clock: a.clock };
}

/** Why a host on `dir` did not start. */
async function startError(t: Parameters<typeof tempDir>[0], dir: string, clock: TestHost['clock']): Promise<unknown> {
  const h = await startHost(t, { dir, clock, start: false });
  return h.host.start().then(
    () => new Error('started'),
    (err: unknown) => err,
  );
}

t.test('a path in the store that is not what the store keeps there: STORE_OPEN_FAILED naming it, whatever it is', async (t) => {
  const base = await stoppedStore(t);
  const cases: Array<{ what: string; file: string; errno: string; make: (dir: string) => void }> = [
    { what: 'the journal the checkpoint names, a directory', file: base.journal, errno: 'EISDIR', make: (d) => replaceWithDir(path.join(d, base.journal)) },
    { what: 'a segment, a directory', file: 'segments/1.ndjson', errno: 'EISDIR', make: (d) => replaceWithDir(path.join(d, 'segments', '1.ndjson')) },
    { what: 'format, a directory', file: 'format', errno: 'EISDIR', make: (d) => replaceWithDir(path.join(d, 'format')) },
    { what: 'jobhost.lock, a directory', file: 'jobhost.lock', errno: 'EISDIR', make: (d) => replaceWithDir(path.join(d, 'jobhost.lock')) },
    { what: 'pauses.json, a directory', file: 'pauses.json', errno: 'EISDIR', make: (d) => mkdirSync(path.join(d, 'pauses.json')) },
    { what: 'segments/, a file', file: 'segments', errno: 'EEXIST', make: (d) => replaceWithFile(path.join(d, 'segments')) },
    { what: 'the store directory, a file', file: '', errno: 'EEXIST', make: (d) => replaceWithFile(d) },
  ];
  for (const c of cases) {
    const dir = tempDir(t);
    cpSync(base.dir, dir, { recursive: true });
    c.make(dir);
    const err = await startError(t, dir, base.clock);
    t.ok(isHostError(err), `${c.what}: a HostError`);
    if (!isHostError(err)) continue;
    const file = path.join(dir, c.file);
    t.match(err, { code: 'STORE_OPEN_FAILED', details: { errno: c.errno, file } }, c.what);
    t.ok(err.message.includes(`the store cannot open ${file}: it `), `${c.what}: the message names the path`);
  }
});

t.test('a start refused for a path in the store leaves nothing held: once it is fixed, the same process starts on it', async (t) => {
  const base = await stoppedStore(t);
  // pauses.json is read after the store opened: the store must be closed again, its lock released.
  mkdirSync(path.join(base.dir, 'pauses.json'));
  t.match(await startError(t, base.dir, base.clock), { code: 'STORE_OPEN_FAILED' });
  rmSync(path.join(base.dir, 'pauses.json'), { recursive: true });
  const b = await startHost(t, { dir: base.dir, clock: base.clock });
  t.equal((await b.host.runs()).items.length, 2);
  t.same(
    readdirSync(base.dir).filter((f) => f.endsWith('.tmp')),
    [],
  );
});

function replaceWithDir(file: string): void {
  rmSync(file, { force: true });
  mkdirSync(file);
}

function replaceWithFile(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  writeFileSync(dir, 'not a directory\n');
}
