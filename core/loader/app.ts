import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { unmatchedJobGlobs } from '../contract/access.js';
import type { Config } from '../contract/config.js';
import { HostError, isHostError } from '../contract/errors.js';
import { type AnyHostEvent, eventHost } from '../contract/events.js';
import { createLogger, flushLogSync, type Logger } from '../contract/logger.js';
import { otelRequested, startOtel } from '../contract/otel-sdk.js';
import { type AfterSpec, parsePlugin } from '../contract/plugin-schema.js';
import { checkAfterCycles } from '../engine/after.js';
import { createHost, type Host } from '../engine/host.js';
import { resolveJob } from '../engine/jobs.js';
import { validateParams } from '../engine/triggers.js';
import { dashboard } from '../server/dashboard.js';
import { type Server, useServer } from '../server/server.js';
import { ConfigWatcher, configPath, loadConfigFile, readConfigFile } from './config-file.js';
import { isPluginFile, usePluginDirectory } from './plugin-directory.js';
import { loadPluginModule } from './plugin-module.js';

/**
 * The application: what `jobhost start` (and `npm start`) runs. It reads the config file, builds
 * the host with the plugins directory and the config watcher, and handles SIGINT/SIGTERM.
 */

export interface AppOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** Install SIGINT/SIGTERM handlers that stop the host and exit (default true). */
  signals?: boolean;
}

export interface App {
  host: Host;
  server: Server;
  config: Config;
  configFile: string | null;
  /** The base URL of the API and dashboard. */
  url: string;
  stop(reason?: string): Promise<void>;
}

/** Events worth a line in the log; run.* chatter goes to debug (it can be 100k lines a second). */
function logEvent(logger: Logger, e: AnyHostEvent): void {
  const quiet = e.type === 'run.queued' || e.type === 'run.started' || e.type === 'run.progress' || e.type === 'run.succeeded' || e.type === 'notification';
  if (e.type === 'plugin.error' || e.type === 'config.error') return; // logged where they happen, with detail
  const level = quiet ? 'debug' : e.type === 'run.failed' ? 'warn' : 'info';
  // Not even the line's object when the level is off: two events a run, each a copy of its data.
  if (logger.isLevelEnabled(level)) logger[level]({ event: e.type, seq: e.seq, ...e.data }, e.type);
}

export async function startApp(options: AppOptions = {}): Promise<App> {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const logger = options.logger ?? createLogger({ pretty: Boolean(process.stdout.isTTY) });
  const { file, explicit } = configPath(cwd, env);
  const { config, text } = await loadConfigFile(file, env, { missingOk: !explicit });
  const hasFile = text !== null;
  // Tracing (SPEC §15): the SDK reads its exporter, endpoint and sampler from the process' OTEL_*.
  const otel = otelRequested(process.env)
    ? await startOtel((msg) => logger.warn({ code: 'TRACE_EXPORT' }, `OpenTelemetry: ${msg} (runs are not affected)`))
    : undefined;
  if (otel) logger.info('OpenTelemetry tracing on (OTEL_* environment)');
  // The process is the host's: a stray outside any run is fatal (logged, flushed, exit 1 for the supervisor).
  const host = createHost({ config, cwd, logger, processHandlers: true });
  // Another host's events (cluster mode) are in that host's log.
  host.on('*', (e) => (eventHost(e) === undefined ? logEvent(logger, e) : undefined));
  usePluginDirectory(host, { dir: config.plugins.dir, watch: config.plugins.watch, importTimeoutMs: config.plugins.importTimeout });
  // Watched with or without a file: one made later applies as an edit would (SPEC §3).
  host.use(new ConfigWatcher(host, { file, env, text }));
  if (!hasFile) logger.warn({ file }, `no config file; running on defaults until ${path.relative(cwd, file) || file} is created`);
  const server = useServer(host, { plugins: [dashboard] });
  const stop = async (reason = 'stop'): Promise<void> => {
    try {
      await host.stop({ reason });
    } finally {
      await otel?.shutdown(5000);
    }
  };
  // Before the start: a SIGINT/SIGTERM while it runs (a slow plugin import, a large store to read)
  // stops the host gracefully once it has started, rather than killing a process holding the store.
  const signals = options.signals !== false ? installSignals(host, stop, logger) : undefined;

  try {
    await host.start();
  } catch (err) {
    signals?.remove();
    throw err;
  }
  const url = server.url ?? '';
  // The example health check (and any plugin) can find this host's own API.
  process.env['JOBHOST_URL'] = url;
  logger.info(
    { url, config: hasFile ? path.relative(cwd, file) : null, plugins: config.plugins.dir, store: config.store.dir, jobs: host.jobs().length },
    `jobhost started: dashboard and API at ${url}`,
  );

  const app: App = {
    host,
    server,
    config,
    configFile: hasFile ? file : null,
    url,
    stop,
  };
  signals?.started();
  return app;
}

