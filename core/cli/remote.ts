import type { Command } from 'commander';
import type { AuditFilter, Client, TriggerBody } from './client.js';

/**
 * The commands that talk to a running host over its HTTP API and WebSocket (`run`, `tail`,
 * `store damage`, `store ack-damage`, `whoami`, `audit`), and the terminal plumbing they share with cli.ts.
 */

interface Globals {
  url: string;
  token?: string | undefined;
}

/** A line to stdout. */
export const out = (text: string): void => void process.stdout.write(`${text}\n`);
/** A line to stderr. */
export const err = (text: string): void => void process.stderr.write(`${text}\n`);

/** Ends the process once stdout and stderr have taken everything written. */
export async function exit(code: number): Promise<never> {
  await Promise.all([process.stdout, process.stderr].map((s) => new Promise((resolve) => s.write('', resolve))));
  process.exit(code);
}

/** The client for `--url` and `--token` (or JOBHOST_URL, JOBHOST_TOKEN). */
export async function clientOf(command: Command): Promise<Client> {
  const { url, token } = command.optsWithGlobals<Globals>();
  const { createClient } = await import('./client.js');
  return createClient({ url, token });
}

interface RunOptions {
  params?: unknown;
  delay?: number;
  key?: string;
  priority?: number;
  wait?: boolean;
  timeout?: number;
  json?: boolean;
}

/** `jobhost run`: triggers, and with `--wait` follows the run to its end. */
export async function runCommand(job: string, opts: RunOptions, command: Command): Promise<number> {
  const client = await clientOf(command);
  const body: TriggerBody = {
    ...(opts.params !== undefined && { params: opts.params }),
    ...(opts.delay !== undefined && { delay: opts.delay }),
    ...(opts.key !== undefined && { key: opts.key }),
    ...(opts.priority !== undefined && { priority: opts.priority }),
  };
  if (!opts.wait) {
    const runId = await client.trigger(job, body);
    out(opts.json ? JSON.stringify({ runId }) : runId);
    return 0;
  }

  const [{ triggerAndWait }, { formatMs, palette, useColor }, { createRunReporter }] = await Promise.all([
    import('./client-wait.js'),
    import('./format.js'),
    import('./progress.js'),
  ]);
  const color = palette(useColor(process.stderr));
  const reporter = createRunReporter(process.stderr, {
    live: Boolean(process.stderr.isTTY),
    color,
    columns: () => process.stderr.columns || 80,
  });
  let runId: string | undefined;
  // Ctrl-C stops the waiting, not the run.
  process.once('SIGINT', () => {
    reporter.end();
    err(runId ? `stopped waiting; run ${runId} goes on (jobhost tail --job ${job})` : 'stopped');
    void exit(130);
  });
  const run = await triggerAndWait(client, job, body, {
    timeoutMs: opts.timeout,
    onTriggered: (id) => {
      runId = id;
      if (!opts.json) out(id);
    },
    onEvent: (e) => reporter.event(e),
    onLog: (line) => reporter.log(line),
    onRun: (r) => reporter.run(r),
    onNotice: (message) => reporter.notice(message),
  });
  reporter.end();
  if (opts.json) out(JSON.stringify(run, null, 2));
  const took = run.durationMs === null ? '' : ` in ${formatMs(run.durationMs)}`;
  const attempts = run.attempts.length > 1 ? ` after ${run.attempts.length} attempts` : '';
  if (run.status === 'succeeded') {
    err(color.green(`succeeded${took}${attempts}`));
    if (!opts.json && run.result !== undefined && run.result !== null) out(JSON.stringify(run.result, null, 2));
    return 0;
  }
  const error = run.error ? `${run.error.code}: ${run.error.message}` : 'no error recorded';
  err(color.red(`${run.status}${took}${attempts}: ${error}`));
  return 1;
}

interface TailOptions {
  job?: string[];
  type?: string[];
  since?: number;
  json?: boolean;
  logs?: boolean;
}

/** `jobhost tail`: follows the event stream, reconnecting and resuming after the last seq. */
export async function tailCommand(opts: TailOptions, command: Command): Promise<number> {
  const client = await clientOf(command);
  const [{ openEventStream }, { formatEvent, formatLogEvent, palette, useColor }, { logLineSchema }] = await Promise.all([
    import('./client-stream.js'),
    import('./format.js'),
    import('./client.js'),
  ]);
  const color = palette(useColor(process.stdout));
  const note = palette(useColor(process.stderr)).dim;
  const stream = openEventStream({ url: client.url, token: client.token, job: opts.job, type: opts.type, since: opts.since, logs: opts.logs });
  let first = true;
  stream.on('open', (hello) => {
    if (hello.gap)
      err(note(`events after seq ${hello.since ?? '?'} are no longer all buffered (the host restarted, or they left its buffer): some may be missing`));
    err(
      note(
        first
          ? `following ${client.url}/events from seq ${stream.cursor ?? hello.seq} (Ctrl-C to stop)`
          : `reconnected; resuming after seq ${stream.cursor ?? hello.seq}`,
      ),
    );
    first = false;
  });
  stream.on('drop', ({ code, reason }) => err(note(`connection lost (${code}${reason ? ` ${reason}` : ''}); reconnecting…`)));
  const columns = (): number => (process.stdout.isTTY ? process.stdout.columns || Infinity : Infinity);
  stream.on('event', (e) => {
    if (opts.json) return out(JSON.stringify(e));
    const lines = e.type === 'run.log' ? logLineSchema.array().safeParse((e.data as { lines?: unknown }).lines) : undefined;
    if (lines?.success) for (const text of formatLogEvent(e, lines.data, color, columns())) out(text);
    else out(formatEvent(e, color, columns()));
  });
  await stream.ready;
  await stream.done;
  return 0;
}

