import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import vm from 'node:vm';
import { type Loader, transform } from 'esbuild';
import { HostError } from '../contract/errors.js';

/**
 * Evaluates a plugin file so that a reload really reloads and frees the old version.
 *
 * Node's ESM cache never evicts: `import(file + '?v=n')` keeps every version in memory (measured
 * here: ~8–11 MB of heap per 1,000 reloads) and still serves stale helper modules. So a plugin
 * file, and every helper it imports from inside the plugins directory, is compiled with esbuild
 * to a CommonJS-shaped function and run with `vm.compileFunction`: each load gets fresh helpers,
 * and a replaced version is garbage once its runs finish. Imports from outside the directory
 * (packages, `../core/index.js`) are real ES modules, loaded once and shared with the host.
 *
 * A file with top-level `await` cannot take that shape; it is imported as a native ES module
 * (with a version query), where its helpers do not reload and old versions stay in memory.
 */

export interface PluginModule {
  /** The module's exports (`default` is the plugin). */
  exports: Record<string, unknown>;
  /** Absolute paths of the files it was built from: the plugin and its local helpers. */
  files: string[];
  /** How it was loaded. */
  mode: 'compiled' | 'native';
}

const LOADERS: Record<string, Loader> = { '.ts': 'ts', '.mts': 'ts', '.cts': 'ts', '.js': 'js', '.mjs': 'js', '.cjs': 'js', '.json': 'json' };
const RESOLVE_TRIES = ['', '.ts', '.js', '.mts', '.mjs', '/index.ts', '/index.js'];
const REQUIRE_CALL = /\brequire\((["'])([^"'\n]+)\1\)/g;

let nativeVersion = 0;

/** Imports a plugin file within `timeoutMs`; `root` is the plugins directory (what counts as local). */
export async function loadPluginModule(file: string, root: string, timeoutMs: number): Promise<PluginModule> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HostError('PLUGIN_IMPORT_TIMEOUT', `import did not finish within ${timeoutMs}ms`, { file })), timeoutMs);
  });
  try {
    return await Promise.race([new Build(path.resolve(root)).entry(path.resolve(file)), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function importFailed(file: string, err: unknown): HostError {
  if (err instanceof HostError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new HostError('PLUGIN_IMPORT_FAILED', message.replace(/^Transform failed with \d+ errors?:\n/, ''), { file }, { cause: err });
}

/** One load of one plugin: its local files are compiled once each and shared within the load. */
class Build {
  readonly #root: string;
  readonly #modules = new Map<string, { exports: Record<string, unknown> }>();
  readonly #externals = new Map<string, unknown>();

  constructor(root: string) {
    this.#root = root;
  }

  async entry(file: string): Promise<PluginModule> {
    let code: string;
    try {
      code = await this.#compile(file);
    } catch (err) {
      if (err instanceof TopLevelAwait) return this.#native(file);
      throw importFailed(file, err);
    }
    const compiled = new Map<string, string>([[file, code]]);
    await this.#collect(file, code, compiled);
    try {
      const exports = this.#require(file, compiled);
      return { exports, files: [...compiled.keys()], mode: 'compiled' };
    } catch (err) {
      throw importFailed(file, err);
    }
  }

  async #native(file: string): Promise<PluginModule> {
    try {
      const exports = (await import(`${pathToFileURL(file).href}?v=${++nativeVersion}`)) as Record<string, unknown>;
      return { exports, files: [file], mode: 'native' };
    } catch (err) {
      throw importFailed(file, err);
    }
  }

  async #compile(file: string): Promise<string> {
    const source = await readFile(file, 'utf8');
    const loader = LOADERS[path.extname(file)] ?? 'js';
    if (loader === 'json') return `module.exports = ${JSON.stringify(JSON.parse(source))};`;
    try {
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
      return out.code;
    } catch (err) {
      if (/Top-level await is currently not supported/.test((err as Error).message)) throw new TopLevelAwait();
      throw err;
    }
  }

  /** Finds every `require()` of the compiled files: local files are compiled, the rest imported. */
  async #collect(file: string, code: string, compiled: Map<string, string>): Promise<void> {
    for (const match of code.matchAll(REQUIRE_CALL)) {
      const spec = match[2]!;
      const local = this.#local(file, spec);
      if (local !== null) {
        if (compiled.has(local)) continue;
        let sub: string;
        try {
          sub = await this.#compile(local);
        } catch (err) {
          if (err instanceof TopLevelAwait)
            throw new HostError('PLUGIN_IMPORT_FAILED', `${path.relative(this.#root, local)}: a helper module cannot use top-level await`, { file });
          throw importFailed(local, err);
        }
        compiled.set(local, sub);
        await this.#collect(local, sub, compiled);
      } else if (!this.#externals.has(this.#externalKey(file, spec))) {
        this.#externals.set(this.#externalKey(file, spec), await this.#importExternal(file, spec));
      }
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

  #externalKey(from: string, spec: string): string {
    return spec.startsWith('.') ? path.resolve(path.dirname(from), spec) : spec;
  }

  /**
   * Imports a module from outside the plugins directory as a real ES module. Packages resolve
   * from the host's own node_modules first (so plugins share the host's zod), then from the
   * plugin's location.
   */
  async #importExternal(from: string, spec: string): Promise<unknown> {
    let ns: Record<string, unknown>;
    if (spec.startsWith('.')) {
      ns = (await import(pathToFileURL(path.resolve(path.dirname(from), spec)).href)) as Record<string, unknown>;
    } else {
      try {
        ns = (await import(spec)) as Record<string, unknown>;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw err;
        ns = (await import(pathToFileURL(createRequire(from).resolve(spec)).href)) as Record<string, unknown>;
      }
    }
    // esbuild's interop reads `__esModule` to map `import x from` to `default`, as ESM does.
    return Object.assign(Object.create(null) as object, ns, { __esModule: true });
  }

  #require(file: string, compiled: Map<string, string>): Record<string, unknown> {
    const cached = this.#modules.get(file);
    if (cached) return cached.exports; // a cycle, or a helper shared by two files of this plugin
    const module = { exports: {} as Record<string, unknown> };
    this.#modules.set(file, module);
    const code = compiled.get(file)!;
    const fn = vm.compileFunction(code, ['exports', 'require', 'module', '__filename', '__dirname', '__jobhostImportMeta'], {
      filename: file,
      // Only when the code has a dynamic import(): the option prints an experimental warning.
      ...(code.includes('import(') ? { importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER } : {}),
    });
    const requireFn = (spec: string): unknown => {
      const local = this.#local(file, spec);
      if (local !== null) return this.#require(local, compiled);
      const key = this.#externalKey(file, spec);
      if (this.#externals.has(key)) return this.#externals.get(key);
      throw new HostError('PLUGIN_IMPORT_FAILED', `cannot load "${spec}" from ${file}`);
    };
    const meta = {
      url: pathToFileURL(file).href,
      filename: file,
      dirname: path.dirname(file),
      resolve: (s: string) => pathToFileURL(path.resolve(path.dirname(file), s)).href,
    };
    fn(module.exports, requireFn, module, file, path.dirname(file), meta);
    return module.exports;
  }
}

class TopLevelAwait extends Error {}
