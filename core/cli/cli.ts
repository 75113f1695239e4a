import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { parseDuration } from '../contract/duration.js';
import { packageJson } from '../contract/package-root.js';
import type { ClientError } from './client.js';
import { TEST_WAIT_MS } from './client-waits.js';
import {
  ackDamageCommand,
  auditCommand,
  clientOf,
  damageCommand,
  destinationsCommand,
  err,
  exit,
  notifyTestCommand,
  out,
  pauseCommand,
  runCommand,
  tailCommand,
  whoamiCommand,
} from './remote.js';

/**
 * `jobhost <command>` (SPEC §8). `start` and `validate` work on the project in the working
 * directory; `list`, `run`, `tail` talk to a running host over its HTTP API and WebSocket only
 * (`--url`, `--token` or JOBHOST_URL, JOBHOST_TOKEN), so they load none of the host's modules;
 * `init` makes the working directory a project, `new` scaffolds a plugin file. Exit codes: 0 ok,
 * 1 failed (an API error, a failed run, no host), 2 usage (bad arguments, a refused `new` or
 * `init`).
 *
 * Each command imports what it needs when it runs: under tsx every module costs, and `--help`
 * should not pay for zod and ws (~0.4 s of a ~0.8 s start).
 */

const version = packageJson().version;

/** By name: client.ts is loaded only by the commands that talk to a host. */
const isClientError = (error: unknown): error is ClientError => error instanceof Error && error.name === 'ClientError';

/** Prints what went wrong and returns the exit code. */
function report(error: unknown): number {
  if (isClientError(error)) {
    if (error.code === 'BAD_URL') {
      err(`error: --url: ${error.message}`);
      return 2;
    }
    err(`${error.code}: ${error.message}`);
    // The message already names the first problem; list them all when there are more.
    if (error.issues.length > 1) for (const issue of error.issues) err(`  - ${issue.path || '(params)'}: ${issue.message}`);
    return 1;
  }
  if (error instanceof Error && (error.name === 'ScaffoldError' || error.name === 'InitError')) {
    err(`error: ${error.message}`);
    return 2;
  }
  err(`INTERNAL: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  return 1;
}

/** An action that resolves with an exit code; errors are reported, then the process exits. */
function act<A extends unknown[]>(fn: (...args: A) => Promise<number>): (...args: A) => Promise<void> {
  return async (...args) => {
    let code: number;
    try {
      code = await fn(...args);
    } catch (error) {
      code = report(error);
    }
    await exit(code);
  };
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** The environment `start` and `validate` read the project from, with `--config` as JOBHOST_CONFIG. */
const projectEnv = (config: string | undefined): NodeJS.ProcessEnv => ({ ...process.env, ...(config ? { JOBHOST_CONFIG: config } : {}) });

function parseJson(value: string): unknown {
  try {
    return JSON.parse(value) as unknown;
  } catch (e) {
    throw new InvalidArgumentError(`not valid JSON (${e instanceof Error ? e.message : String(e)}); e.g. --params '{"dir":"/tmp"}'`);
  }
}

function parseInteger(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer of at least ${min}`);
    return n;
  };
}

/** A duration as everywhere in jobhost: milliseconds, or `'30s'`, `'5m'`, `'2h'`. */
function parseMs(value: string): number {
  try {
    return parseDuration(/^\d+$/.test(value) ? Number(value) : value);
  } catch {
    throw new InvalidArgumentError("expected milliseconds or a duration like '30s', '5m', '2h'");
  }
}

/** `notify test --timeout`: at most what Node's fetch waits for an answer's headers (300 s), less a margin. */
function parseTestWait(value: string): number {
  const ms = parseMs(value);
  if (ms > TEST_WAIT_MS) throw new InvalidArgumentError(`at most ${TEST_WAIT_MS / 1000}s (Node's fetch gives up on an answer after 300 s)`);
  return ms;
}

interface NewOptions {
  dir: string;
  schedule?: string;
  force?: boolean;
}