/** `jobhost store damage`: lists the damage reports. */
export async function damageCommand(opts: { json?: boolean }, command: Command): Promise<number> {
  const reports = await (await clientOf(command)).damage();
  if (opts.json) {
    out(JSON.stringify(reports, null, 2));
    return 0;
  }
  if (reports.length === 0) out('no damage found in the store');
  for (const r of reports) {
    const state = r.acknowledgedAt === null ? 'not acknowledged' : `acknowledged ${r.acknowledgedAt}`;
    out(`${r.id}  ${r.file}  line${r.lines.length === 1 ? '' : 's'} ${r.lines.join(', ') || '-'}  found ${r.foundAt}  ${state}`);
    out(`  ${r.message}`);
  }
  return 0;
}

/** `jobhost store ack-damage`: acknowledges reports (all when no id is given). */
export async function ackDamageCommand(ids: string[], opts: { json?: boolean }, command: Command): Promise<number> {
  const result = await (await clientOf(command)).ackDamage(ids.length > 0 ? ids : undefined);
  if (opts.json) out(JSON.stringify(result, null, 2));
  else {
    if (result.acknowledged.length === 0 && result.unknown.length === 0) out('nothing to acknowledge');
    for (const r of result.acknowledged) out(`acknowledged ${r.id}  ${r.file}`);
  }
  for (const id of result.unknown) err(`no damage report ${id} (jobhost store damage lists them)`);
  return result.unknown.length > 0 ? 1 : 0;
}

/** `jobhost notify test <destination>`: a test message, and what the receiver answered; exits 1 unless it took it. */
export async function notifyTestCommand(name: string, opts: { json?: boolean; timeout?: number }, command: Command): Promise<number> {
  const r = await (await clientOf(command)).testDestination(name, opts.timeout);
  if (opts.json) out(JSON.stringify(r, null, 2));
  else {
    out(`${r.ok ? 'delivered' : 'not delivered'}: ${r.name} (${r.kind}, ${r.target}) in ${r.durationMs} ms`);
    if (r.status !== null) out(`  the receiver answered ${r.status}${r.body ? `: ${r.body.replace(/\s+/g, ' ').trim().slice(0, 500)}` : ''}`);
    if (r.error) out(`  ${r.error.code}: ${r.error.message}`);
  }
  return r.ok ? 0 : 1;
}

/** `jobhost notify destinations`: where notifications can go (no secrets), and how many deliveries wait. */
export async function destinationsCommand(opts: { json?: boolean }, command: Command): Promise<number> {
  const d = await (await clientOf(command)).destinations();
  if (opts.json) out(JSON.stringify(d, null, 2));
  else {
    if (d.items.length === 0) out('no destinations (notifications.destinations in the config file)');
    for (const x of d.items) out(`${x.name}  ${x.kind}  ${x.target}`);
    out(`${d.open} deliver${d.open === 1 ? 'y' : 'ies'} waiting`);
  }
  return 0;
}

/** `jobhost pause <job>` / `jobhost resume <job>`, or with `--queue <name>` a queue (SPEC §13). */
export async function pauseCommand(paused: boolean, job: string | undefined, opts: { queue?: string; json?: boolean }, command: Command): Promise<number> {
  if ((job === undefined) === (opts.queue === undefined)) {
    err(`jobhost ${paused ? 'pause' : 'resume'}: name a job, or a queue with --queue <name> (not both)`);
    return 2;
  }
  const [kind, name] = opts.queue !== undefined ? (['queue', opts.queue] as const) : (['job', job!] as const);
  const answer = await (await clientOf(command)).setPaused(kind, name, paused);
  if (opts.json) out(JSON.stringify(answer, null, 2));
  else if (paused) out(`${kind} ${name} paused: triggers are recorded, no run starts until \`jobhost resume${kind === 'queue' ? ' --queue' : ''} ${name}\``);
  else out(`${kind} ${name} resumed${answer.paused ? ' (still held: its queue is paused)' : ''}`);
  return 0;
}

/** `jobhost whoami`: the token's name and role (and an operator's jobs). */
export async function whoamiCommand(opts: { json?: boolean }, command: Command): Promise<number> {
  const me = await (await clientOf(command)).whoami();
  if (opts.json) out(JSON.stringify(me, null, 2));
  else out(`${me.name}  ${me.role}${me.jobs ? `  jobs: ${me.jobs.join(', ')}` : ''}`);
  return 0;
}

/** `jobhost audit`: the audit trail, newest first, one line per record. */
export async function auditCommand(opts: Omit<AuditFilter, 'token'> & { by?: string; json?: boolean }, command: Command): Promise<number> {
  const { json, by, ...filter } = opts;
  const page = await (await clientOf(command)).audit({ ...filter, ...(by !== undefined && { token: by }) });
  if (json) {
    out(JSON.stringify(page, null, 2));
    return 0;
  }
  if (page.items.length === 0) out('no audit records');
  for (const r of page.items) out([r.at, r.token, r.action, r.target, r.outcome + (r.code ? ` ${r.code}` : ''), r.ip].join('  '));
  if (page.next) err(`more: --before ${page.next}`);
  return 0;
}
