import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/**
 * The code a worker thread starts from: `thread.ts` and what it imports of core, bundled by
 * esbuild into one ES module (a `data:` URL). A thread started from the TypeScript sources
 * would need a TypeScript loader registered in it first (tsx: ~130 ms and ~10 MB more per
 * thread); the bundle starts in ~25 ms and imports nothing but Node's own modules. Built once
 * per process, from `.ts` sources or compiled `.js` alike.
 */

let script: Promise<URL> | undefined;

/** The URL to start a worker thread from. */
export function threadScript(): Promise<URL> {
  script ??= bundle();
  return script;
}

async function bundle(): Promise<URL> {
  const here = fileURLToPath(import.meta.url);
  const out = await build({
    entryPoints: [path.join(path.dirname(here), `thread${path.extname(here)}`)],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    logLevel: 'silent',
  });
  return new URL(`data:text/javascript;base64,${Buffer.from(out.outputFiles[0]!.contents).toString('base64')}`);
}
