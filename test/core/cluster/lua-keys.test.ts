import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import t from 'tap';
import { JOB_FIELD } from '../../../core/cluster/bullmq-internals.js';
import { pruneEntries } from '../../../core/cluster/history-scripts.js';
import { ClusterKeys } from '../../../core/cluster/keys.js';
import { defineScripts, JOBHOST_SCRIPTS } from '../../../core/cluster/scripts.js';
import type { ConfigInput } from '../../../core/contract/config.js';
import { definePlugin } from '../../../core/contract/plugin.js';
import { finalOn, freshPrefix, runWhen, startCluster } from '../../cluster.js';
import { gate, until } from '../../helpers.js';
import { httpReceiver } from '../../receivers.js';
import { startRedis } from '../../redis.js';

/**
 * Every Lua script jobhost defines touches only keys given in KEYS (issue 25: the first step
 * towards Redis Cluster and Redis-compatible servers). A static pass over each script's source:
 * every `redis.call` / `redis.pcall` names its command as a literal, and each key argument of that
 * command is written `KEYS[...]` (a KEYS entry by any index, never a name built in the script or
 * taken from ARGV or a read). Commands the checker does not know the key positions of fail it, so
 * a new command is looked at before it is allowed.
 */

/** Commands without keys. */
const KEYLESS = new Set(['TIME']);
/** Commands whose every argument is a key. */
const ALL_KEYS = new Set(['DEL', 'EXISTS', 'UNLINK', 'TOUCH']);
/** Commands with one key, their first argument. */
const FIRST_KEY = new Set(
  (
    'GET SET INCRBY PEXPIRE EXPIRE TTL PTTL ' +
    'HGET HSET HSETNX HMGET HDEL HEXISTS HINCRBY HGETALL ' +
    'ZADD ZREM ZSCORE ZRANK ZREVRANK ZCARD ZRANGE ZREVRANGE ZRANGEBYLEX ZREVRANGEBYLEX ZRANGEBYSCORE ZREVRANGEBYSCORE ZREMRANGEBYRANK ZREMRANGEBYLEX ' +
    'LLEN LPOS RPUSH LTRIM LRANGE SADD SREM SMEMBERS SCARD SISMEMBER XADD'
  ).split(' '),
);

/** The arguments of the call whose `(` is at `open`, split at top-level commas (Lua strings and brackets respected). */
function callArgs(src: string, open: number): string[] {
  const args: string[] = [];
  let depth = 0;
  let start = open + 1;
  for (let i = open; i < src.length; i++) {
    const c = src[i]!;
    if (c === "'" || c === '"') {
      for (i++; i < src.length && src[i] !== c; i++) if (src[i] === '\\') i++;
      continue;
    }
    if (c === '(' || c === '{' || c === '[') depth++;
    else if (c === ')' || c === '}' || c === ']') {
      depth--;
      if (depth === 0) {
        args.push(src.slice(start, i).trim());
        return args;
      }
    } else if (c === ',' && depth === 1) {
      args.push(src.slice(start, i).trim());
      start = i + 1;
    }
  }
  throw new Error(`unbalanced call at ${open}`);
}

