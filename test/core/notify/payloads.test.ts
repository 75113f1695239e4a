import t from 'tap';
import type { Notification } from '../../../core/contract/notification.js';
import { httpBody, mail, outgoing } from '../../../core/notify/payloads.js';

/** What Slack and Discord receive when a custom title or message renders empty: no block or field they refuse. */

const base: Notification = {
  id: 'n1',
  job: 'export',
  runId: 'r1',
  status: 'failed',
  title: 'Export failed',
  message: 'disk on fire',
  priority: 'high',
  tags: [],
  at: '2026-12-07T10:00:00.000Z',
  rule: 'failed',
  deliveries: [],
};
const slack = { kind: 'slack', url: 'https://hooks.example.com/services/T/B/X' } as const;
const discord = { kind: 'discord', url: 'https://discord.example.com/api/webhooks/1/abc' } as const;

/** Every text of a Slack block (Block Kit refuses an empty one). */
function texts(body: unknown): string[] {
  const { blocks } = body as { blocks: Array<{ text?: { text: string }; elements?: Array<{ text: string }> }> };
  return blocks.flatMap((b) => [...(b.text ? [b.text.text] : []), ...(b.elements ?? []).map((e) => e.text)]);
}

t.test('Slack: a header and a section when both render; none empty when either or both render empty', async (t) => {
  const full = httpBody(slack, outgoing(base, null), 'host') as { text: string; blocks: Array<{ type: string }> };
  t.same(
    full.blocks.map((b) => b.type),
    ['header', 'section', 'context'],
  );
  t.equal(full.text, 'Export failed: disk on fire');
  for (const [title, message, text, types] of [
    ['', 'disk on fire', 'disk on fire', ['section', 'context']],
    ['Export failed', ' ', 'Export failed', ['header', 'context']],
    ['', '', 'export failed', ['context']],
  ] as const) {
    const body = httpBody(slack, outgoing({ ...base, title, message }, null), 'host') as { text: string; blocks: Array<{ type: string }> };
    t.equal(body.text, text, `text with title ${JSON.stringify(title)}, message ${JSON.stringify(message)}`);
    t.same(
      body.blocks.map((b) => b.type),
      types,
    );
    t.ok(
      texts(body).every((s) => s.trim().length > 0),
      'no empty text',
    );
  }
  const host = httpBody(slack, outgoing({ ...base, job: '', title: '', message: '', host: 'h1', condition: 'store-not-writable' }, null), 'host') as {
    text: string;
  };
  t.equal(host.text, 'store-not-writable failed', 'a host alert names its condition');
  t.notMatch(texts(host).join('\n'), /\*\*/, 'no empty bold job name');
});

t.test('Discord: no empty title, description or field', async (t) => {
  const embed = (n: Notification) => (httpBody(discord, outgoing(n, null), 'host') as { embeds: Array<Record<string, unknown>> }).embeds[0]!;
  t.match(embed(base), { title: 'Export failed', description: 'disk on fire' });
  const noTitle = embed({ ...base, title: '' });
  t.notOk('title' in noTitle, 'no title');
  t.equal(noTitle['description'], 'disk on fire');
  const noMessage = embed({ ...base, message: '' });
  t.notOk('description' in noMessage, 'no description');
  t.equal(noMessage['title'], 'Export failed');
  t.equal(embed({ ...base, title: '', message: '' })['title'], 'export failed', 'neither: what it is about');
  const host = embed({ ...base, job: '', host: 'h1', condition: 'store-not-writable' });
  t.notOk(
    (host['fields'] as Array<{ name: string; value: string }>).some((f) => f.value === ''),
    'no empty field value',
  );
});

t.test("Slack: &, < and > of a message are escaped (no @channel ping, no disguised link); the run's own link is kept", async (t) => {
  const message = 'value <!channel> must be < 5 & > 1 <https://evil.example|click here>';
  const body = httpBody(slack, { ...outgoing({ ...base, message }, null), url: 'https://jobs.example.com/runs/r1' }, 'host') as {
    text: string;
    blocks: Array<{ type: string; text?: { text: string }; elements?: Array<{ text: string }> }>;
  };
  const escaped = 'value &lt;!channel&gt; must be &lt; 5 &amp; &gt; 1 &lt;https://evil.example|click here&gt;';
  t.equal(body.text, `Export failed: ${escaped}`);
  t.equal(body.blocks[1]!.text!.text, escaped);
  t.equal(body.blocks[0]!.text!.text, 'Export failed', 'the header is plain text: shown as written');
  t.match(body.blocks[2]!.elements![0]!.text, /<https:\/\/jobs\.example\.com\/runs\/r1\|run r1>$/);
  const long = httpBody(slack, outgoing({ ...base, message: `${'x'.repeat(2998)}&y` }, null), 'host') as { blocks: Array<{ text?: { text: string } }> };
  t.equal(long.blocks[1]!.text!.text, 'x'.repeat(2998), 'cut at 3000 without half an escape');
});

t.test('email: a run is named by its link or id, a job alert by its job, a host alert by its host; never an empty line', async (t) => {
  t.match(mail(outgoing(base, 'https://jobs.example.com')).text, /\n\nRun: https:\/\/jobs\.example\.com\/#\/runs\/[^\n]+\nStatus: /);
  const missed = { ...base, runId: '', rule: 'missed', status: 'missed' } as Notification;
  t.match(mail(outgoing(missed, null)).text, /\n\nJob: export\nStatus: missed/);
  const hostAlert = { ...base, runId: '', job: '', rule: 'host', host: 'web-1:4242', condition: 'event-loop-stalled' } as Notification;
  const text = mail(outgoing(hostAlert, null)).text;
  t.match(text, /\n\nHost: web-1:4242\nStatus: /);
  t.notMatch(text, /Job: \n/);
});
