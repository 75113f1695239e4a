import { type FSWatcher, statSync, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { type Config, parseConfig } from '../contract/config.js';
import { HostError, isHostError } from '../contract/errors.js';
import type { Host } from '../engine/host.js';

/**
 * The config file (SPEC §3): JSON, validated by the config schema, with environment overrides on
 * top; watched while the host runs, so a valid edit applies at once and an invalid one is refused
 * whole, leaving the last good config in force.
 */

export const DEFAULT_CONFIG_PATH = 'config/jobhost.json';

/** Where the config file is: `JOBHOST_CONFIG`, else `config/jobhost.json`, relative to `cwd`. */
export function configPath(cwd: string, env: NodeJS.ProcessEnv): { file: string; explicit: boolean } {
  const fromEnv = env['JOBHOST_CONFIG'];
  return { file: path.resolve(cwd, fromEnv || DEFAULT_CONFIG_PATH), explicit: Boolean(fromEnv) };
}

/**
 * `JOBHOST_PORT`, `JOBHOST_HOST`, `JOBHOST_TOKEN`, `JOBHOST_DATA_DIR` over the file's values;
 * `JOBHOST_REDIS_URL` sets `backend.url` and with it `backend.kind: 'redis'` (SPEC §11).
 */
export function applyEnv(input: unknown, env: NodeJS.ProcessEnv): unknown {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return input;
  const out = { ...(input as Record<string, unknown>) };
  const section = (key: string): Record<string, unknown> => {
    const value = out[key];
    const copy = typeof value === 'object' && value !== null && !Array.isArray(value) ? { ...(value as Record<string, unknown>) } : {};
    out[key] = copy;
    return copy;
  };
  const port = env['JOBHOST_PORT'];
  if (port !== undefined && port !== '') {
    // The variable's own error: a user reading "server.port" looks for it in the file.
    if (!/^\d{1,5}$/.test(port) || Number(port) > 65_535)
      throw new HostError('CONFIG_INVALID', `JOBHOST_PORT: expected a port number from 0 to 65535 (got ${JSON.stringify(port.slice(0, 20))})`, {
        path: 'JOBHOST_PORT',
      });
    section('server')['port'] = Number(port);
  }
  if (env['JOBHOST_HOST']) section('server')['host'] = env['JOBHOST_HOST'];
  if (env['JOBHOST_TOKEN']) section('server')['token'] = env['JOBHOST_TOKEN'];
  if (env['JOBHOST_DATA_DIR']) section('store')['dir'] = env['JOBHOST_DATA_DIR'];
  const redisUrl = env['JOBHOST_REDIS_URL'];
  if (redisUrl) {
    // The file's redis settings (prefix, lock timing, sentinels, tls) stay, with or without a `kind`
    // of their own (a section without one was emptied: the host joined another prefix, silently).
    const backend = section('backend');
    backend['kind'] = 'redis';
    backend['url'] = redisUrl;
  }
  return out;
}

/** Reads, parses and validates the config file with env overrides. Throws CONFIG_READ / CONFIG_PARSE / CONFIG_INVALID. */
export async function readConfigFile(file: string, env: NodeJS.ProcessEnv, options: { missingOk?: boolean } = {}): Promise<Config> {
  return (await loadConfigFile(file, env, options)).config;
}

/** `readConfigFile`, with the text the config was read from (`null`: no file, the defaults). */
export async function loadConfigFile(
  file: string,
  env: NodeJS.ProcessEnv,
  options: { missingOk?: boolean } = {},
): Promise<{ config: Config; text: string | null }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && options.missingOk) return { config: parseConfig(applyEnv({}, env)), text: null };
    throw new HostError('CONFIG_READ', `${shown(file)}: ${(err as Error).message.replaceAll(file, shown(file))}`, { file });
  }
  return { config: parseConfigText(file, text, env), text };
}

/** Parses and validates the config file's text with env overrides. Throws CONFIG_PARSE / CONFIG_INVALID. */
function parseConfigText(file: string, text: string, env: NodeJS.ProcessEnv): Config {
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (err) {
    throw new HostError('CONFIG_PARSE', `${shown(file)}: not valid JSON (${jsonSyntax(text, (err as Error).message)})`, { file, path: null });
  }
  return parseConfig(applyEnv(input, env));
}

