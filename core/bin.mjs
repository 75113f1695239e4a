#!/usr/bin/env node
// The `jobhost` command: registers tsx so the TypeScript sources run as they are, then runs the
// CLI, handing it the loader's app for `start` and `validate` (the CLI imports nothing of the host).
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('./cli/cli.ts');
await runCli(process.argv, () => import('./loader/app.ts'));
