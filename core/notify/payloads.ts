import { incidentOf, type Notification, opensIncident } from '../contract/notification.js';
import type { Destination } from '../contract/notify-config.js';

/**
 * What each kind of destination receives for a notification: the notification itself for a
 * webhook, the incoming-webhook JSON of Slack and Discord, an Events API v2 event for PagerDuty,
 * a mail's subject and text for email. Pure: no I/O, no secrets besides PagerDuty's routing key.
 */

/** A notification as it leaves the host: without its delivery records, with a link to its run. */
export interface OutgoingNotification extends Omit<Notification, 'deliveries'> {
  /** The run's page on the dashboard: under `server.publicUrl`, else where the host listens (null for a host without its server). */
  url: string | null;
}

export function outgoing(n: Notification, publicUrl: string | null): OutgoingNotification {
  const { deliveries: _, ...rest } = n;
  return { ...rest, url: publicUrl && n.runId ? `${publicUrl}/#/runs/${encodeURIComponent(n.runId)}` : null };
}

const COLOR: Record<string, number> = { succeeded: 0x2e7d32, failed: 0xc62828, retrying: 0xef6c00, canceled: 0x757575 };

/** What a notification is about, for a message whose title and message both rendered empty. */
const about = (n: OutgoingNotification): string => `${n.job || n.condition || 'jobhost'} ${n.status}`;

// Slack's blocks and Discord's fields refuse empty text (a 400, so a dead delivery): a custom
// title or message that renders empty leaves its block or field out.
/**
 * Slack's markup in `text` and mrkdwn: `&`, `<` and `>` escaped (Slack's rule), so a message that
 * holds `<!channel>` or `<https://…|label>` (an error's text) pings nobody and hides no link. At
 * most `max` characters, never cutting an escape in two.
 */
function slackText(s: string, max = Number.POSITIVE_INFINITY): string {
  const escaped = s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return escaped.length <= max ? escaped : escaped.slice(0, max).replace(/&[a-z]{0,3}$/, '');
}

function slack(n: OutgoingNotification): unknown {
  const link = n.url ? ` · <${n.url}|run ${n.runId}>` : n.runId ? ` · run ${n.runId}` : '';
  const title = n.title.trim();
  const message = n.message.trim();
  return {
    text: slackText(title && message ? `${n.title}: ${n.message}` : title || message || about(n)),
    blocks: [
      ...(title ? [{ type: 'header', text: { type: 'plain_text', text: n.title.slice(0, 150), emoji: false } }] : []),
      ...(message ? [{ type: 'section', text: { type: 'mrkdwn', text: slackText(n.message, 3000) } }] : []),
      { type: 'context', elements: [{ type: 'mrkdwn', text: `${n.job ? `*${slackText(n.job)}* · ` : ''}${n.status} · ${n.priority}${link}` }] },
    ],
  };
}

function discord(n: OutgoingNotification): unknown {
  const title = n.title.trim();
  const message = n.message.trim();
  return {
    embeds: [
      {
        ...(title || !message ? { title: (title ? n.title : about(n)).slice(0, 256) } : {}),
        ...(message && { description: n.message.slice(0, 4096) }),
        ...(n.url && { url: n.url }),
        color: COLOR[n.status] ?? 0x1565c0,
        timestamp: n.at,
        fields: [
          ...(n.job ? [{ name: 'Job', value: n.job, inline: true }] : []),
          { name: 'Status', value: n.status, inline: true },
          ...(n.runId ? [{ name: 'Run', value: n.runId, inline: true }] : []),
        ],
      },
    ],
    allowed_mentions: { parse: [] },
  };
}

const SEVERITY: Record<string, string> = { critical: 'critical', high: 'error', medium: 'warning', low: 'info' };

/**
 * PagerDuty Events API v2: a failure (slow, missed, a host alert starting) opens or adds to the
 * incident of its job (`dedup_key` = the job; a host alert's is `<host>:<condition>`); a success
 * or `recovered` resolves it. A test message is a trigger of its own (`jobhost-test:<id>`,
 * severity info): a resolve of nothing open is accepted and shown to nobody, and a key shared by
 * every test would fold a second test into the first one's alert.
 */
function pagerduty(n: OutgoingNotification, routingKey: string, source: string, test: boolean): unknown {
  const dedupKey = test ? `jobhost-test:${n.id}` : incidentOf(n);
  if (!test && !opensIncident(n)) return { routing_key: routingKey, event_action: 'resolve', dedup_key: dedupKey };
  return {
    routing_key: routingKey,
    event_action: 'trigger',
    dedup_key: dedupKey,
    payload: {
      summary: `${n.title}: ${n.message}`.slice(0, 1024),
      source,
      severity: test ? 'info' : (SEVERITY[n.priority] ?? 'error'),
      timestamp: n.at,
      component: n.job || n.condition,
      custom_details: { job: n.job, runId: n.runId, status: n.status, rule: n.rule, notification: n.id, tags: n.tags, ...(n.held && { held: n.held }) },
    },
    ...(n.url && { links: [{ href: n.url, text: `run ${n.runId}` }] }),
  };
}

/** The JSON body of an HTTP destination (every kind but email); `test`: a test message (`jobhost notify test`). */
export function httpBody(d: Exclude<Destination, { kind: 'email' }>, n: OutgoingNotification, source: string, test = false): unknown {
  switch (d.kind) {
    case 'webhook':
      return n;
    case 'slack':
      return slack(n);
    case 'discord':
      return discord(n);
    case 'pagerduty':
      return pagerduty(n, d.routingKey, source, test);
  }
}

/**
 * A mail: the subject is the title; the text is the message and where to see the run. Nothing of
 * its own outside ASCII, so a mail whose message is ASCII goes as plain 7-bit text, not quoted-printable.
 */
export function mail(n: OutgoingNotification): { subject: string; text: string } {
  // A host alert has no run nor job: its host says where.
  const where = n.url ? `Run: ${n.url}` : n.runId ? `Run: ${n.runId} (job ${n.job})` : n.job ? `Job: ${n.job}` : n.host ? `Host: ${n.host}` : null;
  const text = `${n.message}\n\n${where ? `${where}\n` : ''}Status: ${n.status}, priority ${n.priority}\n`;
  return { subject: n.title.replace(/[\r\n]+/g, ' ').slice(0, 998), text };
}
