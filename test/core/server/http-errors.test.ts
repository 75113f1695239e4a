import t from 'tap';
import { ERROR_CODES, HostError } from '../../../core/contract/errors.js';
import { clientMessage, errorBody, toHttpError } from '../../../core/server/http-errors.js';

t.test('HostErrors keep their code, status and details', async (t) => {
  t.same(toHttpError(new HostError('SKIPPED', 'overlap: busy', { reason: 'overlap', job: 'a' })), {
    statusCode: 409,
    body: { statusCode: 409, code: 'SKIPPED', error: 'Conflict', message: 'overlap: busy', reason: 'overlap', job: 'a' },
    internal: false,
  });
  t.equal(toHttpError(new HostError('SHUTTING_DOWN', 'stopping')).internal, false, 'a 503 while stopping is expected, not a bug');
  t.equal(toHttpError(new HostError('INTERNAL', 'bug')).internal, true);
});

t.test('a full disk is a temporary 503 with Retry-After, not a 500', async (t) => {
  const answer = toHttpError(new HostError('STORE_WRITE_FAILED', 'the store cannot write (ENOSPC)', { retryAfter: 2, errno: 'ENOSPC' }));
  t.match(answer, {
    statusCode: 503,
    internal: false,
    headers: { 'retry-after': '2' },
    body: { code: 'STORE_WRITE_FAILED', error: 'Service Unavailable', retryAfter: 2, errno: 'ENOSPC' },
  });
  t.same(toHttpError(new HostError('STORE_WRITE_FAILED', 'x', { retryAfter: 0.2 })).headers, { 'retry-after': '1' }, 'whole seconds, at least 1');
  t.equal(toHttpError(new HostError('SHUTTING_DOWN', 'stopping')).headers, undefined);
});

t.test('details never override the four fields', async (t) => {
  t.same(errorBody('NOT_FOUND', 'no', { statusCode: 200, code: 'X', extra: 1 }), {
    statusCode: 404,
    code: 'NOT_FOUND',
    error: 'Not Found',
    message: 'no',
    extra: 1,
  });
});

t.test("fastify's client errors map by status; anything else is INTERNAL with a generic message", async (t) => {
  t.match(toHttpError(Object.assign(new Error('Body is too large'), { statusCode: 413 })), {
    statusCode: 413,
    body: { code: 'PAYLOAD_TOO_LARGE', message: 'Body is too large' },
  });
  t.match(toHttpError(Object.assign(new Error(''), { statusCode: 418 })), {
    statusCode: 400,
    body: { code: 'BAD_REQUEST', message: /could not be understood/ },
  });
  t.match(toHttpError({ validation: [{ instancePath: '/a/0', message: 'bad' }], validationContext: 'querystring' }), {
    statusCode: 400,
    body: { code: 'INVALID_BODY', message: 'querystring.a.0: bad', issues: [{ path: 'querystring.a.0', message: 'bad' }] },
  });
  for (const err of [new TypeError('x is undefined'), 'a string', null, Object.assign(new Error('db'), { statusCode: 502 })]) {
    t.match(toHttpError(err), { statusCode: 500, internal: true, body: { code: 'INTERNAL', message: 'internal error; the host logged the details' } });
  }
});

t.test("a failure of ours answers with the code's meaning: no message or details that name the server's files", async (t) => {
  // As the store makes it: the journal's path in the message and the details, the system error as the cause.
  const cause = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  const err = new HostError(
    'STORE_WRITE_FAILED',
    '/srv/jobhost/data/journal-3.ndjson: ENOSPC: no space left on device, write',
    { file: '/srv/jobhost/data/journal-3.ndjson' },
    { cause },
  );
  const { statusCode, body, internal } = toHttpError(err);
  t.equal(statusCode, 503, 'a full disk is a temporary unavailability');
  t.equal(internal, false, 'not logged per request: the store logs the failure, with the path, once');
  t.same(body, {
    statusCode: 503,
    code: 'STORE_WRITE_FAILED',
    error: 'Service Unavailable',
    message: `${ERROR_CODES.STORE_WRITE_FAILED.text} (ENOSPC)`,
    errno: 'ENOSPC',
  });
  t.notMatch(JSON.stringify(body), '/srv/jobhost');
  t.equal(
    toHttpError(new HostError('CONFIG_READ', '/etc/jobhost.json: EACCES', { file: '/etc/jobhost.json' })).body.message,
    ERROR_CODES.CONFIG_READ.text,
    'no cause, no suffix',
  );
  t.match(
    toHttpError(new HostError('SHUTTING_DOWN', 'the host is stopping: try again on another host')).body,
    { message: 'the host is stopping: try again on another host' },
    'a state of the host is told as it is',
  );
  t.equal(clientMessage('STORE_WRITE_FAILED', '/srv/x: ENOSPC'), ERROR_CODES.STORE_WRITE_FAILED.text);
  t.equal(clientMessage('INVALID_PARAMS', 'params.a: bad'), 'params.a: bad');
  t.equal(clientMessage('ECONNREFUSED', 'a code not of the table'), 'a code not of the table');
});
