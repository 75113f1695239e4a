import { existsSync, realpathSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire, isBuiltin } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Loader, Message, Plugin } from 'esbuild';
import { HostError } from '../contract/errors.js';
import type { HandlerSource, SourceLink, SourceModule } from '../contract/plugin-source.js';
import { evaluateSource, ImportTimedOut, importExternal, nativeUrl } from '../workers/plugin-code.js';
import { type CompileCache, compileCacheFor, compileKey } from './compile-cache.js';

/**
 * Loads a plugin file so that a reload really reloads and frees the old version.
 *
 * Node's ESM cache never evicts: `import(file + '?v=n')` keeps every version in memory (measured
 * here: ~8–11 MB of heap per 1,000 reloads) and still serves stale helper modules. So a plugin
 * file, and every helper it imports from inside the plugins directory, is compiled with esbuild
 * to a CommonJS-shaped function and evaluated (`workers/plugin-code.ts`): each load gets fresh
 * helpers, and a replaced version is garbage once its runs finish. Imports from outside the
 * directory (packages, `../core/index.js`) are real ES modules, loaded once and shared with the
 * host. The compiled code is kept as the job's `HandlerSource`: worker threads evaluate that
 * same code, so they run exactly the version the host registered.
 *
 * A file with top-level `await` cannot take that shape. It is bundled as one ES module of its own
 * whose imports are absolute URLs (its helpers stay real ES modules: they do not reload), and that
 * text is imported from a `data:` URL, by the main thread and by every worker thread alike, so a
 * thread runs the version the host loaded even after the file on disk changed. Each version stays
 * in memory (the ESM cache never evicts).
 */

export interface PluginModule {
  /** The module's exports (`default` is the plugin). */
  exports: Record<string, unknown>;
  /** Absolute paths of the files it was built from: the plugin and its local helpers. */
  files: string[];
  /** How it was loaded. */
  mode: 'compiled' | 'native';
  /** What a worker thread evaluates to run the plugin's handler. */
  source: HandlerSource;
}

