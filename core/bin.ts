/**
 * The `jobhost` command as JavaScript: what `core/bin.mjs` runs from the built package. It hands
 * the CLI the loader's app for `start` and `validate` (the CLI imports nothing of the host).
 */
import { runCli } from './cli/cli.js';

await runCli(process.argv, () => import('./loader/app.js'));
