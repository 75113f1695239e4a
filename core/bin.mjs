#!/usr/bin/env node
// The `jobhost` command: registers tsx so the TypeScript sources run as they are, then the CLI.
import { register } from 'tsx/esm/api';

register();
await import('./cli/cli.ts');