const LOADERS: Record<string, Loader> = { '.ts': 'ts', '.mts': 'ts', '.cts': 'ts', '.js': 'js', '.mjs': 'js', '.cjs': 'js', '.json': 'json' };
const RESOLVE_TRIES = ['', '.ts', '.js', '.mts', '.mjs', '/index.ts', '/index.js'];
const REQUIRE_CALL = /\brequire\((["'])([^"'\n]+)\1\)/g;
/** esbuild's interop call in "node mode": `__toESM(require("x"), 1)`. */
const NODE_MODE_INTEROP = /__toESM\((require\("(?:[^"\\\n]|\\.)*"\)), 1\)/g;

/** Numbers each load, for its `HandlerSource.key`. */
let loadCount = 0;

/** The compile cache of each plugins directory (`compile-cache.ts`), found once. */
const caches = new Map<string, CompileCache | null>();

function cacheFor(root: string): CompileCache | null {
  let cache = caches.get(root);
  if (cache === undefined) caches.set(root, (cache = compileCacheFor(root)));
  return cache;
}

/**
 * Imports a plugin file within `timeoutMs`; `root` is the plugins directory (what counts as local).
 * An aborted `signal` stops the wait at once (an import itself cannot be stopped; its result is dropped).
 */
export async function loadPluginModule(file: string, root: string, timeoutMs: number, signal?: AbortSignal): Promise<PluginModule> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HostError('PLUGIN_IMPORT_TIMEOUT', `import did not finish within ${timeoutMs}ms`, { file })), timeoutMs);
    onAbort = () => reject(new HostError('PLUGIN_IMPORT_FAILED', 'the plugin loader stopped before the import finished', { file }));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([new Build(path.resolve(root), Date.now() + timeoutMs, timeoutMs).entry(path.resolve(file)), timeout]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

function importFailed(file: string, err: unknown): HostError {
  if (err instanceof HostError) return err;
  // What an import hook of ours threw inside an esbuild build (a package that cannot be found).
  const detail = (err as { errors?: Message[] }).errors?.[0]?.detail as unknown;
  if (detail instanceof HostError) return detail;
  const message = (err instanceof Error ? err.message : String(err)).replace(/^(Transform|Build) failed with \d+ errors?:\n/, '');
  // Files under the project as the event's `file` names them (plugins/x.ts:1:16), not the server's
  // absolute paths: relative to the working directory or the plugins directory; any other
  // (jobhost's own install, a symlink's target) cut to its package's part or its file name.
  const cwd = process.cwd();
  const shown = cwd === path.sep ? message : message.replaceAll(cwd + path.sep, '');
  return new HostError('PLUGIN_IMPORT_FAILED', withoutPaths(shown.replaceAll(path.dirname(path.resolve(file)) + path.sep, '')), { file }, { cause: err });
}

/**
 * Absolute paths (and file: URLs) left in a message: from their last `node_modules/` on (which
 * package), else cut to `…/<file name>`. URLs of other schemes are left alone.
 */
function withoutPaths(message: string): string {
  return message.replace(/(?:file:\/\/)?(?<![\w.:/~-])\/(?:[^\s'"`():,/]+\/)+([^\s'"`():,/]+)/g, (whole: string, name: string) => {
    const at = whole.lastIndexOf('/node_modules/');
    return at >= 0 ? `…${whole.slice(at)}` : `…/${name}`;
  });
}

/** One load of one plugin: its local files are compiled once each and shared within the load. */
class Build {
  readonly #root: string;
  readonly #modules = new Map<string, SourceModule>();
  readonly #cache: CompileCache | null;
  /** When the import's time is up (epoch ms): its files' synchronous code is stopped there. */
  readonly #deadline: number;
  readonly #timeoutMs: number;

  constructor(root: string, deadline: number, timeoutMs: number) {
    this.#root = root;
    this.#cache = cacheFor(root);
    this.#deadline = deadline;
    this.#timeoutMs = timeoutMs;
  }

  async entry(file: string): Promise<PluginModule> {
    const key = `${file}#${++loadCount}`;
    try {
      await this.#add(file);
    } catch (err) {
      if (err instanceof TopLevelAwait) return this.#native(file, key);
      throw importFailed(file, err);
    }
    const source: HandlerSource = { key, entry: file, mode: 'compiled', modules: [...this.#modules.values()] };
    try {
      const exports = await evaluateSource(source, importExternal, this.#deadline);
      return { exports, files: [...this.#modules.keys()], mode: 'compiled', source };
    } catch (err) {
      if (err instanceof ImportTimedOut) throw new HostError('PLUGIN_IMPORT_TIMEOUT', `import did not finish within ${this.#timeoutMs}ms`, { file });
      throw importFailed(file, err);
    }
  }

  /** A file with top-level await: its text as an ES module with absolute imports, imported by a `data:` URL. */
  async #native(file: string, key: string): Promise<PluginModule> {
    try {
      const source: HandlerSource = { key, entry: file, mode: 'native', modules: [{ file, code: await this.#esm(file, key), links: {} }] };
      const exports = (await import(nativeUrl(source))) as Record<string, unknown>;
      return { exports, files: [file], mode: 'native', source };
    } catch (err) {
      throw importFailed(file, err);
    }
  }

  /**
   * The file as one ES module that runs from any URL: every import is made absolute (a helper by
   * its file URL, a package as compiled plugins resolve it, Node's modules as they are), and
   * `import.meta` is the file's own. A `data:` module cannot resolve a relative or bare specifier.
   */
  async #esm(file: string, key: string): Promise<string> {
    const url = pathToFileURL(file).href;
    const absolute: Plugin = {
      name: 'jobhost-absolute-imports',
      setup: (build) => {
        build.onResolve({ filter: /.*/ }, (args) => ({ path: isBuiltin(args.path) ? args.path : this.#importUrl(file, args.path), external: true }));
      },
    };
    const { build } = await import('esbuild');
    const out = await build({
      stdin: { contents: await readFile(file, 'utf8'), sourcefile: file, resolveDir: path.dirname(file), loader: LOADERS[path.extname(file)] ?? 'js' },
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      sourcemap: 'inline',
      logLevel: 'silent',
      plugins: [absolute],
      define: { 'import.meta': '__jobhostImportMeta' },
      banner: {
        // The key makes each load a module instance of its own, as a file's version query did.
        js: `// jobhost plugin ${JSON.stringify(key)}\nconst __jobhostImportMeta = { url: ${JSON.stringify(url)}, filename: ${JSON.stringify(file)}, dirname: ${JSON.stringify(path.dirname(file))}, resolve: (s) => new URL(s, ${JSON.stringify(url)}).href };`,
      },
      // Stack traces name the plugin file, not the data: URL.
      footer: { js: `//# sourceURL=${file}` },
    });
    return out.outputFiles[0]!.text;
  }

  /** `#externalUrl`, failing as a missing local file does (a HostError the build hands back as it is). */
  #importUrl(from: string, spec: string): string {
    try {
      return this.#externalUrl(from, spec);
    } catch (err) {
      throw new HostError(
        'PLUGIN_IMPORT_FAILED',
        `cannot find module "${spec}" imported from ${path.relative(this.#root, from)}`,
        { file: from },
        { cause: err },
      );
    }
  }

  /** Compiles a local file and, through its `require()`s, every local file it reaches. */
  async #add(file: string): Promise<void> {
    const code = await this.#compile(file);
    const links: Record<string, SourceLink> = {};
    this.#modules.set(file, { file, code, links });
    for (const match of code.matchAll(REQUIRE_CALL)) {
      const spec = match[2]!;
      if (spec in links) continue;
      const local = this.#local(file, spec);
      if (local === null) {
        links[spec] = { url: this.#externalUrl(file, spec) };
        continue;
      }
      links[spec] = { local };
      if (this.#modules.has(local)) continue;
      try {
        await this.#add(local);
      } catch (err) {
        if (err instanceof TopLevelAwait)
          throw new HostError('PLUGIN_IMPORT_FAILED', `${path.relative(this.#root, local)}: a helper module cannot use top-level await`, { file });
        throw importFailed(local, err);
      }
    }
  }

  async #compile(file: string): Promise<string> {
    const source = await readFile(file, 'utf8');
    const loader = LOADERS[path.extname(file)] ?? 'js';
    if (loader === 'json') return `module.exports = ${JSON.stringify(JSON.parse(source))};`;
    const key = this.#cache ? compileKey(file, loader, source) : '';
    const kept = await this.#cache?.get(key);
    if (kept !== undefined) return kept;
    try {
      // esbuild is loaded by the first plugin file to compile, not by every start of the process.
      const { transform } = await import('esbuild');
      const out = await transform(source, {
        loader,
        format: 'cjs',
        platform: 'node',
        target: 'node20',
        sourcefile: file,
        sourcemap: 'inline',
        define: { 'import.meta': '__jobhostImportMeta' },
        logLevel: 'silent',
      });
      // esbuild's "node mode" interop (an .mjs or .mts file) takes a module's whole namespace as
      // its default import; every module here is an ES module (Node's, or compiled: __esModule)
      // or CommonJS, which the plain interop reads as Node does: `import x from 'pkg'` is its default.
      const code = out.code.replace(NODE_MODE_INTEROP, '__toESM($1)');
      void this.#cache?.put(key, code);
      return code;
    } catch (err) {
      if (/Top-level await is currently not supported/.test((err as Error).message)) throw new TopLevelAwait();
      throw err;
    }
  }

  /** The absolute path of a relative import inside the plugins directory, or null. */
  #local(from: string, spec: string): string | null {
    if (!spec.startsWith('./') && !spec.startsWith('../')) return null;
    const base = path.resolve(path.dirname(from), spec);
    if (!base.startsWith(this.#root + path.sep) || base.includes(`${path.sep}node_modules${path.sep}`)) return null;
    const stem = base.replace(/\.(js|mjs|cjs)$/, '');
    for (const candidate of [base, ...RESOLVE_TRIES.map((ext) => stem + ext)]) {
      if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
    }
    throw new HostError('PLUGIN_IMPORT_FAILED', `cannot find module "${spec}" imported from ${path.relative(this.#root, from)}`);
  }

  /**
   * The URL of a module from outside the plugins directory, imported as a real ES module.
   * Packages resolve from the host's own node_modules first (so plugins share the host's zod),
   * then from the plugin's location.
   */
  #externalUrl(from: string, spec: string): string {
    if (spec.startsWith('.')) {
      // Canonical (symlinks resolved, as Node resolves imports): a worker thread tells jobhost's
      // own index by its URL, and a project may link core/ in.
      const target = path.resolve(path.dirname(from), spec);
      let dir = path.dirname(target);
      try {
        dir = realpathSync(dir);
      } catch {
        // a folder that does not exist: the import fails later with its own error
      }
      return pathToFileURL(path.join(dir, path.basename(target))).href;
    }
    try {
      return import.meta.resolve(spec);
    } catch (err) {
      // Not found from the host (ERR_MODULE_NOT_FOUND; a loader hook in between may drop the
      // code): from the plugin's own location, else the first error stands.
      try {
        return pathToFileURL(createRequire(from).resolve(spec)).href;
      } catch {
        throw err;
      }
    }
  }
}

class TopLevelAwait extends Error {}
