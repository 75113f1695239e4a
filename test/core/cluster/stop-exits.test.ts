import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { freshPrefix } from '../../cluster.js';
import { childEnv } from '../../e2e/project.js';
import { startRedis } from '../../redis.js';

/**
 * "Every stop is bounded", for an app that embeds a cluster host: once `host.stop()` has resolved,
 * nothing of the host holds the process open. ioredis 5 kept a closed connection's socket timer
 * armed (the delivery worker's BZPOPMIN was outstanding at the stop), and the process lived on
 * for the whole `commandTimeout` + block (~70 s here) after the stop.
 */

t.test('a process whose cluster host has stopped exits by itself, well before its connections’ socket timeouts', async (t) => {
  const redis = await startRedis(t, { appendfsync: 'everysec' });
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./stop-exits-child.ts', import.meta.url)), redis.url, freshPrefix()], {
    cwd: fileURLToPath(new URL('../../../', import.meta.url)),
    // No coverage from the child (childEnv): tsx minifies what it loads, and merging that with the
    // suite's own coverage of the same files garbles the report.
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let stoppedAt = 0;
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    out += c;
    if (!stoppedAt && out.includes('stopped')) stoppedAt = performance.now();
  });
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  // Bounded: a child still alive 15 s after its stop is killed, and the test says so.
  const limit = setInterval(() => {
    if (stoppedAt && performance.now() - stoppedAt > 15_000) child.kill('SIGKILL');
  }, 250);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
  clearInterval(limit);
  t.ok(stoppedAt > 0, `the host started, ran a run and stopped (stderr: ${err.slice(-500)})`);
  t.equal(signal, null, 'the process was not still alive 15 s after the stop');
  t.equal(code, 0, 'it exited by itself, with 0');
});