/**
 * What JSON.parse said is wrong, with a line and column instead of the text around it: V8 quotes
 * up to ten characters on each side of a bad token ("...\"tingKey\": LiteralRou\"..."), and a
 * value typed without its quotes is often a secret (SPEC §12: never in an event or a log line).
 */
export function jsonSyntax(text: string, message: string): string {
  // Columns in characters as an editor counts them (an emoji is one, not two UTF-16 units).
  const at = (pos: number): string => {
    const before = text.slice(0, pos).split('\n');
    return `at line ${before.length}, column ${[...before.at(-1)!].length + 1}`;
  };
  const quoted = /^(Unexpected token .+?), (\.\.\.)?"([\s\S]*?)"(\.\.\.)? is not valid JSON$/.exec(message);
  if (quoted) {
    // V8 quotes from ten characters before the token to ten after it, cut at either end of the
    // text ("..." says where it was cut): a quote cut only at its end starts the text. A text
    // quoted whole gives no place.
    const [, what, cutBefore, excerpt, cutAfter] = quoted as unknown as [string, string, string | undefined, string, string | undefined];
    if (cutBefore) {
      const start = text.indexOf(excerpt);
      return start >= 0 ? `${what} ${at(start + 10)}` : what;
    }
    return cutAfter ? `${what} ${at(excerpt.length - 10)}` : what;
  }
  const position = /^(.*?) (?:in JSON )?at position (\d+)/.exec(message);
  if (position) return `${position[1]} ${at(Number(position[2]))}`;
  // "Unexpected end of JSON input", and any other wording, without text of the file beyond it.
  return message.replace(/"[\s\S]*"/, '…');
}

/** The config file as messages name it (they reach `config.error` events): relative to where the host runs when under it. */
function shown(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
}

export interface ConfigWatcherOptions {
  file: string;
  env: NodeJS.ProcessEnv;
  debounceMs?: number;
  /**
   * The text the host's config was read from (`null`: there was no file), from `loadConfigFile`:
   * a change between that read and the start of the watch is then applied too. Unset: the file as
   * it is at the start is taken to be the config in force.
   */
  text?: string | null;
}

/** Watches the config file and applies each valid edit to the host. */
export class ConfigWatcher {
  readonly name = 'config';
  readonly #host: Host;
  readonly #file: string;
  readonly #env: NodeJS.ProcessEnv;
  readonly #debounceMs: number;
  readonly #text: string | null | undefined;
  #watcher: FSWatcher | undefined;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  /** The text of the config in force, as read from the file. */
  #applied: string | null = null;
  /** The last text read was refused (a config.error is the last word on the file). */
  #refused = false;
  /** The text last read, applied or refused. */
  #seen: string | null = null;
  /** An event of the pending batch named the file itself (a save, even of the same text). */
  #named = false;
  #queue: Promise<void> = Promise.resolve();

  constructor(host: Host, options: ConfigWatcherOptions) {
    this.#host = host;
    this.#file = options.file;
    this.#env = options.env;
    this.#debounceMs = options.debounceMs ?? 100;
    this.#text = options.text;
  }

  async start(): Promise<void> {
    // No file yet is a config to come: the host runs on the defaults until it is made.
    const read = this.#text === undefined;
    this.#applied = this.#seen = read ? await readFile(this.#file, 'utf8').catch(() => null) : (this.#text ?? null);
    this.#arm();
    // The host started on a read made before the watch began (the plugins load in between): a
    // file made or edited meanwhile is looked at now, as if its event had come.
    if (!read) this.#schedule();
  }

