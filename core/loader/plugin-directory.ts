import { createHash } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { HostError, isHostError } from '../contract/errors.js';
import { parsePlugin } from '../contract/plugin-schema.js';
import type { Host } from '../engine/host.js';
import { loadPluginModule } from './plugin-module.js';

/**
 * The plugins directory: every `.ts`, `.js` and `.mjs` file directly in it is one job. While the
 * host runs, new files register, edited files reload, deleted files unregister — debounced, and
 * re-read from disk, so editors that save by rename, bursts of saves and half-written files all
 * settle in the right state. A bad file never stops the host: it emits `plugin.error`, and an
 * edit that breaks a loaded plugin leaves its last good version running.
 *
 * Files load independently: an import that takes long (up to `importTimeoutMs`) holds only its own
 * file. What used to come from one serial queue holds this way instead: a file's state is read
 * from disk one request at a time, so its newest text claims it last, and only the newest claim
 * (a load, or the removal) applies; registering (duplicate names, `after` cycles) happens in one
 * synchronous step after a load, never interleaved with another file's; and the first scan loads
 * files one by one in name order, as `jobhost validate` does.
 */

export interface LoaderOptions {
  dir: string;
  watch: boolean;
  importTimeoutMs: number;
  /** Quiet time after the last change to a file before it is read (default 100 ms). */
  debounceMs?: number;
  /** Full rescans that catch anything a watch event missed (default every 2 s; 0 = off). */
  rescanMs?: number;
}

const PLUGIN_FILE = /\.(ts|js|mjs)$/;

/** Files in the plugins directory that are not plugins: dotfiles, types, tests, editor leftovers. */
export function isPluginFile(name: string): boolean {
  if (name.startsWith('.') || name.startsWith('#')) return false;
  if (!PLUGIN_FILE.test(name)) return false;
  if (name.endsWith('.d.ts') || /\.(test|spec)\.[cm]?[jt]s$/.test(name)) return false;
  return true;
}

interface FileState {
  /** Content hash of the version last loaded (good or bad), to skip no-op events. */
  hash: string | null;
  /** The job this file currently provides, if its last good version registered. */
  job: string | null;
  /** Local files (helpers) the loaded version was built from. */
  deps: string[];
  /** The job name its newest version declares (even if refused), for duplicate retries. */
  wanted: string | null;
  /** Set while the file is refused as a duplicate of another file's job. */
  duplicateOf: string | null;
  /** Counts the loads and the removal this file's requests started: only the newest one applies. */
  claims: number;
}

/** A load a request started: it applies only while it is still its file's newest claim. */
interface Claim {
  state: FileState;
  n: number;
}

export class PluginLoader {
  readonly name = 'plugins';
  readonly #host: Host;
  readonly #dir: string;
  readonly #options: LoaderOptions;
  readonly #files = new Map<string, FileState>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  /** One non-recursive watcher per directory: Node 20's recursive fs.watch on Linux (and
   *  chokidar's per-file watchers) lose a file replaced by rename, how many editors save. */
  readonly #watchers = new Map<string, FSWatcher>();
  /** Folders a watch failed on, told once until one succeeds. */
  readonly #unwatchable = new Set<string>();
  #rescan: NodeJS.Timeout | undefined;
  #scanning = false;
  /** Per file, the end of its latest disk read (see `#request`). */
  readonly #reads = new Map<string, Promise<unknown>>();
  /** Every request in flight, for `idle()` and `stop()`. */
  readonly #work = new Set<Promise<void>>();
  /** Aborts the loads in flight at `stop()`: a stuck import does not hold the host's stop. */
  readonly #stopping = new AbortController();
  #stopped = false;

  constructor(host: Host, options: LoaderOptions) {
    this.#host = host;
    this.#dir = path.resolve(host.cwd, options.dir);
    this.#options = options;
  }

  get dir(): string {
    return this.#dir;
  }

