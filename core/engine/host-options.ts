import type { Clock } from '../contract/clock.js';
import type { ConfigInput } from '../contract/config.js';
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
