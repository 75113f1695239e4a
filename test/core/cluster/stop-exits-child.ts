import { createHost, silentLogger } from '../../../core/index.js';

/**
 * A process that embeds a cluster host: starts it, ends one run, stops it, says so, and then
 * leaves its event loop to empty by itself (no process.exit). Argv: the Redis URL, the prefix.
 */
const [url, prefix] = process.argv.slice(2) as [string, string];
// A long command timeout: a socket timer left armed at the stop would hold the process ~70 s.
const host = createHost({ config: { backend: { kind: 'redis', url, prefix, commandTimeout: 60_000 }, cluster: { id: 'embedded' } }, logger: silentLogger() });
host.register({ name: 'work', handler: async () => 'done' });
await host.start();
const ended = new Promise<void>((resolve) => host.on('run.succeeded', () => resolve()));
await host.trigger('work');
await ended;
await host.stop({ graceMs: 0 });
process.stdout.write('stopped\n');
