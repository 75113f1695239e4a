import type { Clock } from '../contract/clock.js';
import type { ConfigInput } from '../contract/config.js';
import { HostError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import type { PluginDefinition } from '../contract/plugin.js';
import type { BackendTuning } from './backends.js';
import type { ProcessHandlersOption } from './process-handlers.js';

/** What `createHost()` takes (SPEC §10). */
export interface HostOptions {
  /** The config (same shape as config/jobhost.json); validated, defaults filled in. */
  config?: ConfigInput | undefined;
  /** Base for relative paths in the config (default: the working directory). */
  cwd?: string | undefined;
  /** `memory` keeps runs in memory only (nothing survives the process); default `disk`. */
  store?: 'disk' | 'memory' | undefined;
  /** Store tuning (segment size, checkpoint size), mostly for tests and benchmarks. */
  storeOptions?: BackendTuning | undefined;
  /** Plugins registered at creation, as if dropped into the plugins directory. */
  plugins?: ReadonlyArray<PluginDefinition<never> | PluginDefinition> | undefined;
  clock?: Clock | undefined;
  /** Random source for jitter (default Math.random). */
  random?: (() => number) | undefined;
  logger?: Logger | undefined;
  /**
   * Process-wide uncaughtException / unhandledRejection handlers, from `start()` to the end of
   * `stop()` (default false: the host installs none and leaves the process's policy to you). true:
   * a stray from an inline handler fails its attempt; one outside any run is logged fatal, the
   * store is flushed and the process exits 1 (what `jobhost start` does). `{ fatal }` replaces that exit.
   */
  processHandlers?: ProcessHandlersOption | undefined;
}

const HOST_OPTION_KEYS: ReadonlySet<string> = new Set(['config', 'cwd', 'store', 'storeOptions', 'plugins', 'clock', 'random', 'logger', 'processHandlers']);

/**
 * `createHost()`'s options as the caller gave them (anything, from JavaScript): each one's shape
 * is checked here, so a wrong one is CONFIG_INVALID naming it rather than a TypeError later, from
 * deep inside a running host (a logger without `debug` failed at the first run).
 */
export function checkHostOptions(options: unknown): HostOptions {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw invalid('createHost', 'expected an object of options');
  const o = options as Record<string, unknown>;
  // A misspelt option (`configg`) was ignored silently: the host ran without it.
  for (const key of Object.keys(o)) if (!HOST_OPTION_KEYS.has(key)) throw invalid(key, `unknown option (createHost takes ${[...HOST_OPTION_KEYS].join(', ')})`);
  const has = (value: unknown, methods: readonly string[]): boolean =>
    typeof value === 'object' && value !== null && methods.every((m) => typeof (value as Record<string, unknown>)[m] === 'function');
  // Anything but 'memory' was a disk store: a typo ('mem') kept runs on disk the user meant to keep nowhere.
  const store = o['store'];
  if (store !== undefined && store !== 'disk' && store !== 'memory') {
    throw invalid('store', `expected 'disk' or 'memory' (got ${JSON.stringify(String(store)).slice(0, 60)})`);
  }
  if (o['cwd'] !== undefined && typeof o['cwd'] !== 'string') throw invalid('cwd', 'expected a directory path (a string)');
  if (o['clock'] !== undefined && !has(o['clock'], ['now', 'setTimer'])) throw invalid('clock', 'expected a Clock: { now(), setTimer() }');
  if (o['random'] !== undefined && typeof o['random'] !== 'function') throw invalid('random', 'expected a function returning a number in [0, 1)');
  if (o['logger'] !== undefined && !has(o['logger'], ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'child'])) {
    throw invalid('logger', 'expected a pino-style logger (fatal, error, warn, info, debug, trace, child)');
  }
  const handlers = o['processHandlers'];
  if (handlers !== undefined && typeof handlers !== 'boolean' && !has(handlers, ['fatal']))
    throw invalid('processHandlers', 'expected true, false or { fatal }');
  if (o['plugins'] !== undefined && !Array.isArray(o['plugins'])) throw invalid('plugins', 'expected an array of plugin definitions');
  return o as HostOptions;
}

const invalid = (option: string, message: string): HostError => new HostError('CONFIG_INVALID', `${option}: ${message}`, { path: option });
