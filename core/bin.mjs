#!/usr/bin/env node
// The `jobhost` command, in a clone and in the installed package alike (package.json "bin").
// Beside the TypeScript sources (a clone) it registers tsx and runs core/ as it is, so the
// development loop has no build step; the package ships no sources, so there it runs the build in
// dist/ and never loads tsx (a devDependency).
import { existsSync } from 'node:fs';

const source = new URL('./bin.ts', import.meta.url);
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import(new URL('../dist/bin.js', import.meta.url).href);
}