/** Every TypeScript source under core/, by path relative to it. */
function coreSources(): Array<readonly [string, string]> {
  const root = path.resolve(import.meta.dirname, '../../../core');
  return (readdirSync(root, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.ts'))
    .map((f) => [f, readFileSync(path.join(root, f), 'utf8')] as const);
}

const KEY_REF = /^KEYS\[[^[\]]+\]$/;

/** What is wrong with a script's key use ([] when nothing). */
function keyProblems(lua: string, declared: number | undefined): string[] {
  const problems: string[] = [];
  if (/redis\.p?call\s*[^\s(]/.test(lua) || /redis\.p?call\s*$/.test(lua))
    problems.push('redis.call used other than called directly (an alias hides its keys)');
  if (/\bKEYS\s*(\[[^\]]*\])?\s*=(?!=)/.test(lua)) problems.push('KEYS is assigned to');
  for (const m of lua.matchAll(/redis\.p?call\s*\(/g)) {
    const args = callArgs(lua, m.index + m[0].length - 1);
    const name = /^'([A-Za-z]+)'$|^"([A-Za-z]+)"$/.exec(args[0] ?? '');
    const command = (name?.[1] ?? name?.[2])?.toUpperCase();
    if (!command) {
      problems.push(`command not a literal: ${args[0]}`);
      continue;
    }
    const keys = KEYLESS.has(command) ? [] : ALL_KEYS.has(command) ? args.slice(1) : FIRST_KEY.has(command) ? args.slice(1, 2) : undefined;
    if (!keys) {
      problems.push(`${command}: key positions unknown to this check (add it to its tables)`);
      continue;
    }
    for (const key of keys) if (!KEY_REF.test(key)) problems.push(`${command} touches ${key}, not a KEYS entry`);
  }
  if (declared !== undefined) {
    for (const m of lua.matchAll(/KEYS\[(\d+)\]/g)) if (Number(m[1]) > declared) problems.push(`KEYS[${m[1]}] past the ${declared} declared`);
  }
  return problems;
}

t.test('every jobhost script touches only keys given in KEYS', async (t) => {
  // Every Redis call written in core/'s sources is in a listed script: none is defined elsewhere.
  const calls = (text: string) => [...text.matchAll(/redis\.p?call\s*\(/g)].length;
  const inSources = coreSources().reduce((n, [, src]) => n + calls(src), 0);
  const listed = Object.values(JOBHOST_SCRIPTS).reduce((n, { lua }) => n + calls(lua), 0);
  t.equal(listed, inSources, `the ${Object.keys(JOBHOST_SCRIPTS).length} listed scripts hold every redis.call of core/`);
  const defining = coreSources().filter(
    ([f, src]) => /defineCommand\(|\.eval(sha)?\(/.test(src) && f !== 'cluster/scripts.ts' && f !== 'cluster/audit-records.ts',
  );
  t.same(
    defining.map(([f]) => f),
    [],
    'scripts are defined only from JOBHOST_SCRIPTS',
  );
  for (const [name, { keys, lua }] of Object.entries(JOBHOST_SCRIPTS)) {
    t.ok(/redis\.p?call\(/.test(lua), `${name} calls Redis`);
    t.same(keyProblems(lua, keys), [], name);
  }
});

t.test('the check finds keys built inside a script', async (t) => {
  t.match(keyProblems("redis.call('GET', ARGV[2])", 1), ['GET touches ARGV[2], not a KEYS entry']);
  t.match(keyProblems("local q = ARGV[1] .. ':x'\nredis.call('ZSCORE', q .. 'completed', id)", 0), [/ZSCORE touches q \.\. 'completed'/]);
  t.match(keyProblems("redis.call('EXISTS', KEYS[1], prefix .. id)", 1), [/EXISTS touches prefix \.\. id/]);
  t.match(keyProblems("local rcall = redis.call\nrcall('GET', 'x')", 0), [/alias/]);
  t.match(keyProblems('redis.call(cmd, KEYS[1])', 1), [/not a literal/]);
  t.match(keyProblems("redis.call('RENAME', KEYS[1], KEYS[2])", 2), [/RENAME: key positions unknown/]);
  t.match(keyProblems("redis.call('GET', KEYS[3])", 2), ['KEYS[3] past the 2 declared']);
  t.same(keyProblems("redis.call('HSET', KEYS[b + 1], 'x', string.format('%d', 1))\nredis.call('TIME')", undefined), []);
});

t.test("BullMQ's job hash fields in the scripts' sources come from bullmq-internals.ts", async (t) => {
  // In a source a field is interpolated (\`'\${F.finishedOn}'\`); one spelled literally would survive a rename in JOB_FIELD.
  // 'data' and 'progress' are also the names of stream entry fields and of BullMQ's progress event, so they are not looked for.
  const fields = Object.values(JOB_FIELD).filter((f) => f !== 'data' && f !== 'progress');
  const withLua = coreSources().filter(([, src]) => /redis\.p?call\(/.test(src));
  t.ok(withLua.length >= 6, `the modules with scripts are found (${withLua.map(([f]) => f).join(', ')})`);
  for (const [file, src] of withLua) {
    const literal = fields.filter((f) => src.includes(`'${f}'`) || src.includes(`"${f}"`));
    t.same(literal, [], `${file} spells no BullMQ job field itself`);
  }
});

/**
 * The same at run time, against a real redis-server: MONITOR shows each script's call (its
 * declared keys) followed by the commands the script ran (source `lua`); redis-server's own
 * COMMAND GETKEYS says which keys each of those touched. A workload of two hosts drives the
 * scripts (adds, a deduplication refusal, ends, failures notified, progress and logs, pages,
 * a run by id, the job states), and the index prune and notification trim are called directly.
 */
t.test('at run time every jobhost script touches only its declared keys (MONITOR)', async (t) => {
  const redis = await startRedis(t);
  const sha = (text: string) => createHash('sha1').update(text).digest('hex');
  // An EVAL's body as ioredis hands over MONITOR's line: Redis escapes it, ioredis takes back only \".
  const monitored = (lua: string) => lua.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t');
  const names = new Map(
    Object.entries(JOBHOST_SCRIPTS).flatMap(([name, { lua }]) => [
      [sha(lua), name],
      [sha(monitored(lua)), name],
    ]),
  );
  const calls: Array<{ name: string; declared: Set<string>; ran: string[][] }> = [];
  const watcher = new Redis(redis.url);
  watcher.on('error', () => undefined);
  const monitor = await watcher.monitor();
  monitor.on('error', () => undefined);
  t.teardown(() => {
    monitor.disconnect();
    watcher.disconnect();
  });
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    const command = args[0]?.toLowerCase();
    if (source !== 'lua') {
      const id = command === 'evalsha' ? args[1]! : command === 'eval' ? sha(args[1]!) : undefined;
      const name = id === undefined ? undefined : names.get(id);
      if (name) calls.push({ name, declared: new Set(args.slice(3, 3 + Number(args[2]))), ran: [] });
      else if (id !== undefined) calls.push({ name: '', declared: new Set(), ran: [] });
    } else calls.at(-1)?.ran.push(args);
  });

  const hook = await httpReceiver(t);
  const prefix = freshPrefix();
  const gateOpen = gate();
  const hosts = await startCluster(t, redis, 2, {
    prefix,
    config: { notifications: { throttle: 0, destinations: { hook: { kind: 'webhook', url: `${hook.url}/in` } } } } as ConfigInput,
    plugins: [
      definePlugin({
        name: 'ok',
        handler: (ctx) => {
          ctx.log.info({ step: 1 }, 'working');
          ctx.progress(0.5, 'half');
          return 1;
        },
      }),
      definePlugin({
        name: 'bad',
        notify: { on: ['failed'], to: ['hook'] },
        handler: () => {
          throw new Error('boom');
        },
      }),
      definePlugin({ name: 'slow', overlap: 'skip', handler: () => gateOpen.promise }),
    ],
  });
  const [a, b] = [hosts[0]!.host, hosts[1]!.host];
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await a.trigger('ok')).runId, (await b.trigger('bad')).runId);
  const slow = (await a.trigger('slow', { key: 'k' })).runId;
  await runWhen(a, slow, (r) => r.status === 'running');
  await t.rejects(b.trigger('slow', { key: 'k' }), { code: 'SKIPPED' }, 'deduplication kept the running one');
  gateOpen.open();
  for (const id of [...ids, slow]) await finalOn(a, id);
  await until(() => hook.received.length >= 3, 15_000, 'the failures notified');
  t.equal((await b.runs({ limit: 100 })).items.length, 7);
  t.equal((await a.runs({ status: 'failed', limit: 2 })).items.length, 2);
  t.equal((await b.run(ids[0]!))?.status, 'succeeded');
  await until(
    async () => {
      const { items } = await a.notifications({ limit: 10 });
      return items.length === 3 && items.every((n) => n.deliveries.every((d) => d.status === 'delivered'));
    },
    15_000,
    'three notifications, delivered',
  );

  // The prune and the trim need thousands of entries to come up: called directly, with what their callers pass.
  const conn = defineScripts(new Redis(redis.url));
  conn.on('error', () => undefined);
  t.teardown(() => conn.disconnect());
  const keys = new ClusterKeys(prefix);
  await conn.del(keys.queue('ok', ids[0]!));
  t.equal(await pruneEntries(conn, keys, `${keys.sweep}:cursor`, await conn.zrange(keys.runs, 0, -1), '', 60_000), 1, 'the removed run pruned');
  const [oldest] = await conn.zrange(keys.notifications, 0, 0);
  t.equal(await conn.jhTrimNotifications(2, keys.notifications, keys.notification(oldest!), '2', oldest!), 1, 'past the 2 kept: trimmed');
  await until(() => calls.some((c) => c.name === 'jhRunEnds'), 10_000, 'a job-state read of the failures');
  // MONITOR's feed lags the calls: everything before this marker has arrived once it has.
  let marked = false;
  monitor.on('monitor', (_time: string, args: string[]) => {
    if (args[0]?.toLowerCase() === 'echo' && args[1] === 'lua-keys-marker') marked = true;
  });
  await conn.echo('lua-keys-marker');
  await until(() => marked, 5000, 'the marker through MONITOR');
  monitor.disconnect();

  const ran = calls.filter((c) => c.name !== '');
  const touched = conn.pipeline();
  const commands = ran.flatMap((c) => c.ran.map((args) => ({ call: c, args })));
  for (const { args } of commands) touched.call('COMMAND', 'GETKEYS', ...args);
  const replies = (await touched.exec()) ?? [];
  const outside: string[] = [];
  for (const [i, { call, args }] of commands.entries()) {
    const [err, keysOf] = replies[i]!;
    // A command without keys (TIME) has none to get.
    const list = err ? [] : (keysOf as string[]);
    for (const key of list) if (!call.declared.has(key)) outside.push(`${call.name}: ${args[0]} ${key}`);
  }
  t.same(outside, [], `${commands.length} commands of ${ran.length} script calls touched only declared keys`);
  const seen = new Set(ran.map((c) => c.name));
  const expected = ['jhAdmit', 'jhAdmitted', 'jhFold', 'jhAppendLog', 'jhOwnedProgress', 'jhStates', 'jhRunEnds', 'jhItems', 'jhPrune'];
  expected.push('jhAddNotification', 'jhUpdateDelivery', 'jhTrimNotifications');
  t.same(
    expected.filter((n) => !seen.has(n)),
    [],
    'the workload ran these scripts',
  );
  t.comment(
    `not run here: ${Object.keys(JOBHOST_SCRIPTS)
      .filter((n) => !seen.has(n))
      .join(', ')}`,
  );
});
