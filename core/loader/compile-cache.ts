import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * Plugin code as esbuild compiled it, kept between starts in the project's
 * `node_modules/.cache/jobhost/plugins` (the place babel-loader, ava and nyc use): a start whose
 * plugins have not changed reads their code back and loads no esbuild at all (importing it and
 * starting its service took ~60 ms of every start). An entry is named by the hash of all that
 * makes the output (the file's path and text, the loader, esbuild's version, this format), so an
 * edit or an upgrade misses and compiles again; nothing is ever invalidated by hand. Without a
 * `node_modules` above the plugins directory, or when the cache cannot be read or written,
 * plugins compile as before: the cache only ever saves work.
 */

/** Bumped when what the compile makes changes in a way the key does not see (its options). */
const FORMAT = 2;
/** Entries kept: past this, the oldest written are removed down to `KEEP_AFTER_PRUNE`. */
const MAX_ENTRIES = 256;
const KEEP_AFTER_PRUNE = 192;

let esbuildVersion: string | undefined;

/** esbuild's version, from its package.json (read once, without loading esbuild). */
function compilerVersion(): string {
  if (esbuildVersion === undefined) {
    try {
      const file = createRequire(import.meta.url).resolve('esbuild/package.json');
      esbuildVersion = String((JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version);
    } catch {
      esbuildVersion = 'unknown';
    }
  }
  return esbuildVersion;
}

/** The cache key of one compile: what decides esbuild's output. */
export function compileKey(file: string, loader: string, source: string): string {
  return createHash('sha256')
    .update(JSON.stringify([FORMAT, compilerVersion(), file, loader]))
    .update('\0')
    .update(source)
    .digest('hex');
}

/** The cache for the plugins under `root`, or null when no `node_modules` is above it. */
export function compileCacheFor(root: string): CompileCache | null {
  let dir = path.resolve(root);
  for (;;) {
    const modules = path.join(dir, 'node_modules');
    try {
      if (existsSync(modules) && statSync(modules).isDirectory()) return new CompileCache(path.join(modules, '.cache', 'jobhost', 'plugins'));
    } catch {
      return null;
    }
    const parent = path.dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

export class CompileCache {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** The code kept under `key`, or undefined (a miss, or a cache that cannot be read). */
  async get(key: string): Promise<string | undefined> {
    try {
      return await readFile(path.join(this.dir, `${key}.js`), 'utf8');
    } catch {
      return undefined;
    }
  }

  /** Keeps `code` under `key`: written whole (a temp file, then a rename) or not at all; failures are ignored. */
  async put(key: string, code: string): Promise<void> {
    const file = path.join(this.dir, `${key}.js`);
    const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      await mkdir(this.dir, { recursive: true });
      await writeFile(temp, code);
      await rename(temp, file);
      await this.#prune();
    } catch {
      await unlink(temp).catch(() => undefined);
    }
  }

  async #prune(): Promise<void> {
    const names = (await readdir(this.dir)).filter((n) => n.endsWith('.js'));
    if (names.length <= MAX_ENTRIES) return;
    const aged = await Promise.all(
      names.map(async (n) => {
        const file = path.join(this.dir, n);
        return {
          file,
          ms: await stat(file).then(
            (s) => s.mtimeMs,
            () => 0,
          ),
        };
      }),
    );
    aged.sort((a, b) => a.ms - b.ms);
    await Promise.all(aged.slice(0, aged.length - KEEP_AFTER_PRUNE).map((e) => unlink(e.file).catch(() => undefined)));
  }
}
