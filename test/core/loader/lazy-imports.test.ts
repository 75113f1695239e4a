import { createRequire } from 'node:module';
import t from 'tap';

// What `jobhost start` loads before it serves: only what every host needs. A notification
// destination's client (standardwebhooks here, CommonJS so the require cache shows it; nodemailer
// likewise, ESM) is loaded by the first delivery that uses it.
t.test('starting the app module loads no notification client', async (t) => {
  const cache = createRequire(import.meta.url).cache;
  const loaded = (pkg: string): boolean => Object.keys(cache).some((file) => file.includes(`/node_modules/${pkg}/`));
  t.notOk(loaded('standardwebhooks'), 'not loaded before');
  await import('../../../core/loader/app.js');
  t.ok(loaded('fastify'), 'the app module and its server did load');
  t.notOk(loaded('standardwebhooks'), 'standardwebhooks is not loaded by the start');
  const { send } = await import('../../../core/notify/send.js');
  t.type(send, 'function');
  t.notOk(loaded('standardwebhooks'), 'nor by the notification module itself');
});
