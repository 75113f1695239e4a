import { cpSync } from 'node:fs';
import t from 'tap';
import { createManualClock, type ManualClock } from '../../core/contract/clock.js';
import type { PluginDefinition } from '../../core/contract/plugin.js';
import type { Subject, SubjectOptions } from '../conformance/subject.js';
import { conformance } from '../conformance/suite.js';
import { startHost, type Tap, tempDir } from '../helpers.js';

/** The conformance suite (test/conformance/suite.ts) on the local backend: a temp store dir, a manual clock. */

/** Steps of the manual clock while a test waits; the wait is bounded in real time. */
const STEP_MS = 10;
const BOUND_MS = 10_000;

async function subject(t: Tap, plugins: PluginDefinition[], options: SubjectOptions & { dir?: string; clock?: ManualClock } = {}): Promise<Subject> {
  const clock = options.clock ?? createManualClock(Date.UTC(2026, 0, 5, 12, 0, 0));
  const h = await startHost(t, { plugins, config: options.config, clock, ...(options.dir !== undefined && { dir: options.dir }) });
  return {
    host: h.host,
    of: h.of,
    now: () => clock.now(),
    async until(check, what) {
      const deadline = Date.now() + BOUND_MS;
      while (!(await check())) {
        if (Date.now() > deadline) throw new Error(`timed out after ${BOUND_MS} ms waiting for ${what}`);
        await clock.advance(STEP_MS);
      }
    },
  };
}

conformance(t, {
  name: 'local',
  start: (t, plugins, options) => subject(t, plugins, options),
  async crashed(t, plugins, jobs) {
    const dir = tempDir(t);
    const clock = createManualClock(Date.UTC(2026, 0, 5, 12, 0, 0));
    const dead = await subject(t, plugins(true), { dir, clock });
    const runIds: string[] = [];
    for (const job of jobs) runIds.push((await dead.host.trigger(job)).runId);
    await dead.until(() => dead.of('run.started').length === jobs.length, 'the runs to start');
    await dead.host.flush();
    // What a kill -9 leaves: the store as it is now, no closing checkpoint.
    const crashed = tempDir(t);
    cpSync(dir, crashed, { recursive: true });
    return { subject: await subject(t, plugins(false), { dir: crashed, clock }), runIds };
  },
});
