import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { validateProject } from '../../../core/loader/app.js';
import { tempDir } from '../../helpers.js';

/** `jobhost validate` as a library call: what it finds in a project's config and plugin files. */

const ZOD = import.meta.resolve('zod');

function project(t: Parameters<typeof tempDir>[0], config: unknown, plugins: Record<string, string> = {}): string {
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'config'));
  mkdirSync(path.join(dir, 'plugins'));
  writeFileSync(path.join(dir, 'config', 'jobhost.json'), JSON.stringify(config));
  for (const [name, text] of Object.entries(plugins)) writeFileSync(path.join(dir, 'plugins', name), text);
  return dir;
}

t.test('every problem of the config file at once, each naming its path', async (t) => {
  const dir = project(t, { bogus: 1, server: { port: 'abc' }, concurrency: 'lots', jobs: { x: { schedule: '61 * * * *' } } });
  const { problems } = await validateProject({ cwd: dir, env: {} });
  t.same(problems.map((p) => [p.file, p.code, p.message.split(':')[0]]).sort(), [
    ['config/jobhost.json', 'CONFIG_INVALID', '(root)'],
    ['config/jobhost.json', 'CONFIG_INVALID', 'concurrency'],
    ['config/jobhost.json', 'CONFIG_INVALID', 'server.port'],
    ['config/jobhost.json', 'INVALID_CRON', 'jobs.x.schedule'],
  ]);
  // The checks that read the whole file (queues, destinations) report together too.
  const later = project(t, { jobs: { a: { queue: 'nope' }, b: { notify: { to: ['ghost'] } } } });
  t.same(
    (await validateProject({ cwd: later, env: {} })).problems.map((p) => p.message.split(':')[0]),
    ['jobs.a.queue', 'jobs.b.notify.to.0'],
  );
});

t.test('a config file saying `null` is a problem, not the defaults', async (t) => {
  const dir = project(t, null);
  const { problems } = await validateProject({ cwd: dir, env: {} });
  t.same(
    problems.map((p) => [p.file, p.code, p.message]),
    [['config/jobhost.json', 'CONFIG_INVALID', '(root): Invalid input: expected object, received null']],
  );
});

t.test(
  'jobs.<name>.params its schema refuses are a config problem naming the key; a scheduled job whose fires would fail its schema is a problem',
  async (t) => {
    const plugin = (name: string, schedule: boolean) =>
      `import { z } from '${ZOD}';\nexport default { name: '${name}', ${schedule ? "schedule: '0 3 * * *', " : ''}params: z.object({ dir: z.string() }), handler: () => 1 };\n`;
    const dir = project(
      t,
      { jobs: { nightly: { params: { dir: 5 } }, manual: { params: { dir: 5 } }, fine: { params: { dir: '/tmp' } } } },
      {
        'nightly.ts': plugin('nightly', true),
        'manual.ts': plugin('manual', false),
        'fine.ts': plugin('fine', true),
        'bare.ts': plugin('bare', true),
        'free.ts': plugin('free', false),
      },
    );
    const { problems } = await validateProject({ cwd: dir, env: {} });
    t.same(
      problems.map((p) => [p.file, p.code]),
      [
        ['plugins/bare.ts', 'INVALID_PARAMS'],
        ['config/jobhost.json', 'CONFIG_INVALID'],
        ['config/jobhost.json', 'CONFIG_INVALID'],
      ],
    );
    t.match(problems[0]!.message, /^job "bare" is scheduled, and its fires \(with no params\) fail/);
    t.match(problems[1]!.message, /^jobs\.manual\.params\.dir: .*\(the job's params schema\)/);
    t.match(problems[2]!.message, /^jobs\.nightly\.params\.dir: /);
  },
);