async function newCommand(name: string, opts: NewOptions): Promise<number> {
  const { scaffoldPlugin } = await import('./scaffold.js');
  const file = await scaffoldPlugin({ name, dir: opts.dir, schedule: opts.schedule, force: opts.force });
  const rel = file.startsWith(process.cwd()) ? file.slice(process.cwd().length + 1) : file;
  out(`created ${rel}`);
  err(`next: fill in the handler, then \`jobhost validate\`; a running host picks the file up by itself`);
  return 0;
}

async function initCommand(): Promise<number> {
  const { initProject } = await import('./init.js');
  const result = await initProject();
  for (const file of result.created) out(`created ${file}`);
  for (const file of result.kept) out(`kept    ${file} (already there)`);
  if (result.script) out(`added the "${result.script}" script to package.json: jobhost start`);
  if (result.dependencies.length > 0) out(`added ${result.dependencies.join(' and ')} to package.json's dependencies`);
  const install = result.dependencies.length > 0 ? '`npm install`, then ' : '';
  err(
    `next: ${install}\`npx jobhost start\` runs the host and prints the URL of its dashboard; \`npx jobhost run ${result.job} --wait\` then runs the example job`,
  );
  return 0;
}

/**
 * What `start` and `validate` run: the loader's app, handed in by the entry point (`core/bin.mjs`)
 * so the CLI imports nothing of the host itself.
 */
export interface Project {
  startApp(options: { env: NodeJS.ProcessEnv }): Promise<unknown>;
  validateProject(options: { env: NodeJS.ProcessEnv }): Promise<{
    problems: Array<{ file: string; code: string; message: string }>;
    warnings: Array<{ file: string; code: string; message: string }>;
    jobs: string[];
  }>;
}

