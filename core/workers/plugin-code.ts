import path from 'node:path';
import { pathToFileURL } from 'node:url';
import vm from 'node:vm';
import type { HandlerSource, SourceModule } from '../contract/plugin-source.js';

/**
 * Evaluates a compiled plugin file (see `loader/plugin-module.ts`, which compiles it): the one
 * code path the main thread uses when it loads a plugin and a worker thread uses when it runs
 * one, so both see the same modules. Each evaluation gets fresh local files (a reload is real,
 * and an old version is garbage once nothing holds it); imports from outside the plugins
 * directory are ES modules by URL, loaded by `load` (each thread keeps its own).
 */

/** Imports an ES module by URL (the caller decides how, e.g. with a TypeScript loader). */
export type LoadModule = (url: string) => Promise<unknown>;

/** Imports a module from outside the plugins directory: a `.json` one with its import attribute, as Node wants. */
export function importExternal(url: string): Promise<unknown> {
  return /\.json$/i.test(url.split(/[?#]/, 1)[0]!) ? import(url, { with: { type: 'json' } }) : import(url);
}

/**
 * The plugin file's exports. With `deadline` (epoch ms), the synchronous part of each of its
 * files runs under V8's watchdog (`vm`'s `timeout`): a file that loops for ever as it loads is
 * stopped there, with IMPORT_TIMED_OUT, and the thread is free again. A race with a timer cannot
 * do that: no timer fires while the thread is held.
 */
export async function evaluateSource(source: HandlerSource, load: LoadModule, deadline?: number): Promise<Record<string, unknown>> {
  if (source.mode === 'native') return (await load(nativeUrl(source))) as Record<string, unknown>;
  const externals = new Map<string, unknown>();
  for (const mod of source.modules) {
    for (const link of Object.values(mod.links)) {
      if ('url' in link && !externals.has(link.url)) externals.set(link.url, esModuleShape(await load(link.url)));
    }
  }
  const evaluation = new Evaluation(source.modules, externals, deadline);
  try {
    const exports = evaluation.require(source.entry);
    // A CommonJS plugin (`module.exports = definePlugin(...)`): its exports are its default, as Node's import() gives them.
    return (exports as { __esModule?: unknown } | null)?.__esModule === true ? exports : { default: exports };
  } finally {
    // Only the load is bounded: a `require()` the plugin makes later (lazily, in its handler) runs as any code does.
    evaluation.loaded();
  }
}

/** What `evaluateSource` throws when a file's load ran past its deadline. */
export class ImportTimedOut extends Error {
  readonly code = 'IMPORT_TIMED_OUT';
}

/** Calls the function in its global slot: a script, so that `runInThisContext` can bound the call with its `timeout`. */
const BOUNDED = Symbol.for('jobhost.boundedCall');
let boundedScript: vm.Script | undefined;

/** Runs `call` on this thread, stopped by V8 at `deadline` (a watchdog thread ends it; the plugin's code cannot catch that). */
function runBounded(call: () => void, deadline: number): void {
  boundedScript ??= new vm.Script(`globalThis[Symbol.for('jobhost.boundedCall')]()`, { filename: 'jobhost:bounded-call' });
  const slot = globalThis as unknown as Record<symbol, unknown>;
  const outer = slot[BOUNDED];
  slot[BOUNDED] = call;
  try {
    boundedScript.runInThisContext({ timeout: Math.max(1, Math.ceil(deadline - Date.now())) });
  } catch (err) {
    // Ours only once the deadline has passed: a plugin's own vm call with a timeout of its own throws the same code.
    if ((err as { code?: unknown }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT' && Date.now() >= deadline - 1) {
      throw new ImportTimedOut('the import ran past its time limit on the thread (a loop that never ends?)');
    }
    throw err;
  } finally {
    if (outer === undefined) delete slot[BOUNDED];
    else slot[BOUNDED] = outer;
  }
}

/**
 * A native (top-level await) plugin's URL for one load: its text, as the main thread built it (see
 * `loader/plugin-module.ts`), so a thread imports that version and never the file as it is on disk now.
 */
export function nativeUrl(source: HandlerSource): string {
  return `data:text/javascript;charset=utf-8,${encodeURIComponent(source.modules[0]?.code ?? '')}`;
}

/** Marks a namespace a `LoadModule` made in CommonJS interop shape already: used as it is. */
export const READY_SHAPE = Symbol('jobhost.readyShape');

/** An ES module namespace as esbuild's CommonJS interop reads it: `import x from` maps to `default`. */
function esModuleShape(ns: unknown): unknown {
  if (typeof ns === 'object' && ns !== null && READY_SHAPE in ns) return ns;
  return Object.assign(Object.create(null) as object, ns, { __esModule: true });
}

class Evaluation {
  readonly #files: Map<string, SourceModule>;
  readonly #externals: Map<string, unknown>;
  readonly #done = new Map<string, { exports: Record<string, unknown> }>();
  #deadline: number | undefined;

  constructor(modules: readonly SourceModule[], externals: Map<string, unknown>, deadline: number | undefined) {
    this.#files = new Map(modules.map((m) => [m.file, m]));
    this.#externals = externals;
    this.#deadline = deadline;
  }

  /** The load is over: later requires are not bounded. */
  loaded(): void {
    this.#deadline = undefined;
  }

  require(file: string): Record<string, unknown> {
    const cached = this.#done.get(file);
    if (cached) return cached.exports; // a cycle, or a helper shared by two files of this plugin
    const mod = this.#files.get(file);
    if (!mod) throw new Error(`the compiled plugin has no module ${file}`);
    const module = { exports: {} as Record<string, unknown> };
    this.#done.set(file, module);
    const fn = vm.compileFunction(mod.code, ['exports', 'require', 'module', '__filename', '__dirname', '__jobhostImportMeta'], {
      filename: file,
      // Only when the code has a dynamic import(): the option prints an experimental warning.
      ...(mod.code.includes('import(') ? { importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER } : {}),
    });
    const requireFn = (spec: string): unknown => {
      const link = mod.links[spec];
      if (link === undefined) throw new Error(`cannot load "${spec}" from ${file}: not seen when the file was compiled`);
      return 'local' in link ? this.require(link.local) : this.#externals.get(link.url);
    };
    const meta = {
      url: pathToFileURL(file).href,
      filename: file,
      dirname: path.dirname(file),
      resolve: (s: string) => pathToFileURL(path.resolve(path.dirname(file), s)).href,
    };
    const call = (): unknown => fn(module.exports, requireFn, module, file, path.dirname(file), meta);
    if (this.#deadline === undefined) call();
    else runBounded(call, this.#deadline);
    return module.exports;
  }
}
