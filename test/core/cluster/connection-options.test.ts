import t from 'tap';
import { connectFailure } from '../../../core/cluster/connection-options.js';

/** What a failed connect says as the reason of a start error: the cause, in words, never ioredis's own retry wording. */

t.test("through Sentinel: the Sentinels' last answer is the reason, not 'All sentinels are unreachable. Retrying…'", async (t) => {
  const unknownName = new Error('All sentinels are unreachable. Retrying from scratch after 1400ms. Last error: ERR No such master with that name');
  t.equal(connectFailure(unknownName), 'ERR No such master with that name: the Sentinels know no master of that name (backend.name)');
  const down = new Error('All sentinels are unreachable. Retrying from scratch after 200ms.');
  t.equal(connectFailure(down), 'no Sentinel of backend.sentinels answered');
  const other = new Error('All sentinels are unreachable. Retrying from scratch after 200ms. Last error: connect ECONNREFUSED 127.0.0.1:26379');
  t.match(connectFailure(other), /^no Sentinel of backend\.sentinels gave the master's address \(last error: connect ECONNREFUSED/);
  t.notMatch(connectFailure(unknownName), /Retrying/);
});

t.test('codes are explained; anything else is its code or message', async (t) => {
  const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
  t.match(connectFailure(reset, true), /^ECONNRESET: Redis closed the connection as it opened/, 'over TLS without a client certificate: the usual cause named');
  t.equal(connectFailure(reset), 'ECONNRESET', 'anywhere else (a Redis gone away, no TLS, a certificate given): the code alone');
  const asked = Object.assign(new Error('error:0A00045C:SSL routines::tlsv13 alert certificate required'), {
    code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  });
  t.equal(
    connectFailure(asked),
    'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: the server asks for a client certificate: backend.tls.cert and key',
    "TLS 1.3's alert for the same cause, when it comes before the reset",
  );
  t.match(connectFailure(new Error('WRONGPASS invalid username-password pair')), /^WRONGPASS: wrong user name or password/);
  t.equal(connectFailure(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })), 'ECONNREFUSED');
});
