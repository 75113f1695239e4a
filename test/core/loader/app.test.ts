import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { silentLogger } from '../../../core/contract/logger.js';
import { startApp } from '../../../core/loader/app.js';
import { nextEvent, tempDir } from '../../helpers.js';

t.test('jobhost start without config/ at all: the folder and the file made later apply as an edit would', async (t) => {
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'plugins'));
  writeFileSync(path.join(dir, 'plugins', 'tick.ts'), "export default { name: 'tick', schedule: '0 3 * * *', handler: () => 1 };\n");
  const app = await startApp({ cwd: dir, env: { JOBHOST_PORT: '0' }, logger: silentLogger(), signals: false });
  t.teardown(() => app.stop());
  t.equal(app.configFile, null);
  t.equal(app.host.job('tick')?.schedule, '0 3 * * *');

  const file = path.join(dir, 'config', 'jobhost.json');
  const write = (config: object): ReturnType<typeof nextEvent> => {
    const seen = nextEvent(app.host, (e) => e.type === 'config.reloaded' || e.type === 'config.error');
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(config));
    return seen;
  };
  // Checked as an edit is: a bad file is refused whole, and the defaults stay.
  t.match(await write({ store: { keepRuns: 10 }, jobs: { tick: { schedule: '99 12 * * *' } } }), {
    type: 'config.error',
    data: { code: 'INVALID_CRON', path: 'jobs.tick.schedule' },
  });
  t.equal(app.host.job('tick')?.schedule, '0 3 * * *');
  t.equal(app.host.config.store.keepRuns, 1000);
  t.match(await write({ store: { keepRuns: 10 }, jobs: { tick: { schedule: '30 12 * * *' } } }), {
    type: 'config.reloaded',
    data: { file: path.join('config', 'jobhost.json'), changed: ['store', 'jobs.tick'], restartRequired: ['store'] },
  });
  t.equal(app.host.job('tick')?.schedule, '30 12 * * *');
});
