import type { FastifySchemaCompiler } from 'fastify';
import { validatorCompiler as zodValidatorCompiler } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { eventParams, jobParams, noBody, noQuery, runParams, triggerBody } from './http-schemas.js';

/**
 * fastify's validator compiler: zod's (fastify-type-provider-zod), with a hand-written check in
 * front of the schemas every trigger meets (its path's name, its body). A request the check
 * admits is one zod admits unchanged, so it is handed on as it came; anything else goes to zod,
 * which gives every refusal its usual code and message. zod's parse of a trigger's params and
 * body (a copy of each) was ~1 µs of a trigger's ~74 µs on the main thread (issue 26);
 * test/core/server/fast-validate.test.ts checks the checks against zod.
 */

type Check = (data: unknown) => boolean;

/** `segment` (http-schemas.ts): a string of 1 to 200 characters. */
const isSegment = (v: unknown): boolean => typeof v === 'string' && v.length >= 1 && v.length <= 200;

/** A plain object (what JSON and the router give) with one key, `key`, holding a segment. */
function oneSegment(key: string): Check {
  return (data) => {
    if (typeof data !== 'object' || data === null || Array.isArray(data)) return false;
    let n = 0;
    for (const k in data) {
      if (k !== key || ++n > 1) return false;
    }
    return n === 1 && isSegment((data as Record<string, unknown>)[key]);
  };
}

/** `z.number().int()` of zod 4: a safe integer. */
const isInt = (v: unknown, min: number, max: number): boolean => Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max;
const isString = (v: unknown, min: number, max: number): boolean => typeof v === 'string' && v.length >= min && v.length <= max;

/** `triggerBody`: none, or an object of its five optional fields and no other. */
function isTriggerBody(data: unknown): boolean {
  if (data === null || data === undefined) return true;
  if (typeof data !== 'object' || Array.isArray(data)) return false;
  const body = data as Record<string, unknown>;
  for (const k in body) {
    const v = body[k];
    switch (k) {
      case 'params':
        if (v === undefined) return false; // absent and undefined differ in zod's output; JSON has no undefined
        break;
      case 'delay':
        if (!isInt(v, 0, Number.MAX_SAFE_INTEGER) && !isString(v, 0, 50)) return false;
        break;
      case 'runAt':
        if (!isString(v, 0, 100) && !(typeof v === 'number' && Number.isFinite(v) && v >= 0)) return false;
        break;
      case 'key':
        if (!isString(v, 1, 500)) return false;
        break;
      case 'priority':
        if (!isInt(v, -1_000_000, 1_000_000)) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

/** A plain object without keys (`noQuery`: a request without a query string has `{}`). */
function isEmptyObject(data: unknown): boolean {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return false;
  for (const _ in data) return false;
  return true;
}

const checks = new Map<z.ZodType, Check>([
  [triggerBody, isTriggerBody],
  [noQuery, isEmptyObject],
  [noBody, (data) => data === null || data === undefined || isEmptyObject(data)],
  [jobParams, oneSegment('name')],
  [runParams, oneSegment('id')],
  [eventParams, oneSegment('type')],
]);

export const validatorCompiler: FastifySchemaCompiler<z.ZodType> = (route) => {
  const zod = zodValidatorCompiler(route);
  const check = checks.get(route.schema);
  if (check === undefined) return zod;
  return (data) => (check(data) ? { value: data } : zod(data));
};

/** The check in front of a schema, if it has one (for the test that holds them to zod). */
export function fastCheck(schema: z.ZodType): Check | undefined {
  return checks.get(schema);
}