  /**
   * Watches the file's directory, not the file: editors and `mv` replace the file, which would end
   * a watch on the file itself. While the directory does not exist, watches the nearest folder
   * above it that does, for the next folder on the way, so a `config/` made after the start is
   * seen (and the file in it). Run again at each batch of events, before the file is read: a
   * watched folder may have been removed or replaced since (a watch ends with its folder, and a
   * folder made anew can have the old one's inode number, so there is no telling it apart).
   */
  #arm(): void {
    let dir = path.dirname(this.#file);
    let awaiting: string | null = null;
    for (;;) {
      const stats = statSync(dir, { throwIfNoEntry: false });
      if (!stats?.isDirectory()) {
        const parent = path.dirname(dir);
        if (parent === dir) return; // not even the root: nothing to watch
        awaiting = path.basename(dir);
        dir = parent;
        continue;
      }
      this.#watcher?.close();
      const waitingFor = awaiting;
      try {
        this.#watcher = watch(dir, (_event, filename) => this.#onEvent(waitingFor, filename));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') continue; // gone since the stat: look again
        this.#watcher = undefined;
        this.#host.logger.error({ err, file: this.#file }, 'cannot watch the config file; edits need a restart');
        return;
      }
      this.#watcher.on('error', (err) => this.#host.logger.error({ err }, 'config watcher failed'));
      return;
    }
  }

  #onEvent(awaiting: string | null, filename: string | Buffer | null): void {
    const name = filename === null ? null : filename.toString();
    if (awaiting !== null) {
      // A folder above the file's: only the next one on the way matters.
      if (name === null || name === awaiting) this.#schedule();
      return;
    }
    // Every entry's events count, not only the file's: the file may be a symlink through another
    // entry (a Kubernetes ConfigMap swaps `..data`, and the file's own name sees no event); a
    // re-read whose text did not change does nothing.
    const own = name === null || name === path.basename(this.#file);
    if (own) this.#named = true;
    // Only the file's own events restart the wait (an editor's save is several); another entry's
    // join a pending re-read, so a file beside it written all the time (a log) cannot hold edits off.
    if (own || this.#timer === undefined) this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watcher?.close();
    clearTimeout(this.#timer);
    await this.#queue;
  }

  /** Resolves when every edit seen so far has been handled. */
  idle(): Promise<void> {
    return this.#queue;
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const named = this.#named;
      this.#named = false;
      this.#queue = this.#queue.then(async () => {
        if (this.#stopped) return;
        this.#arm();
        await this.#reload(named);
      });
    }, this.#debounceMs);
  }

  async #reload(named: boolean): Promise<void> {
    const text = await readFile(this.#file, 'utf8').catch(() => null);
    if (text === null) return; // deleted, or mid-save
    const again = text === this.#seen;
    this.#seen = text;
    const display = path.relative(this.#host.cwd, this.#file) || this.#file;
    if (text === this.#applied && this.#refused && !again) {
      // The last good text is back after a refused edit: said, so what showed the error learns the file is good again.
      this.#refused = false;
      this.#host.logger.info({ changed: [] }, 'config reloaded: the file is the config in force again');
      this.#host.bus.emit('config.reloaded', { job: null, file: display, changed: [], restartRequired: [] });
      return;
    }
    // No real change; or a text refused already, which only a save of the file itself reports again
    // (another entry of the directory changing is no news about it).
    if (text === this.#applied || (again && !named)) return;
    try {
      // The text compared is the text applied: no second read that could see a later version.
      const config = parseConfigText(this.#file, text, this.#env);
      const { changed, restartRequired } = this.#host.applyConfig(config);
      this.#applied = text;
      this.#refused = false;
      if (restartRequired.length > 0) {
        this.#host.logger.warn({ keys: restartRequired }, `config: ${restartRequired.join(', ')} changed; restart the host to apply`);
      }
      this.#host.logger.info({ changed }, 'config reloaded');
      this.#host.bus.emit('config.reloaded', { job: null, file: display, changed, restartRequired });
    } catch (err) {
      const error = isHostError(err) ? err : new HostError('CONFIG_INVALID', String(err));
      const at = typeof error.details?.['path'] === 'string' ? (error.details['path'] as string) : null;
      this.#host.logger.error({ code: error.code, path: at }, `config edit refused, the last good config stays: ${error.message}`);
      this.#refused = true;
      this.#host.bus.emit('config.error', { job: null, file: display, code: error.code, path: at, message: error.message });
    }
  }
}
