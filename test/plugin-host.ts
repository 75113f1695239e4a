import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ConfigInput } from '../core/contract/config.js';
import { type PluginLoader, usePluginDirectory } from '../core/loader/plugin-directory.js';
import { startHost, type Tap, type TestHost, tempDir, until } from './helpers.js';

/** jobhost's index as a plugin file in a temp dir imports it. */
export const CORE = pathToFileURL(path.resolve(import.meta.dirname, '../core/index.ts')).href;

export interface PluginHost extends TestHost {
  /** The project directory (the host's cwd); plugins live in `plugins/` under it. */
  dir: string;
  plugins: string;
  loader: PluginLoader;
  /** A file under the project directory, for handlers to leave marks in. */
  mark(name: string): string;
  /** The text of a mark, or null while the handler has not written it. */
  read(name: string): string | null;
  /** Waits (bounded, real time) until a handler has written the mark. */
  marked(name: string, ms?: number): Promise<string>;
}

/**
 * A started host (manual clock, real store) with a real plugins directory holding `files`, so
 * handlers run as plugin files do: in worker threads unless they say otherwise. Two threads by
 * default, whatever the machine, and a short grace.
 */
export async function pluginHost(
  t: Tap,
  files: Record<string, string>,
  options: { config?: ConfigInput; logger?: import('../core/contract/logger.js').Logger; processHandlers?: boolean } = {},
): Promise<PluginHost> {
  const { dir, plugins } = project(t, files);
  const th = await startHost(t, {
    start: false,
    cwd: dir,
    config: withWorkers(options.config),
    processHandlers: options.processHandlers,
    ...(options.logger && { logger: options.logger }),
  });
  return finish(th, dir, plugins);
}

function withWorkers(config: ConfigInput = {}): ConfigInput {
  return { ...config, workers: { size: 2, grace: 1000, ...config.workers } };
}

function project(t: Tap, files: Record<string, string>): { dir: string; plugins: string } {
  const dir = tempDir(t);
  const plugins = path.join(dir, 'plugins');
  mkdirSync(plugins);
  mkdirSync(path.join(dir, 'marks'));
  writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }');
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(plugins, name)), { recursive: true });
    writeFileSync(path.join(plugins, name), body);
  }
  return { dir, plugins };
}

async function finish<T extends TestHost>(th: T, dir: string, plugins: string): Promise<T & PluginHost> {
  const loader = usePluginDirectory(th.host, { dir: plugins, watch: true, importTimeoutMs: 10_000, debounceMs: 30, rescanMs: 0 });
  await th.host.start();
  const mark = (name: string): string => path.join(dir, 'marks', name);
  // A mark is written by writeFileSync in a handler: between its open (the file is there, empty)
  // and its write, a read finds nothing yet. Every mark says something, so empty means not yet.
  const read = (name: string): string | null => (existsSync(mark(name)) ? readFileSync(mark(name), 'utf8') || null : null);
  return {
    ...th,
    dir,
    plugins,
    loader,
    mark,
    read,
    async marked(name, ms = 10_000) {
      await until(() => read(name) !== null, ms, `mark ${name}`);
      return read(name)!;
    },
  };
}