  async start(): Promise<void> {
    await this.#scan(true);
    if (!this.#options.watch) return;
    await this.#watchDirs();
    const every = this.#options.rescanMs ?? 2000;
    if (every > 0) {
      this.#rescan = setInterval(() => void this.#rescanOnce(), every);
      this.#rescan.unref();
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
    clearInterval(this.#rescan);
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#stopping.abort();
    await this.idle();
  }

  /** Resolves when every change seen so far has been applied (for tests and `validate`). */
  async idle(): Promise<void> {
    // Work can start more work (a freed job name retries its duplicates): wait until none is left.
    while (this.#work.size > 0) await Promise.all(this.#work);
  }

  /** A rescan requests what changed and does not wait for the loads: one stuck file holds nothing. */
  async #rescanOnce(): Promise<void> {
    if (this.#scanning) return;
    this.#scanning = true;
    try {
      await this.#scan(false);
      await this.#watchDirs();
    } catch (err) {
      this.#host.logger.error({ err }, 'plugin rescan failed');
    } finally {
      this.#scanning = false;
    }
  }

  /** Watches the plugins directory and every folder below it (helpers live there). */
  async #watchDirs(): Promise<void> {
    if (this.#stopped || !this.#options.watch) return;
    const dirs = new Set<string>();
    const walk = async (dir: string, depth: number): Promise<void> => {
      dirs.add(dir);
      if (depth > 8) return;
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        if (e.isDirectory() && !e.name.startsWith('.') && e.name !== 'node_modules') await walk(path.join(dir, e.name), depth + 1);
      }
    };
    await walk(this.#dir, 0);
    for (const [dir, w] of this.#watchers) {
      if (!dirs.has(dir)) {
        w.close();
        this.#watchers.delete(dir);
      }
    }
    for (const dir of dirs) {
      if (this.#watchers.has(dir)) continue;
      try {
        const w = watch(dir, (_event, name) => {
          if (!name) return;
          const file = path.join(dir, name.toString());
          this.#changed(file);
          // A new folder: watch it too.
          stat(file).then(
            (s) => (s.isDirectory() ? this.#watchDirs() : undefined),
            () => undefined,
          );
        });
        w.on('error', (err) => this.#host.logger.warn({ err, dir }, 'a plugin folder watcher failed; rescans continue'));
        this.#watchers.set(dir, w);
        this.#unwatchable.delete(dir);
      } catch (err) {
        // Told once per folder (every rescan tries again): a plugins directory not made yet is
        // no error, its files load once it exists.
        if (this.#unwatchable.has(dir)) continue;
        this.#unwatchable.add(dir);
        const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
        if (missing && dir === this.#dir)
          this.#host.logger.warn({ dir: this.#display(dir) }, 'the plugins directory does not exist; its files load once it is made');
        else this.#host.logger.error({ err, dir }, 'cannot watch a plugin folder; relying on rescans');
      }
    }
  }

  #display(file: string): string {
    return path.relative(this.#host.cwd, file) || file;
  }

  /**
   * Brings one file's job in line with what is on disk, independently of every other file. The
   * disk is read (stat, hash) one request of the file at a time, so requests claim the file in the
   * order of the texts they read: the newest text claims last, and an older load still in flight
   * (a slow or stuck import) finds itself superseded when it ends and applies nothing.
   */
  #request(file: string): Promise<void> {
    const read = (this.#reads.get(file) ?? Promise.resolve()).then(() => this.#claim(file));
    const tail = read.catch(() => undefined);
    this.#reads.set(file, tail);
    void tail.then(() => {
      if (this.#reads.get(file) === tail) this.#reads.delete(file);
    });
    const work = read
      .then((claim) => (claim ? this.#load(file, claim) : undefined))
      .catch((err: unknown) => this.#host.logger.error({ err, file: this.#display(file) }, 'plugin loader failed'))
      .finally(() => this.#work.delete(work));
    this.#work.add(work);
    return work;
  }

  #changed(file: string): void {
    if (this.#stopped) return;
    const targets = new Set<string>();
    if (path.dirname(file) === this.#dir && isPluginFile(path.basename(file))) targets.add(file);
    // A helper changed: every plugin built from it reloads.
    for (const [plugin, state] of this.#files) if (state.deps.includes(file)) targets.add(plugin);
    for (const target of targets) {
      clearTimeout(this.#timers.get(target));
      this.#timers.set(
        target,
        setTimeout(() => {
          this.#timers.delete(target);
          void this.#request(target);
        }, this.#options.debounceMs ?? 100),
      );
    }
  }

  /** `ordered` (the first scan): one file at a time, by name, each load awaited (see the class doc). */
  async #scan(ordered: boolean): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.#dir, { withFileTypes: true })).filter((d) => d.isFile() && isPluginFile(d.name)).map((d) => d.name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      names = [];
    }
    const present = new Set(names.sort().map((n) => path.join(this.#dir, n)));
    const sync = async (file: string): Promise<void> => {
      const work = this.#request(file);
      if (ordered) await work;
    };
    for (const file of present) await sync(file);
    for (const file of [...this.#files.keys()]) if (!present.has(file)) await sync(file);
    // Helpers can change with no event for the plugin itself.
    for (const [file, state] of this.#files) {
      if (state.deps.length > 1 && (await this.#hashOf(file, state.deps)) !== state.hash) await sync(file);
    }
  }

  async #hashOf(file: string, deps: string[]): Promise<string | null> {
    const hash = createHash('sha1');
    try {
      hash.update(await readFile(file));
      for (const dep of deps) if (dep !== file) hash.update(await readFile(dep).catch(() => Buffer.from('\0missing')));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    return hash.digest('hex');
  }

  /** Reads a file's state from disk: a removal applies here; a new text claims the file for a load. */
  async #claim(file: string): Promise<Claim | null> {
    if (this.#stopped) return null;
    const exists = await stat(file).then(
      (s) => s.isFile(),
      () => false,
    );
    const known = this.#files.get(file);
    if (!exists) {
      if (!known) return null;
      known.claims++; // a load still in flight applies nothing now
      this.#files.delete(file);
      if (known.job !== null) {
        this.#host.unregister(known.job);
        this.#retryDuplicatesOf(known.job);
      }
      return null;
    }
    const state = known ?? { hash: null, job: null, deps: [file], wanted: null, duplicateOf: null, claims: 0 };
    const hash = await this.#hashOf(file, state.deps);
    // Unchanged since the newest load began (or ended): nothing to do.
    if (hash === null || hash === state.hash || this.#stopped) return null;
    this.#files.set(file, state);
    state.hash = hash;
    return { state, n: ++state.claims };
  }

  /** Loads a claimed text and, if no newer claim came meanwhile, registers it (one synchronous step). */
  async #load(file: string, claim: Claim): Promise<void> {
    const { state } = claim;
    const newest = (): boolean => !this.#stopped && state.claims === claim.n && this.#files.get(file) === state;
    let name: string | null = null;
    try {
      const mod = await loadPluginModule(file, this.#dir, this.#options.importTimeoutMs, this.#stopping.signal);
      if (!newest()) return;
      const hash = await this.#hashOf(file, mod.files);
      if (!newest()) return;
      state.deps = mod.files;
      state.hash = hash;
      if (!('default' in mod.exports) || mod.exports['default'] === undefined) {
        throw new HostError('PLUGIN_NO_EXPORT', 'the file has no default export (export default definePlugin({...}))');
      }
      const spec = parsePlugin(mod.exports['default']);
      name = spec.name;
      state.wanted = spec.name;
      const owner = this.#ownerOf(spec.name);
      if (owner !== null && owner !== file) {
        state.duplicateOf = owner;
        throw new HostError(
          'PLUGIN_DUPLICATE',
          `name: job "${spec.name}" is already defined in ${this.#display(owner)}; ${this.#display(file)} declares it too`,
          { files: [this.#display(owner), this.#display(file)] },
        );
      }
      state.duplicateOf = null;
      const previous = state.job;
      this.#host.register(mod.exports['default'], { file: this.#display(file), source: mod.source });
      state.job = spec.name;
      if (previous !== null && previous !== spec.name) {
        // The file now declares another job: the old one goes.
        this.#host.unregister(previous);
        this.#retryDuplicatesOf(previous);
      }
    } catch (err) {
      // A superseded text's failure (a stuck import cut off at its timeout, say) is no news.
      if (!newest()) return;
      const error = isHostError(err) ? err : new HostError('PLUGIN_IMPORT_FAILED', (err as Error)?.message ?? String(err));
      // The job this error is about: the one the file declared, even when its definition fails.
      const declared = typeof error.details?.['job'] === 'string' ? error.details['job'] : null;
      const job = name ?? state.job ?? declared;
      this.#host.logger.error(
        { file: this.#display(file), code: error.code, job },
        `plugin ${this.#display(file)}: ${error.message}${state.job ? ` (job "${state.job}" keeps its last good version)` : ''}`,
      );
      this.#host.bus.emit('plugin.error', { job, file: this.#display(file), code: error.code, message: error.message });
    }
  }

  #ownerOf(job: string): string | null {
    for (const [file, state] of this.#files) if (state.job === job) return file;
    // A job registered in code (not from this directory) may be replaced by a file.
    return null;
  }

  /**
   * A job name was freed: a file refused as its duplicate gets another try, one file at a time
   * (the first that registers takes the name; the rest stay refused without a new error).
   * Tracked as work (`idle()` waits for it), awaited by no one: a slow retry holds no other file.
   */
  #retryDuplicatesOf(job: string): void {
    const retry = (async () => {
      for (const [file, state] of [...this.#files]) {
        if (state.duplicateOf !== null && state.wanted === job && this.#ownerOf(job) === null && this.#files.get(file) === state) {
          state.hash = null;
          await this.#request(file);
        }
      }
    })()
      .catch((err: unknown) => this.#host.logger.error({ err, job }, 'plugin loader failed'))
      .finally(() => this.#work.delete(retry));
    this.#work.add(retry);
  }
}

/** Creates the loader and plugs it into the host's start/stop. */
export function usePluginDirectory(host: Host, options: LoaderOptions): PluginLoader {
  const loader = new PluginLoader(host, options);
  host.use(loader);
  return loader;
}
