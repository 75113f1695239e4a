import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * Where jobhost's own files are, for every module that reads one beside the code (package.json,
 * the dashboard's static files, the worker thread's script, the library entry). A module must not
 * find them by its own path: the built package is a bundle (`.ci/build.mjs`), where this module's
 * code sits in a chunk of `dist/` rather than in `dist/contract/`. So the package folder is found
 * by walking up to jobhost's package.json, which works from the sources (`core/`, under tsx), from
 * any file of `dist/`, and through a symlinked install (import.meta.url is the real path).
 */

const here = fileURLToPath(import.meta.url);

/** The fields of jobhost's package.json the code reads. */
export interface PackageJson {
  version: string;
  peerDependencies: Record<string, string>;
}

let manifest: PackageJson | undefined;

function findRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    try {
      const found = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as PackageJson & { name?: unknown };
      if (found.name === 'jobhost') {
        manifest = found;
        return dir;
      }
    } catch {
      // no package.json here, or not ours: keep walking up
    }
    if (path.dirname(dir) === dir) throw new Error(`jobhost's package.json not found above ${from}`);
  }
}

/** The package folder: the clone's root, or `node_modules/jobhost`. */
export const PACKAGE_ROOT = findRoot(path.dirname(here));

/** True when running the built package (JavaScript in `dist/`), false from the sources. */
export const BUILT = !here.endsWith('.ts');

/** The folder of jobhost's modules and runtime files: `core/` from the TypeScript sources, `dist/` built. */
export const CODE_DIR = path.join(PACKAGE_ROOT, BUILT ? 'dist' : 'core');

/** The URL of jobhost's library entry (`index.ts`/`index.js`) without its extension. */
export const CORE_INDEX_URL = pathToFileURL(path.join(CODE_DIR, 'index')).href;

/** jobhost's own package.json (read once, while finding the package folder). */
export function packageJson(): PackageJson {
  return manifest!;
}
