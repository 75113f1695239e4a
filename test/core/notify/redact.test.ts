import t from 'tap';
import { parseConfig } from '../../../core/contract/config.js';
import { describeDestination, redact } from '../../../core/notify/notifier.js';

/** Secrets cut from what a receiver answers, also where the answer was cut short inside one. */

const config = parseConfig({
  notifications: {
    destinations: {
      slack: { kind: 'slack', url: 'https://hooks.example.com/services/T0SECRET/B1SECRET/xyzSECRETtoken' },
      chat: { kind: 'discord', url: 'https://chat.example.com/api/webhooks/T0SECRET99/abc' },
      pager: { kind: 'pagerduty', routingKey: 'R0UTINGKEY0123456789' },
      short: { kind: 'pagerduty', routingKey: 'rk12' },
      hook: {
        kind: 'webhook',
        url: 'https://ops.example.com/notifications/integration?token=S3CRETVALUE42',
        headers: { 'x-api-key': 'k9z4-key-0', 'x-env': 'test' },
      },
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
  t.equal(redact('see /services/T0SECRET99/done', d), 'see /services/…/done', 'a segment alone, in the middle of other text');
  t.equal(redact('bad token xyzS3CRET in ?token=S3CRETVALUE42', d), 'bad token xyzS3CRET in ?…', 'nested secrets (the query and its value) make one cut');
  t.equal(redact('cut short: R0UTINGKEY01', d), 'cut short: …');
  t.equal(redact('nothing secret here', d), 'nothing secret here');
  t.equal(redact('401 invalid token S3CRETVALUE42', d), '401 invalid token …', 'a query value alone');
  t.equal(redact('token B1SECRET unknown', d), 'token … unknown', 'a path segment alone');
  t.equal(redact('notifications are off for this integration', d), 'notifications are off for this integration', 'plain words of a URL are not secrets');
  t.equal(redact('bad routing_key rk12, bad key k9z4-key-0', d), 'bad routing_key …, bad key …', 'a short routing key, a header value');
  t.equal(redact('a test message', d), 'a test message', 'a header value as short as a word is not cut from words');
  t.equal(redact('see /services/ and the webhooks docs', d), 'see /services/ and the webhooks docs', 'short path segments are words, not secrets');
  t.same(describeDestination('slack', d['slack']!), { name: 'slack', kind: 'slack', target: 'https://hooks.example.com/…' });
  t.match(describeDestination('mail', d['mail']!), { target: 'smtp://mail.example.com:587 → b@example.com' });
});

t.test("a URL's credentials are cut as they travel too: the Basic value the host sends, SMTP AUTH's", async (t) => {
  const withAuth = parseConfig({
    notifications: {
      destinations: {
        hook: { kind: 'webhook', url: 'http://hookuser:HookPassw%30rd99@127.0.0.1:9/say' },
        mail: { kind: 'email', smtp: 'smtp://me:sm7pPassWord@mail.example.com:587', from: 'a@example.com', to: ['b@example.com'] },
      },
    },
  }).notifications.destinations;
  const basic = Buffer.from('hookuser:HookPassw0rd99').toString('base64');
  t.equal(redact(`auth failed (Basic ${basic})`, withAuth), 'auth failed (Basic …)', 'the decoded pair, as Node sends it');
  const plain = Buffer.from('\0me\0sm7pPassWord').toString('base64');
  const login = Buffer.from('sm7pPassWord').toString('base64');
  t.equal(redact(`535 bad AUTH PLAIN ${plain} / LOGIN ${login}`, withAuth), '535 bad AUTH PLAIN … / LOGIN …');
});

t.test('a whole text keeps a tail that only starts a secret; a text cut short loses it', async (t) => {
  const inbox = parseConfig({ notifications: { destinations: { hook: { kind: 'webhook', url: 'https://ops.example.com/notifications/inbox' } } } });
  const hook = inbox.notifications.destinations;
  t.equal(redact('this receiver takes no notifications', hook, { cutShort: false }), 'this receiver takes no notifications');
  t.equal(redact('this receiver takes no notifications', hook, { cutShort: true }), 'this receiver takes no …', 'cut short, it may have been cut in the path');
  t.equal(redact('wrong path /notifications/inbox', hook, { cutShort: false }), 'wrong path …', 'a secret whole is cut all the same');
});

t.test('a part of a routing key, webhook secret or password is cut from 8 characters; plain words are not', async (t) => {
  const keys = parseConfig({
    notifications: {
      destinations: {
        pager: { kind: 'pagerduty', routingKey: 'R0UT1NGKEYsecret123' },
        hook: { kind: 'webhook', url: 'https://ops.example.com/in', secret: 'whsec_rn9CdC/HeBYgEtbCW26P2/OL1b33fVcA' },
        mail: { kind: 'email', smtp: 'smtp://me:correct-horse-Password@mail.example.com:587', from: 'a@example.com', to: ['b@example.com'] },
      },
    },
  }).notifications.destinations;
  const cut = (text: string) => redact(text, keys, { cutShort: false });
  t.equal(cut('{"errors":["Routing key R0UT1NGKEY is invalid"]}'), '{"errors":["Routing key … is invalid"]}', 'the start of a routing key');
  t.equal(cut('unknown key secret123'), 'unknown key …', 'its end');
  t.equal(cut('bad signature for CW26P2/OL1b'), 'bad signature for …', 'the middle of a webhook secret');
  t.equal(cut('no such user me / HeBYgEtb'), 'no such user me / …', 'a part of letters alone that is no word (a capital after a small letter)');
  t.equal(cut('login correct-horse refused'), 'login … refused', 'a part of a password with a dash');
  t.equal(cut('R0UT1NG is short'), 'R0UT1NG is short', 'under 8 characters: not cut');
  t.equal(cut('the Password is wrong'), 'the Password is wrong', 'a plain word of a password stays');
  t.equal(cut('routing key is invalid: secret routing keys are not accepted'), 'routing key is invalid: secret routing keys are not accepted');
});

t.test("a header value's token and a query value are cut whole and in part; the header's plain words are not", async (t) => {
  const hooks = parseConfig({
    notifications: {
      destinations: {
        api: { kind: 'webhook', url: 'https://api.example.com/in?token=QtokSECRETq9x8', headers: { authorization: 'Bearer tok_SuperSecret123' } },
      },
    },
  }).notifications.destinations;
  const cut = (text: string) => redact(text, hooks, { cutShort: false });
  t.equal(cut('the receiver answered 401: invalid token tok_SuperSecret123'), 'the receiver answered 401: invalid token …', 'the token alone');
  t.equal(cut('unknown key SuperSecret'), 'unknown key …', 'a part of the token');
  t.equal(cut('bad token okSECRETq9x8'), 'bad token …', 'a part of a query value');
  t.equal(cut('Bearer authentication required'), 'Bearer authentication required', "the scheme's word stays");
  const plain = parseConfig({
    notifications: {
      destinations: {
        api: { kind: 'webhook', url: 'https://api.example.com/in?date=2024-01-01&format=json', headers: { authorization: 'Bearer SECRETKEYVALUE' } },
      },
    },
  }).notifications.destinations;
  const cutPlain = (text: string) => redact(text, plain, { cutShort: false });
  t.equal(cutPlain('invalid token SECRETKEYVALUE'), 'invalid token …', 'a token of letters alone, after its scheme');
  t.equal(cutPlain('request at 2024-01-15T10:00:00Z'), 'request at 2024-01-15T10:00:00Z', 'a query value not named like a credential is not cut in part');
});

t.test('a path of one segment is cut as a segment is: when it looks generated, not when it is a word', async (t) => {
  const dests = parseConfig({
    notifications: {
      destinations: {
        words: { kind: 'webhook', url: 'http://127.0.0.1:47011/receiver' },
        inbox: { kind: 'webhook', url: 'https://ops.example.com/notifications' },
        token: { kind: 'webhook', url: 'https://ops.example.com/a1b2c3d4e5' },
      },
    },
  }).notifications.destinations;
  t.equal(redact('the receiver answered 500: internal oops', dests), 'the receiver answered 500: internal oops', '/receiver is a word');
  t.equal(redact('invalid notifications payload', dests), 'invalid notifications payload', '/notifications is a word');
  t.equal(redact('unknown hook a1b2c3d4e5', dests), 'unknown hook …', 'a generated one-segment path is cut');
  t.equal(redact('echo http://127.0.0.1:47011/receiver', dests), 'echo …', 'the URL whole still is');
});
