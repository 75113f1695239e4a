import path from 'node:path';
import { CODE_DIR } from './package-root.js';

/**
 * A thread's script from the TypeScript sources: `entry` (under `core/`) and what it imports of
 * core, bundled by esbuild into one ES module's text. A thread started from the sources would
 * need a TypeScript loader registered in it first (tsx: ~130 ms and ~10 MB more per thread); the
 * bundle imports nothing but Node's own modules and what it loads by URL. The built package ships
 * these bundles prebuilt (`.ci/build.mjs`, the same options).
 */
export async function bundleSources(entry: string): Promise<string> {
  // Loaded with the first thread: a host that starts none never needs it.
  const { build } = await import('esbuild');
  const out = await build({
    entryPoints: [path.join(CODE_DIR, entry)],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    logLevel: 'silent',
  });
  return out.outputFiles[0]!.text;
}
