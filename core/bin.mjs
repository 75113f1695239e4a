#!/usr/bin/env node
// The `jobhost` command, in a clone and in the installed package alike (package.json "bin").
// Beside the TypeScript sources (a clone) it registers tsx and runs core/ as it is, so the
// development loop has no build step; the package ships no sources, so there it runs the build in
// dist/ and never loads tsx (a devDependency).
import { existsSync } from 'node:fs';

// `jobhost start`: a signal that comes while the command still loads (a second or so) is kept for
// the host's own handlers (core/loader/app.ts), which act on it once the start is done, as on one
// during the start. Without it Node's default would end the process (exit 143) with no stop.
// The command is the first argument that is not an option nor the value of --url / --token.
const args = process.argv.slice(2);
const command = args.find((a, i) => !a.startsWith('-') && args[i - 1] !== '--url' && args[i - 1] !== '--token');
if (command === 'start') {
  const early = { signals: [], remove: () => undefined };
  const keep = (signal) => early.signals.push(signal);
  process.on('SIGINT', keep);
  process.on('SIGTERM', keep);
  early.remove = () => {
    process.off('SIGINT', keep);
    process.off('SIGTERM', keep);
  };
  globalThis[Symbol.for('jobhost.earlySignals')] = early;
}

const source = new URL('./bin.ts', import.meta.url);
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import(new URL('../dist/bin.js', import.meta.url).href);
}
