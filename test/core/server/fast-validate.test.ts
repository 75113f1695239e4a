import { isDeepStrictEqual } from 'node:util';
import t, { type Test } from 'tap';
import type { z } from 'zod';
import { fastCheck } from '../../../core/server/fast-validate.js';
import { eventParams, jobParams, noBody, noQuery, runParams, triggerBody } from '../../../core/server/http-schemas.js';
import { startServer } from '../../helpers.js';

/** A deterministic stream of numbers in [0, 1) (a seeded LCG): the same cases on every run. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Values near every bound of the trigger schemas: lengths, integers, floats, infinities, types. */
const strings = [
  '',
  'a',
  'x'.repeat(50),
  'x'.repeat(51),
  'x'.repeat(100),
  'x'.repeat(101),
  'x'.repeat(200),
  'x'.repeat(201),
  'x'.repeat(500),
  'x'.repeat(501),
  '30s',
  'é'.repeat(50),
  '😀'.repeat(25),
  '😀'.repeat(26),
];
const numbers = [
  0,
  -0,
  1,
  -1,
  1.5,
  -1.5,
  1_000_000,
  1_000_001,
  -1_000_000,
  -1_000_001,
  Number.MAX_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER + 1,
  2 ** 60,
  -(2 ** 60),
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.NaN,
  1e-300,
  Date.UTC(2027, 0, 1),
];
const others: unknown[] = [null, undefined, true, false, [], [1], {}, { a: 1 }];
const values: unknown[] = [...strings, ...numbers, ...others];
const keys = ['params', 'delay', 'runAt', 'key', 'priority', 'other', 'Params', ''];

function body(random: () => number): unknown {
  const roll = random();
  if (roll < 0.05) return values[Math.floor(random() * values.length)];
  const out: Record<string, unknown> = {};
  const n = Math.floor(random() * 4);
  for (let i = 0; i < n; i++) {
    const key = keys[Math.floor(random() * (random() < 0.9 ? 5 : keys.length))]!;
    out[key] = values[Math.floor(random() * values.length)];
  }
  return out;
}

function pathParams(random: () => number, key: string): unknown {
  const roll = random();
  if (roll < 0.1) return values[Math.floor(random() * values.length)];
  const out: Record<string, unknown> = {};
  out[roll < 0.2 ? 'other' : key] = values[Math.floor(random() * values.length)];
  if (random() < 0.1) out['extra'] = 'x';
  return out;
}

/** What the fast check admits, zod admits too, and zod's output is the input unchanged. */
function holds(t: Test, schema: z.ZodType, cases: unknown[]): void {
  const check = fastCheck(schema)!;
  let admitted = 0;
  let refused = 0;
  for (const input of cases) {
    const zod = schema.safeParse(input);
    if (!check(input)) {
      refused++;
      continue;
    }
    admitted++;
    if (!zod.success) {
      t.fail(`the check admitted what zod refuses: ${String(JSON.stringify(input))}`);
      return;
    }
    if (!isDeepStrictEqual(zod.data, input === undefined ? undefined : input)) {
      t.fail(`zod changed what the check admitted: ${String(JSON.stringify(input))} → ${String(JSON.stringify(zod.data))}`);
      return;
    }
  }
  // Both kinds must occur, or the comparison says nothing.
  t.ok(admitted > 100 && refused > 100, `${admitted} admitted, ${refused} refused, all as zod`);
}

t.test('each fast check admits only what its zod schema admits, unchanged', async (t) => {
  const random = seeded(26);
  const bodies = Array.from({ length: 20_000 }, () => body(random));
  bodies.push(null, undefined, {}, { params: { source: 'bench' } }, { params: null }, { delay: '30s', key: 'k', priority: 3, runAt: '2027-01-01T00:00:00Z' });
  holds(t, triggerBody, bodies);
  // A route without a body or query of its own (server.ts): nothing, or an empty object.
  holds(t, noBody, bodies);
  holds(t, noQuery, bodies);
  for (const [schema, key] of [
    [jobParams, 'name'],
    [runParams, 'id'],
    [eventParams, 'type'],
  ] as const) {
    holds(
      t,
      schema,
      Array.from({ length: 5_000 }, () => pathParams(random, key)),
    );
  }
  // What the checks must admit (the common cases), or they save nothing.
  const check = fastCheck(triggerBody)!;
  t.ok(check({ params: { source: 'bench' } }) && check(null) && check({}) && check({ delay: 1000, key: 'k', priority: -3, runAt: 0 }));
  t.ok(fastCheck(jobParams)!({ name: 'noop' }));
  t.ok(fastCheck(noQuery)!(Object.create(null)), "a request's query without keys (fastify's has no prototype)");
});

t.test('a trigger refused for its body or its name gets the same 400 as before the fast checks', async (t) => {
  const { host, request } = await startServer(t);
  host.register({ name: 'noop', handler: () => undefined });
  const ok = await request('POST', '/jobs/noop/run', { body: { params: { a: 1 }, delay: 0, key: 'k1', priority: 2 } });
  t.equal(ok.status, 202);
  t.match(await host.run(ok.json['runId'] as string), { params: { a: 1 }, key: 'k1', priority: 2 }, 'the body reached the trigger');
  // Refusals are zod's, word for word (the check hands them on to it).
  const bad = await request('POST', '/jobs/noop/run', { body: { params: {}, delay: -1 } });
  t.equal(bad.status, 400);
  t.same(bad.json, {
    statusCode: 400,
    code: 'INVALID_BODY',
    error: 'Bad Request',
    message: 'body.delay: Too small: expected number to be >=0',
    issues: [{ path: 'body.delay', message: 'Too small: expected number to be >=0' }],
  });
  const unknown = await request('POST', '/jobs/noop/run', { body: { param: {} } });
  t.same(unknown.json, {
    statusCode: 400,
    code: 'INVALID_BODY',
    error: 'Bad Request',
    message: 'body: Unrecognized key: "param"',
    issues: [{ path: 'body', message: 'Unrecognized key: "param"' }],
  });
  // A name the check admits reaches the route: 404 for a job that does not exist.
  const missing = await request('POST', `/jobs/${'x'.repeat(200)}/run`);
  t.equal(missing.status, 404);
  t.match(missing.json, { code: 'JOB_NOT_FOUND' });
});