/** The program; `start` and `validate` load the host's modules (through `project`) only when they run. */
function buildCli(project: () => Promise<Project>): Command {
  const program = new Command('jobhost')
    .description('An event-driven plugin host for background jobs')
    .version(version, '-V, --version', 'print the version')
    .addOption(
      new Option('--url <url>', "the host's API for list, run, tail, store, pause, resume, notify, whoami and audit")
        .env('JOBHOST_URL')
        .default('http://127.0.0.1:3000'),
    )
    .addOption(new Option('--token <token>', "the host's API token, if it has one").env('JOBHOST_TOKEN'))
    .configureHelp({ showGlobalOptions: true })
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(str) });

  // --url and --token are for the client commands; start and validate work on the project here.
  program
    .command('start')
    .configureHelp({ showGlobalOptions: false })
    .description('start the host with config/jobhost.json (or $JOBHOST_CONFIG) and the plugins directory')
    .addOption(new Option('--config <path>', 'config file').env('JOBHOST_CONFIG'))
    .action(async (opts: { config?: string }) => {
      const { startApp } = await project();
      const { isHostError } = await import('../contract/errors.js');
      const env = projectEnv(opts.config);
      try {
        await startApp({ env });
      } catch (error) {
        console.error(`jobhost: cannot start: ${isHostError(error) ? `${error.code} ${error.message}` : String(error)}`);
        process.exit(1);
      }
    });

  program
    .command('validate')
    .configureHelp({ showGlobalOptions: false })
    .description('check the config file and every plugin file; exits 1 with the reasons if any is invalid')
    .addOption(new Option('--config <path>', 'config file').env('JOBHOST_CONFIG'))
    .action(async (opts: { config?: string }) => {
      const { validateProject } = await project();
      const env = projectEnv(opts.config);
      const { problems, warnings, jobs } = await validateProject({ env });
      for (const w of warnings) console.log(`warning  ${w.file}  ${w.code}  ${w.message}`);
      for (const p of problems) console.log(`error    ${p.file}  ${p.code}  ${p.message}`);
      if (problems.length > 0) {
        console.log(`${problems.length} problem${problems.length > 1 ? 's' : ''} found`);
        process.exit(1);
      }
      console.log(`ok: config and ${jobs.length} plugin${jobs.length === 1 ? '' : 's'} valid (${jobs.join(', ')})`);
      // Plugin files may leave timers behind at import; validation is done.
      process.exit(0);
    });

  program
    .command('list')
    .description("list the host's jobs: schedule, enabled, paused (the job or its queue), next run, last run, run counts; in cluster mode, the live hosts too")
    .option('--json', 'print the jobs as JSON')
    .addHelpText('after', "\nExamples:\n  jobhost list\n  jobhost list --json | jq -r '.[].name'")
    .action(
      act(async (opts: { json?: boolean }, command: Command) => {
        const { formatHosts, formatJobs, palette, useColor } = await import('./format.js');
        const client = await clientOf(command);
        // A host older than GET /cluster answers 404: it is alone as far as this list can tell.
        const [jobs, cluster] = await Promise.all([client.jobs(), client.cluster().catch(() => null)]);
        if (opts.json) {
          out(JSON.stringify(jobs, null, 2));
          return 0;
        }
        const c = palette(useColor(process.stdout));
        out(formatJobs(jobs, Date.now(), c));
        if (cluster && cluster.hosts.length > 1) out(`\n${formatHosts(cluster, Date.now(), c)}`);
        return 0;
      }),
    );

  program
    .command('run')
    .description('trigger a job; prints the run id. With --wait, shows its progress and log lines and exits 0 on success, 1 on failure')
    .argument('<job>', 'the job name')
    .option('--params <json>', "the job's params, as JSON", parseJson)
    .option('--delay <duration>', "start no sooner than this from now: ms, or '30s', '5m'", parseMs)
    .option('--key <key>', 'dedup key: refused while a run with the same key is queued or running')
    .option('--priority <n>', 'lower runs first within its queue (default 0)', parseInteger(-1_000_000))
    .option('--wait', 'follow the run to its end: progress and the lines it logs on stderr, the result on stdout')
    .option('--timeout <duration>', "with --wait: stop waiting after this long (exit 1; the run goes on): ms, or '90s', '5m'", parseMs)
    .option('--json', 'print JSON: { runId }, or with --wait the finished run')
    .addHelpText(
      'after',
      '\nExamples:\n  jobhost run cleanup-temp-files\n  jobhost run cleanup-temp-files --params \'{"olderThanDays":1}\' --wait\n  jobhost run daily-digest --delay 10m --key digest-today',
    )
    .action(act(runCommand));

  program
    .command('tail')
    .description('print live events, one line each (--json: one JSON object per line); reconnects by itself')
    .option('--job <name>', 'only events of this job, or of a glob of names such as deploy-* (repeatable)', collect)
    .option('--type <type>', 'only events of this type; run.* style globs work (repeatable)', collect)
    .option('--since <seq>', 'first replay the buffered events after this seq', parseInteger(0))
    .option('--json', 'print each event as one line of JSON')
    .option('--logs', 'also the lines handlers log (ctx.log), one line each, as they come')
    .addHelpText(
      'after',
      '\nExamples:\n  jobhost tail\n  jobhost tail --job cleanup-temp-files --logs\n  jobhost tail --job cleanup-temp-files --type run.*\n  jobhost tail --type run.failed --json | jq .data.error',
    )
    .action(act(tailCommand));

  for (const paused of [true, false]) {
    const verb = paused ? 'pause' : 'resume';
    program
      .command(verb)
      .description(
        paused
          ? 'pause a job (or a queue): triggers and schedule fires are still recorded, no run starts; running runs finish; kept across restarts'
          : 'resume a paused job (or queue): its waiting runs start',
      )
      .argument('[job]', 'the job name')
      .option('--queue <name>', `${verb} this queue (config queues) instead of a job`)
      .option('--json', 'print the answer as JSON')
      .addHelpText('after', `\nExamples:\n  jobhost ${verb} nightly-report\n  jobhost ${verb} --queue low`)
      .action(act((job: string | undefined, opts: { queue?: string; json?: boolean }, command: Command) => pauseCommand(paused, job, opts, command)));
  }

  program
    .command('whoami')
    .description("print the token's name and role (and the jobs an operator is limited to)")
    .option('--json', 'print it as JSON')
    .action(act(whoamiCommand));

  program
    .command('audit')
    .description('print the audit trail, newest first: every change asked of the API, made or refused')
    .option('--by <name>', 'only records of this token name (--token is the API token to ask with)')
    .option('--action <action>', 'only this action, or a * glob (job.*)')
    .option('--target <target>', 'only this target, or a * glob (job:deploy-*)')
    .option('--outcome <outcome>', 'ok, forbidden or error')
    .option('--limit <n>', 'records per page (default 50)', parseInteger(1))
    .option('--before <id>', 'cursor: records older than this id')
    .option('--json', 'print the page as JSON')
    .addHelpText('after', '\nExamples:\n  jobhost audit\n  jobhost audit --outcome forbidden\n  jobhost audit --by ci --target "job:deploy-*"')
    .action(act(auditCommand));

  const store = program.command('store').description('the store of a running host: damage found in its files (a torn tail from a crash is not damage)');
  store
    .command('damage')
    .description('list damage found in the store files: the file, the lines, what was lost, where the copy is')
    .option('--json', 'print the reports as JSON')
    .action(act(damageCommand));
  store
    .command('ack-damage')
    .description('acknowledge damage reports (all of them without ids), so /ready stops listing them; exits 1 for an unknown id')
    .argument('[ids...]', 'report ids from `jobhost store damage`')
    .option('--json', 'print the answer as JSON')
    .addHelpText('after', '\nExamples:\n  jobhost store damage\n  jobhost store ack-damage\n  jobhost store ack-damage 3f9c0a1b2d4e')
    .action(act(ackDamageCommand));

  const notify = program.command('notify').description('notification destinations of a running host (notifications.destinations)');
  notify
    .command('test')
    .description("send a test message to a destination now and print the receiver's answer; exits 1 unless it took it")
    .argument('<destination>', 'a name from notifications.destinations')
    .option('--json', 'print the answer as JSON')
    .option(
      '--timeout <duration>',
      "stop waiting for the host's answer after this long (exit 1): ms, or '90s'; default and at most 290s (the host waits notifications.timeout for the receiver)",
      parseTestWait,
    )
    .addHelpText('after', '\nExample:\n  jobhost notify test ops-slack')
    .action(act(notifyTestCommand));
  notify
    .command('destinations')
    .description('list the destinations (without secrets) and how many deliveries wait')
    .option('--json', 'print them as JSON')
    .action(act(destinationsCommand));

  program
    .command('init')
    .description('make this folder a jobhost project: config/jobhost.json, an example plugin, a start script; keeps files that exist')
    .addHelpText('after', '\nExample:\n  npx jobhost init && npx jobhost start')
    .action(act(initCommand));

  program
    .command('new')
    .description('write plugins/<name>.ts: a typed plugin to fill in, which passes `jobhost validate`')
    .argument('<name>', 'the job name, kebab-case (e.g. sync-invoices)')
    .option('--dir <dir>', 'the plugins directory', 'plugins')
    .option('--schedule <cron>', "a cron expression ('0 * * * *') or 'every 15m'; none = trigger-only")
    .option('--force', 'overwrite the file if it exists')
    .addHelpText('after', "\nExamples:\n  jobhost new sync-invoices\n  jobhost new nightly-report --schedule '0 2 * * *'")
    .action(act(newCommand));

  return program;
}

/** Runs `jobhost` with `argv` (as process.argv); `project` loads what `start` and `validate` need. */
export async function runCli(argv: string[], project: () => Promise<Project>): Promise<void> {
  // `jobhost tail | head -3`: a reader that goes away is the end of the output, not an error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
  // An empty JOBHOST_URL or JOBHOST_TOKEN (`JOBHOST_URL= jobhost list`) is unset, as a shell user means it: the defaults apply.
  for (const name of ['JOBHOST_URL', 'JOBHOST_TOKEN']) if (process.env[name] === '') delete process.env[name];
  try {
    await buildCli(project).parseAsync(argv);
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    // Help and --version exit 0; every other parse error is a usage error.
    await exit(error.exitCode === 0 ? 0 : 2);
  }
}
