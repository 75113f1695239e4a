import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { threadForwardModules, threadOtelModules } from '../contract/otel-sdk.js';
import type { ForwardModules, ThreadOtelModules } from '../contract/otel-thread.js';
import { BUILT, CODE_DIR } from '../contract/package-root.js';
import { tracingSetUp } from '../contract/tracing.js';

/**
 * The code a worker thread starts from: `thread.ts` and what it imports of core, bundled by
 * esbuild into one ES module (a `data:` URL). A thread started from the TypeScript sources
 * would need a TypeScript loader registered in it first (tsx: ~130 ms and ~10 MB more per
 * thread); the bundle starts in ~25 ms and imports nothing but Node's own modules. Built once
 * per process from the `.ts` sources; the built package ships it prebuilt (`dist/workers/thread.js`).
 */

let script: Promise<URL> | undefined;

/** What stack traces call the bundle. */
const SOURCE_NAME = 'jobhost:worker-thread.js';

/**
 * Modules a thread loads by URL, resolved from here: pino, tsx where installed (a clone; null in
 * the package), and its tracer's when `OTEL_*` asks for one it exports itself.
 */
export function threadModules(): { pinoUrl: string; tsxUrl: string | null; otel: ThreadOtelModules | undefined } {
  let tsxUrl: string | null = null;
  try {
    tsxUrl = import.meta.resolve('tsx/esm/api');
  } catch {
    // The installed package ships no tsx: plugins are compiled by esbuild alone.
  }
  return { pinoUrl: import.meta.resolve('pino'), tsxUrl, otel: threadOtelModules() };
}

let forwarding: ForwardModules | undefined;

/**
 * For a thread starting now, without `OTEL_*` of its own: what it needs to hand its handler's spans
 * to the SDK set up in this process (an application's, in code), once one is.
 */
export function threadForwarding(): ForwardModules | undefined {
  if (!tracingSetUp()) return undefined;
  forwarding ??= threadForwardModules();
  return forwarding;
}

/** The URL to start a worker thread from. */
export function threadScript(): Promise<URL> {
  script ??= bundle();
  return script;
}

async function bundle(): Promise<URL> {
  // Built, the package ships the thread's bundle itself (`.ci/build.mjs`, the same options as below).
  const text = BUILT ? await readFile(path.join(CODE_DIR, 'workers', 'thread.js'), 'utf8') : await bundleSources();
  // Named, so a stack through the thread's own frames (in an error a handler logs or throws) shows
  // this name rather than the whole data: URL, ~40 KB of base64 in every frame.
  const code = `${text}\n//# sourceURL=${SOURCE_NAME}\n`;
  return new URL(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`);
}

/** From the TypeScript sources: `thread.ts` bundled by esbuild. */
async function bundleSources(): Promise<string> {
  // Loaded with the first worker thread: a host whose handlers run inline never needs it.
  const { build } = await import('esbuild');
  const out = await build({
    entryPoints: [path.join(CODE_DIR, 'workers', 'thread.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    logLevel: 'silent',
  });
  return out.outputFiles[0]!.text;
}
