import t from 'tap';
import { HostError, isHostError, toRunError } from '../../../core/contract/errors.js';

t.test('toRunError names an error by its own code, its class, or a class of the plugin that reads as one', async (t) => {
  t.same(toRunError(new HostError('TIMEOUT', 'late')), { code: 'TIMEOUT', message: 'late' });
  t.same(toRunError(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })), { code: 'ECONNREFUSED', message: 'refused' });
  t.same(toRunError(new TypeError('bad')), { code: 'TypeError', message: 'bad' });
  class QuotaError extends Error {}
  t.same(toRunError(new QuotaError('over')), { code: 'QuotaError', message: 'over' });
  // A minifier's names, an esbuild rename: not codes anyone reads.
  const minified = { e: class extends Error {} }.e;
  const renamed = { QuotaError2: class extends Error {} }.QuotaError2;
  t.equal(toRunError(new minified('x')).code, 'HANDLER_ERROR');
  t.equal(toRunError(new renamed('x')).code, 'HANDLER_ERROR');
});

t.test('toRunError never throws and bounds what it keeps; isHostError survives a Proxy', async (t) => {
  const trap = new Proxy(
    {},
    {
      getPrototypeOf: () => {
        throw new Error('trap');
      },
      get: () => {
        throw new Error('trap');
      },
    },
  );
  t.equal(isHostError(trap), false);
  t.same(toRunError(trap), { code: 'HANDLER_ERROR', message: 'non-Error thrown: a value that cannot be described' });
  const long = toRunError(new Error('x'.repeat(10_000)));
  t.equal(long.message.length, 8192 + '… (1808 more characters)'.length);
  t.equal(toRunError(Object.assign(new Error('m'), { code: 'C'.repeat(500) })).code.length, 100);
});
