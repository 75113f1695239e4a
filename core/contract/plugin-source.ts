/**
 * Where a handler runs, and what a worker thread needs to run it: the plugin file's compiled
 * code, as the main thread compiled it when it loaded the file. A worker evaluates exactly that
 * code (never a newer copy read from disk), so every thread runs the version the host registered.
 */

/** `worker`: in a pool of worker threads (the default); `inline`: in the host's main thread. */
export type Isolation = 'worker' | 'inline';

export const ISOLATIONS = ['worker', 'inline'] as const satisfies readonly Isolation[];

/** What `require(spec)` in one compiled file gives: another local file, or an ES module by URL. */
export type SourceLink = { readonly local: string } | { readonly url: string };

/** One file of a plugin (the plugin or a helper from the plugins directory), compiled to CommonJS shape. */
export interface SourceModule {
  /** Absolute path. */
  readonly file: string;
  readonly code: string;
  /** Every `require()` of the code, resolved when the file was compiled. */
  readonly links: Readonly<Record<string, SourceLink>>;
}

/** One load of one plugin file: what a worker thread evaluates to find its handler. */
export interface HandlerSource {
  /** Unique per load of the file: a worker evaluates each key once and drops superseded ones. */
  readonly key: string;
  /** The plugin file (absolute path). */
  readonly entry: string;
  /**
   * `compiled`: `modules` hold the code in CommonJS shape; `native` (a file with top-level await):
   * `modules` holds the one file as an ES module with absolute imports, imported from a `data:` URL.
   */
  readonly mode: 'compiled' | 'native';
  readonly modules: readonly SourceModule[];
}

/** Whether `value` has the shape of a `HandlerSource` (what `register()` is given comes from anywhere). */
export function isHandlerSource(value: unknown): value is HandlerSource {
  if (typeof value !== 'object' || value === null) return false;
  const s = value as Partial<HandlerSource>;
  return typeof s.key === 'string' && typeof s.entry === 'string' && (s.mode === 'compiled' || s.mode === 'native') && Array.isArray(s.modules);
}
