import t from 'tap';
import { z } from 'zod';
import { definePlugin } from '../../../core/contract/plugin.js';
import { parsePlugin } from '../../../core/contract/plugin-schema.js';

const ok = { name: 'cleanup-temp-files', handler: () => undefined };

t.test('a minimal plugin gets the documented defaults', async (t) => {
  const spec = parsePlugin(ok);
  t.match(spec, {
    name: 'cleanup-temp-files',
    description: '',
    schedule: null,
    params: null,
    on: [],
    cooldownMs: 0,
    once: false,
    overlap: 'allow',
    concurrency: 1,
    queue: 'default',
    catchUp: false,
    enabled: true,
    notify: null,
  });
  t.ok(Object.isFrozen(spec));
});

t.test('the full SPEC example validates and normalizes', async (t) => {
  const plugin = definePlugin({
    name: 'cleanup-temp-files',
    description: 'Delete temp files older than 7 days',
    schedule: '0 */6 * * *',
    timezone: 'UTC',
    params: z.object({ dir: z.string().default('/tmp') }),
    on: ['file.uploaded', { event: 'shipment.created', delay: '30s' }],
    retry: { attempts: 3, backoff: 'exponential', delay: '1s', maxDelay: '1m' },
    timeout: '30s',
    cooldown: '5m',
    once: false,
    overlap: 'skip',
    concurrency: 1,
    queue: 'default',
    catchUp: false,
    notify: {
      title: 'Temp files cleaned',
      message: 'Removed {{result.count}} files',
      customTitle: true,
      customMessage: true,
      priority: 'medium',
      failurePriority: 'high',
      tags: ['maintenance'],
      on: ['succeeded', 'failed'],
    },
    async handler(ctx) {
      // compile-time check: ctx.params is inferred from the zod schema
      const dir: string = ctx.params.dir;
      ctx.progress(0.5, 'scanned');
      return { count: dir.length };
    },
  });
  const spec = parsePlugin(plugin);
  t.same(spec.schedule, { kind: 'cron', expr: '0 */6 * * *' });
  t.same(spec.on, [
    { event: 'file.uploaded', delayMs: 0 },
    { event: 'shipment.created', delayMs: 30_000 },
  ]);
  t.same(spec.retry, { attempts: 3, backoff: 'exponential', delay: 1000, maxDelay: 60_000 });
  t.equal(spec.timeoutMs, 30_000);
  t.equal(spec.cooldownMs, 300_000);
  t.equal(spec.overlap, 'skip');
});

t.test('every schedule', async (t) => {
  t.same(parsePlugin({ ...ok, schedule: { every: '15m' } }).schedule, { kind: 'every', ms: 900_000, label: '15m' });
  t.throws(() => parsePlugin({ ...ok, schedule: { every: '10ms' } }), { code: 'INVALID_DURATION', message: /^schedule: must be at least 1s/ });
  t.throws(() => parsePlugin({ ...ok, schedule: { every: '15m', at: 1 } }), { code: 'INVALID_CRON', message: /^schedule: / });
});

t.test('each invalid field is rejected with a code and a message naming the field', async (t) => {
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ schedule: '61 * * * *' }, 'INVALID_CRON', /^schedule: invalid cron "61 \* \* \* \*"/],
    [{ schedule: 42 }, 'INVALID_CRON', /^schedule: /],
    [{ timezone: 'Mars/Base' }, 'INVALID_TIMEZONE', /^timezone: invalid timezone "Mars\/Base"/],
    [{ name: 'Not Kebab' }, 'PLUGIN_INVALID', /^name: expected a kebab-case name/],
    [{ name: undefined }, 'PLUGIN_INVALID', /^name: /],
    [{ handler: 'nope' }, 'PLUGIN_INVALID', /^handler: expected a function/],
    [{ timeout: 'soon' }, 'INVALID_DURATION', /^timeout: invalid duration "soon"/],
    [{ cooldown: -1 }, 'INVALID_DURATION', /^cooldown: /],
    [{ retry: { attempts: 0 } }, 'PLUGIN_INVALID', /^retry\.attempts: /],
    [{ retry: { delay: 'x' } }, 'INVALID_DURATION', /^retry\.delay: /],
    [{ retry: { backoff: 'linear' } }, 'PLUGIN_INVALID', /^retry\.backoff: /],
    [{ overlap: 'maybe' }, 'PLUGIN_INVALID', /^overlap: /],
    [{ concurrency: 0 }, 'PLUGIN_INVALID', /^concurrency: /],
    [{ params: { dir: 'x' } }, 'PLUGIN_INVALID', /^params: expected a zod schema/],
    [{ on: [{ event: 'a.b', delay: 'later' }] }, 'INVALID_DURATION', /^on\.0\.delay: /],
    [{ on: ['has space'] }, 'PLUGIN_INVALID', /^on\.0: /],
    [{ notify: { priority: 'extreme' } }, 'PLUGIN_INVALID', /^notify\.priority: /],
    [{ notify: { on: ['exploded'] } }, 'PLUGIN_INVALID', /^notify\.on\.0: /],
    [{ schedual: '* * * * *' }, 'PLUGIN_INVALID', /^\(root\): unknown key "schedual"/],
  ];
  for (const [patch, code, message] of cases) {
    t.throws(() => parsePlugin({ ...ok, ...patch }), { name: 'HostError', code, message }, JSON.stringify(patch));
  }
  t.throws(() => parsePlugin(null), { code: 'PLUGIN_INVALID', message: /expected an object/ });
  t.throws(() => parsePlugin('plugin'), { code: 'PLUGIN_INVALID' });
});

t.test('a plain object default export is accepted, as is any Standard Schema for params', async (t) => {
  const standard = {
    '~standard': { version: 1 as const, vendor: 'custom', validate: (v: unknown) => ({ value: v }) },
  };
  t.equal(parsePlugin({ ...ok, params: standard }).params, standard);
});
