import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { Webhook } from 'standardwebhooks';
import type { Tap } from './helpers.js';

/**
 * Receivers for delivered notifications, real servers on 127.0.0.1 and a free port, closed when
 * the test ends: an HTTP receiver (webhooks verified with `standardwebhooks`, Slack, Discord and
 * PagerDuty shapes) whose answers the test scripts, and an SMTP server (`smtp-server`).
 */

export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  json: unknown;
  /** For a webhook receiver with a secret: whether `Webhook.verify` accepted it (its error otherwise). */
  verified: true | string | null;
}

/** What the receiver answers to one request: a status (and headers, body), or `hang` / `close` (the socket is destroyed). */
export type Answer = { status: number; headers?: Record<string, string>; body?: string } | 'hang' | 'close' | 'garbage';

export interface HttpReceiver {
  url: string;
  port: number;
  received: Received[];
  /** Answers to give, in order; once used up, `fallback`. */
  script(...answers: Answer[]): void;
  fallback: Answer;
  /** Resolves once `n` requests have arrived (rejects after `ms`). */
  count(n: number, ms?: number): Promise<void>;
  close(): Promise<void>;
}

/** A fresh Standard Webhooks secret. */
export function newSecret(): string {
  return `whsec_${Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff)).toString('base64')}`;
}

export async function httpReceiver(t: Tap, options: { secret?: string; port?: number } = {}): Promise<HttpReceiver> {
  const received: Received[] = [];
  const answers: Answer[] = [];
  const hanging = new Set<import('node:http').ServerResponse>();
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const receiver: HttpReceiver = {
    url: '',
    port: 0,
    received,
    fallback: { status: 200, body: 'ok' },
    script: (...a) => void answers.push(...a),
    count: (n, ms = 10_000) =>
      new Promise<void>((resolve, reject) => {
        if (received.length >= n) return resolve();
        const timer = setTimeout(() => reject(new Error(`${received.length} of ${n} requests arrived within ${ms} ms`)), ms);
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json: unknown = null;
      try {
        json = JSON.parse(body);
      } catch {
        // not JSON
      }
      let verified: true | string | null = null;
      if (options.secret) {
        try {
          new Webhook(options.secret).verify(body, req.headers as Record<string, string>);
          verified = true;
        } catch (err) {
          verified = (err as Error).message;
        }
      }
      received.push({ path: req.url ?? '/', headers: req.headers, body, json, verified });
      for (const w of waiters.filter((w) => received.length >= w.n)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
      const answer = answers.shift() ?? receiver.fallback;
      if (answer === 'hang') {
        hanging.add(res);
        return;
      }
      if (answer === 'close') {
        req.socket.destroy();
        return;
      }
      if (answer === 'garbage') {
        req.socket.end('SPLAT not http at all\r\n\r\n');
        return;
      }
      res.writeHead(answer.status, { 'content-type': 'text/plain', ...answer.headers });
      res.end(answer.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  receiver.port = (server.address() as AddressInfo).port;
  receiver.url = `http://127.0.0.1:${receiver.port}`;
  t.teardown(async () => {
    for (const res of hanging) res.destroy();
    server.closeAllConnections();
    await receiver.close();
  });
  return receiver;
}

export interface Mail {
  from: string;
  to: string[];
  raw: string;
  subject: string;
}

export interface SmtpReceiver {
  url: string;
  mails: Mail[];
  /** SMTP reply codes to refuse the next messages with (e.g. 451, 550), in order. */
  refuse(...codes: number[]): void;
  count(n: number, ms?: number): Promise<void>;
}

export interface SmtpOptions {
  /** Offer STARTTLS with smtp-server's own self-signed certificate, as a default smtp-server does. */
  starttls?: boolean;
  /** Require AUTH with these credentials (over STARTTLS when offered). */
  auth?: { user: string; pass: string };
}

/** A real SMTP server (smtp-server) on a free port; by default no TLS, no auth. */
export async function smtpReceiver(t: Tap, options: SmtpOptions = {}): Promise<SmtpReceiver> {
  const mails: Mail[] = [];
  const refusals: number[] = [];
  const { auth } = options;
  const server = new SMTPServer({
    authOptional: !auth,
    disabledCommands: [...(options.starttls ? [] : ['STARTTLS']), ...(auth ? [] : ['AUTH'])],
    ...(auth && {
      allowInsecureAuth: !options.starttls,
      onAuth(a, _session, callback) {
        if (a.username === auth.user && a.password === auth.pass) callback(null, { user: a.username });
        else callback(Object.assign(new Error('bad credentials'), { responseCode: 535 }));
      },
    }),
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const code = refusals.shift();
        if (code !== undefined) {
          callback(Object.assign(new Error(`refused by the test (${code})`), { responseCode: code }));
          return;
        }
        const raw = Buffer.concat(chunks).toString('utf8');
        const subject = /^Subject: (.*)$/im.exec(raw)?.[1]?.trim() ?? '';
        mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          subject,
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.server.address() as AddressInfo).port;
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return {
    url: `smtp://127.0.0.1:${port}`,
    mails,
    refuse: (...codes) => void refusals.push(...codes),
    count: async (n, ms = 10_000) => {
      const deadline = Date.now() + ms;
      while (mails.length < n) {
        if (Date.now() > deadline) throw new Error(`${mails.length} of ${n} mails arrived within ${ms} ms`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
  };
}
