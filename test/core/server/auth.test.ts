import t from 'tap';
import { assertSafeBind, bearerToken, isLoopback } from '../../../core/server/auth.js';

t.test('isLoopback: only addresses this machine alone can reach', async (t) => {
  for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) t.ok(isLoopback(host), host);
  for (const host of ['0.0.0.0', '::', '192.168.1.2', '10.0.0.1', 'example.com', '128.0.0.1', '::ffff:10.0.0.1', 'localhost.evil.com', '127.0.0.1.nip.io'])
    t.notOk(isLoopback(host), host);
});

t.test('assertSafeBind: a token makes any address acceptable', async (t) => {
  t.throws(() => assertSafeBind('::', null), { code: 'INSECURE_BIND', details: { host: '::' } });
  t.doesNotThrow(() => assertSafeBind('::', 'a-long-token'));
  t.doesNotThrow(() => assertSafeBind('127.0.0.1', null));
});

t.test('bearerToken (tokens are checked in access.ts: test/core/server/access.test.ts)', async (t) => {
  t.equal(bearerToken('Bearer abc'), 'abc');
  t.equal(bearerToken('bearer   abc  '), 'abc');
  t.equal(bearerToken('Basic abc'), undefined);
  t.equal(bearerToken('Bearer'), undefined);
  t.equal(bearerToken('Bearer a b'), undefined);
  t.equal(bearerToken(undefined), undefined);
});
