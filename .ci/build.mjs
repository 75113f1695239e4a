// `npm run build`: the package's JavaScript and type declarations in dist/, built from core/ with
// .ci/tsconfig.build.json, plus every other file of core/ the runtime reads beside its modules (the
// dashboard's static files today). `npm pack` runs it first (prepack), so a tarball always carries
// a fresh build; the development loop never needs it (tsx runs core/ as it is).
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const core = path.join(root, 'core');
const dist = path.join(root, 'dist');

// From scratch: a module deleted from core/ must not live on in the package.
rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
// Everything the build says goes to stderr: `npm pack --json` runs it and its stdout must stay JSON.
execFileSync(process.execPath, [tsc, '-p', path.join(root, '.ci', 'tsconfig.build.json')], { cwd: root, stdio: ['ignore', 2, 2] });

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
console.error(`built dist/ (${copied} asset files copied)`);
