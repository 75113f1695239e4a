import { spawn } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { type Tap, tempDir } from '../helpers.js';

/**
 * The host's real timers when the wall clock is stepped while it runs (libfaketime, whose offset
 * file is rewritten mid-run, as an NTP step moves the clock): a wait keeps its real length when
 * the clock goes back (it re-checked the wall clock and waited the step out again).
 */

function libfaketime(): string | undefined {
  return readdirSync('/usr/lib')
    .map((arch) => path.join('/usr/lib', arch, 'faketime', 'libfaketime.so.1'))
    .find((p) => existsSync(p));
}

const clockModule = pathToFileURL(path.resolve(import.meta.dirname, '../../core/contract/clock.ts')).href;

/** A child that arms one system timer of `ms`, says when it armed it, and says how long it took to fire (real, monotonic ms). */
function child(ms: number): string {
  return `import { systemClock } from ${JSON.stringify(clockModule)};
const t0 = performance.now();
systemClock.setTimer(${ms}, () => { console.log('fired ' + Math.round(performance.now() - t0)); process.exit(0); });
console.log('armed');
`;
}

async function run(t: Tap, ms: number, step: string): Promise<number> {
  const lib = libfaketime();
  if (!lib) throw new Error('libfaketime is missing: install Debian\'s "faketime" package (.ci/deps does)');
  const dir = tempDir(t);
  const offset = path.join(dir, 'offset');
  writeFileSync(offset, '+0');
  const script = path.join(dir, 'timer.ts');
  writeFileSync(script, child(ms));
  const proc = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: path.resolve(import.meta.dirname, '../..'),
    env: { ...process.env, LD_PRELOAD: lib, FAKETIME_TIMESTAMP_FILE: offset, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => void proc.kill('SIGKILL'));
  let out = '';
  return new Promise<number>((resolve, reject) => {
    const bound = setTimeout(() => reject(new Error(`the timer did not fire within 20 s (${out.trim()})`)), 20_000);
    proc.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('armed') && !out.includes('stepped')) {
        out += 'stepped\n';
        writeFileSync(offset, step);
      }
      const fired = /fired (\d+)/.exec(out);
      if (fired) {
        clearTimeout(bound);
        resolve(Number(fired[1]));
      }
    });
  });
}

t.test('the wall clock stepped back an hour: a 2 s wait still takes 2 s', async (t) => {
  const took = await run(t, 2000, '-3600');
  t.ok(took >= 1990 && took < 15_000, `fired after ${took} ms`);
});
