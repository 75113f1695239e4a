import t from 'tap';
import { parseConfig } from '../../../core/contract/config.js';
import { describeDestination, redact } from '../../../core/notify/notifier.js';

/** Secrets cut from what a receiver answers, also where the answer was cut short inside one. */

const config = parseConfig({
  notifications: {
    destinations: {
      slack: { kind: 'slack', url: 'https://hooks.example.com/services/T0SECRET/B1SECRET/xyzSECRETtoken' },
      pager: { kind: 'pagerduty', routingKey: 'R0UTINGKEY0123456789' },
      mail: { kind: 'email', smtp: 'smtp://me:sm7pPassWord@mail.example.com:587', from: 'a@example.com', to: ['b@example.com'] },
    },
  },
});
const d = config.notifications.destinations;

t.test('every secret of every destination is cut, whole or as the tail of a shortened text', async (t) => {
  t.equal(redact('bad key R0UTINGKEY0123456789 here', d), 'bad key … here');
  t.equal(redact('echo https://hooks.example.com/services/T0SECRET/B1SECRET/xyzSECRETtoken', d), 'echo …');
  t.equal(redact('login failed for sm7pPassWord', d), 'login failed for …');
  t.equal(redact('cut short: /services/T0SECRET/B1SEC', d), 'cut short: …', 'a tail that starts a secret');
  t.equal(redact('cut short: R0UTINGKEY01', d), 'cut short: …');
  t.equal(redact('nothing secret here', d), 'nothing secret here');
  t.same(describeDestination('slack', d['slack']!), { name: 'slack', kind: 'slack', target: 'https://hooks.example.com/…' });
  t.match(describeDestination('mail', d['mail']!), { target: 'smtp://mail.example.com:587 → b@example.com' });
});
