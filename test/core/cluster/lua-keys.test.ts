import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { JOB_FIELD } from '../../../core/cluster/bullmq-internals.js';
import { JOBHOST_SCRIPTS } from '../../../core/cluster/scripts.js';

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
    'ZADD ZREM ZSCORE ZRANK ZREVRANK ZCARD ZRANGE ZREVRANGE ZRANGEBYLEX ZREVRANGEBYLEX ZREMRANGEBYRANK ZREMRANGEBYLEX ' +
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
  if (/redis\.p?call\s*[^\s(]/.test(lua) || /redis\.p?call\s*$/.test(lua)) problems.push('redis.call used other than called directly (an alias hides its keys)');
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
  const defining = coreSources().filter(([f, src]) => /defineCommand\(|\.eval(sha)?\(/.test(src) && f !== 'cluster/scripts.ts' && f !== 'cluster/audit-records.ts');
  t.same(defining.map(([f]) => f), [], 'scripts are defined only from JOBHOST_SCRIPTS');
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
  t.match(keyProblems("redis.call(cmd, KEYS[1])", 1), [/not a literal/]);
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