/** Where core/bin.mjs keeps the signals that came before these handlers were installed. */
const EARLY_SIGNALS = Symbol.for('jobhost.earlySignals');

/**
 * SIGINT/SIGTERM stop gracefully and exit 0, or 1 when the stop could not make everything durable
 * or hand it back (the backend says so in `writeError`: a cluster host cut off from Redis leaves
 * its runs to the other hosts) or a part failed to close or the stop passed its deadline
 * (STOP_INCOMPLETE); a second signal exits at once.
 */
function installSignals(host: Host, stop: (reason: string) => Promise<void>, logger: Logger): { started(): void; remove(): void } {
  let stopping = false;
  let started = false;
  /** A signal that came while the host was starting: acted on once it has. */
  let waiting: NodeJS.Signals | null = null;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now (acknowledged runs are on disk)');
      return exitProcess(logger, 1);
    }
    stopping = true;
    if (!started) {
      waiting = signal;
      logger.info({ signal }, 'stopping once the start is done (a second signal exits now)');
      return;
    }
    stopNow(signal);
  };
  const stopNow = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'stopping: finishing running jobs');
    stop(signal).then(
      () => exitProcess(logger, host.storeHealth().writeError === null ? 0 : 1),
      (err: unknown) => {
        logger.error({ err, code: isHostError(err) ? err.code : undefined }, 'the stop did not close everything');
        // Node's exit waits for a worker thread it was told to terminate, and one blocked in a
        // system call (a read of a pipe nobody writes) never ends: past the deadline on the worker
        // threads the process is ended by SIGKILL instead (exit status 137).
        exitProcess(logger, 1, isHostError(err) && err.details?.['overdue'] === 'executor');
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Signals that came while the command loaded (core/bin.mjs kept them): the first is this stop's, a second exits.
  const early = (globalThis as Record<symbol, { signals: NodeJS.Signals[]; remove(): void } | undefined>)[EARLY_SIGNALS];
  if (early) {
    early.remove();
    delete (globalThis as Record<symbol, unknown>)[EARLY_SIGNALS];
    for (const signal of early.signals) onSignal(signal);
  }
  return {
    started: () => {
      started = true;
      if (waiting) stopNow(waiting);
    },
    // The start failed: whoever started the app says so and exits.
    remove: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** Exits with `code` once the log is written. */
function exitProcess(logger: Logger, code: number, kill = false): void {
  flushLogSync(logger);
  if (kill) process.kill(process.pid, 'SIGKILL');
  else process.exit(code);
}

export interface Problem {
  file: string;
  code: string;
  message: string;
}

/**
 * `jobhost validate`: checks the config file and every plugin file without starting anything.
 * Returns the problems found (none means valid).
 */
export async function validateProject(
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ problems: Problem[]; warnings: Problem[]; jobs: string[] }> {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const problems: Problem[] = [];
  const warnings: Problem[] = [];
  const { file, explicit } = configPath(cwd, env);
  const rel = (p: string): string => path.relative(cwd, p) || p;
  let config: Config;
  try {
    config = await readConfigFile(file, env, { missingOk: !explicit });
  } catch (err) {
    const e = isHostError(err) ? err : new HostError('CONFIG_INVALID', String(err));
    // Every problem of the file at once, not one per run of validate.
    const issues = (e.details?.['issues'] as Array<{ path: string; code: string; message: string }> | undefined) ?? [];
    for (const issue of issues) problems.push({ file: rel(file), code: issue.code, message: `${issue.path}: ${issue.message}` });
    if (problems.length === 0) problems.push({ file: rel(file), code: e.code, message: e.message });
    return { problems, warnings, jobs: [] };
  }
  const dir = path.resolve(cwd, config.plugins.dir);
  const names = await readdir(dir, { withFileTypes: true }).then(
    (entries) =>
      entries
        .filter((d) => d.isFile() && isPluginFile(d.name))
        .map((d) => d.name)
        .sort(),
    () => null,
  );
  if (names === null) {
    problems.push({ file: rel(dir), code: 'PLUGIN_IMPORT_FAILED', message: 'the plugins directory does not exist' });
    return { problems, warnings, jobs: [] };
  }
  const owners = new Map<string, string>();
  // The `after` lists of the jobs start would register, in the order it loads their files (by
  // name): a job that closes a cycle is refused there (plugin.error AFTER_CYCLE), so it is no
  // edge of the cycles the files after it are checked for.
  const after = new Map<string, AfterSpec>();
  for (const name of names) {
    const pluginFile = path.join(dir, name);
    try {
      const mod = await loadPluginModule(pluginFile, dir, config.plugins.importTimeout);
      if (mod.exports['default'] === undefined) throw new HostError('PLUGIN_NO_EXPORT', 'the file has no default export');
      const spec = parsePlugin(mod.exports['default']);
      const owner = owners.get(spec.name);
      if (owner) throw new HostError('PLUGIN_DUPLICATE', `name: job "${spec.name}" is already defined in ${owner}; ${rel(pluginFile)} declares it too`);
      owners.set(spec.name, rel(pluginFile));
      const job = resolveJob(spec, { file: rel(pluginFile), source: null }, config.jobs[spec.name], config, {}, (q) => q in config.queues);
      // A schedule fires with the params the config gives (no caller adds any): the schema must take them.
      if (job.schedule && job.paramsSchema) {
        try {
          await validateParams(job, undefined);
        } catch (err) {
          if (!isHostError(err) || err.code !== 'INVALID_PARAMS') throw err;
          const from = config.jobs[spec.name]?.params ? `jobs.${spec.name}.params in ${rel(file)}` : 'no params';
          throw new HostError('INVALID_PARAMS', `job "${spec.name}" is scheduled, and its fires (with ${from}) fail its params schema: ${err.message}`);
        }
      }
      // As `Host.register` checks it: the job's effective `after` (`jobs.<name>.after` applied) against those before it.
      if (job.after.length > 0) checkAfterCycles(new Map([...after, [spec.name, job.after]]));
      after.set(spec.name, job.after);
      // A destination the config lacks: at run time its deliveries would be dead (DESTINATION_NOT_FOUND).
      for (const [i, to] of (job.notify?.to ?? []).entries()) {
        if (!Object.hasOwn(config.notifications.destinations, to)) {
          throw new HostError(
            'DESTINATION_NOT_FOUND',
            `notify.to.${i}: job "${spec.name}" names destination "${to}", which ${rel(file)} does not define in notifications.destinations`,
          );
        }
      }
    } catch (err) {
      const e = isHostError(err) ? err : new HostError('PLUGIN_IMPORT_FAILED', String(err));
      // The config's override of this job is at fault (its message names the `jobs.<name>` path): the config file's problem.
      problems.push({ file: e.code === 'CONFIG_INVALID' ? rel(file) : rel(pluginFile), code: e.code, message: e.message });
    }
  }
  // An override may come before its plugin file: a warning, not an error.
  for (const job of Object.keys(config.jobs)) {
    if (!owners.has(job)) warnings.push({ file: rel(file), code: 'JOB_NOT_FOUND', message: `jobs.${job}: no plugin defines this job (yet)` });
  }
  // What the running host logs at start and on each config edit, the same way.
  for (const u of unmatchedJobGlobs(config.server.tokens, [...owners.keys()])) {
    warnings.push({ file: rel(file), code: 'JOB_NOT_FOUND', message: u.message });
  }
  return { problems, warnings, jobs: [...owners.keys()] };
}
