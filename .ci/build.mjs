// `npm run build`: the package's JavaScript and type declarations in dist/, built from core/, plus
// every other file of core/ the runtime reads beside its modules (the dashboard's static files
// today). `npm pack` runs it first (prepack), so a tarball always carries a fresh build; the
// development loop never needs it (tsx runs core/ as it is).
//
// The JavaScript is bundled (issue 26): loading ~320 modules of ours and ~400 CommonJS files of
// dependencies was most of `jobhost start`'s time to its first /ready. esbuild bundles the three
// entries (the library, the client, the command) with code splitting, so they share one copy of
// every module (a plugin importing `jobhost` in a started host gets the host's own classes) and
// what loads late (a command, the redis backend) stays a chunk of its own. Dependencies are
// inlined only where listed in INLINE: every other one (and the zod peer, which plugins share)
// stays a package imported at run time, which keeps the lazy ones lazy (BullMQ, ioredis,
// prom-client, @fastify/swagger, the OTel SDK, esbuild) and the ones that need their own files
// whole (pino's transports, native modules). Type declarations come from tsc, one per module.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const core = path.join(root, 'core');
const dist = path.join(root, 'dist');

/**
 * Dependencies loaded at every start, pure JavaScript, that read no file of their own: inlined.
 * Not `@opentelemetry/api`: the OTel SDK, loaded later from its package, sets its tracer provider
 * as the delegate of the proxy in its own copy of the API, so a tracer the host took from another
 * copy before that would stay a no-op (measured: the host's spans went missing).
 */
const INLINE = new Set(['fastify', 'fastify-plugin', 'fastify-type-provider-zod', '@fastify/websocket', 'ws', 'croner', 'lowdb', 'commander', 'eventemitter3']);
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const external = Object.keys({ ...pkg.dependencies, ...pkg.peerDependencies })
  .filter((name) => !INLINE.has(name))
  .flatMap((name) => [name, `${name}/*`]);

/**
 * esbuild's options for Node: the worker thread's script is bundled with these from the sources too (core/workers/thread-script.ts).
 * Whitespace and syntax minified, names kept (`keepNames` below; identifiers are not renamed):
 * V8 compiles a third less text at every start (the shared chunk 2.2 → 1.4 MB, ~40 ms of a start
 * measured importing it). A linked source map (without the sources) maps stack traces back to
 * core/ under `node --enable-source-maps`.
 */
const NODE = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'warning',
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  sourcesContent: false,
};

// From scratch: a module deleted from core/ must not live on in the package.
rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
// Everything the build says goes to stderr: `npm pack --json` runs it and its stdout must stay JSON.
execFileSync(process.execPath, [tsc, '-p', path.join(root, '.ci', 'tsconfig.build.json'), '--emitDeclarationOnly'], {
  cwd: root,
  stdio: ['ignore', 2, 2],
});

const bundled = await build({
  ...NODE,
  entryPoints: { index: path.join(core, 'index.ts'), client: path.join(core, 'client.ts'), bin: path.join(core, 'bin.ts') },
  outdir: dist,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  external,
  // Stack traces and error names keep the sources' class and function names.
  keepNames: true,
  // The CommonJS dependencies inlined call require() for Node's modules (and for the packages left
  // external): an ES module has none, so each file gets one of its own.
  banner: { js: "import { createRequire as __jobhostCreateRequire } from 'node:module';\nconst require = __jobhostCreateRequire(import.meta.url);" },
  metafile: true,
});
// The worker thread's script: one file that imports nothing but Node's own modules.
// No source map: a thread loads it as a `data:` URL, against which the map's relative URL is invalid (the thread crashed).
await build({ ...NODE, sourcemap: false, entryPoints: [path.join(core, 'workers', 'thread.ts')], outfile: path.join(dist, 'workers', 'thread.js') });

// Not a list of assets: whatever non-TypeScript file lands in core/ (a static file, a worker's
// data) ships without anyone remembering to add it here. bin.mjs is the command itself and ships
// from core/ (package.json "files").
let copied = 0;
for (const entry of readdirSync(core, { recursive: true, withFileTypes: true })) {
  // tsconfig.json: the dashboard's type-check settings (`npm run lint`), nothing the runtime reads.
  if (!entry.isFile() || entry.name.endsWith('.ts') || entry.name === 'tsconfig.json') continue;
  const rel = path.relative(core, path.join(entry.parentPath, entry.name));
  if (rel === 'bin.mjs') continue;
  mkdirSync(path.join(dist, path.dirname(rel)), { recursive: true });
  cpSync(path.join(core, rel), path.join(dist, rel));
  copied++;
}
const files = Object.keys(bundled.metafile.outputs).length;
console.error(`built dist/ (${files} bundled files, the worker thread's script, ${copied} asset files copied)`);
