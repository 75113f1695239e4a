/**
 * Start-up loads only what the config asks for (issue 26): a local-backend `jobhost start` never
 * loads BullMQ or ioredis (the cluster backend's packages), even though its plugin imports the
 * library entry, which reaches the engine; a redis-backend start does load them. Nor does a start
 * load fastify's default compilers or cronstrue while nothing needs them. The child records every
 * package it loads (test/fixtures/track-packages.mjs).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import type { Tap } from '../helpers.js';
import { startRedis } from '../redis.js';
import { makeProject, runCli } from './project.js';

const TRACK = pathToFileURL(path.resolve(import.meta.dirname, '../fixtures/track-packages.mjs')).href;
const CLUSTER_PACKAGES = ['bullmq', 'ioredis'];
/**
 * Loaded only when needed: ajv, for fastify's default validator compiler (zod's replaces it;
 * fastify's own error serializer still loads a part of fast-json-stringify), cronstrue (a
 * cron schedule put in words), prom-client (the first scrape of /metrics; run durations are counted
 * without it), and @fastify/swagger with yaml (the first GET /openapi.json).
 */
const NOT_AT_START = [...CLUSTER_PACKAGES, 'ajv', 'cronstrue', 'prom-client', '@fastify/swagger', 'yaml', '@opentelemetry/api'];

/** Starts `jobhost start` in `dir` until host.started, stops it: its exit code and the packages it loaded. */
async function packagesOfStart(t: Tap, dir: string): Promise<{ code: number | null; loaded: Set<string> }> {
  const file = path.join(dir, 'packages.txt');
  writeFileSync(file, '');
  const app = runCli(t, dir, ['start'], { NODE_OPTIONS: `--import=${TRACK}`, JOBHOST_TRACK_FILE: file });
  await app.waitFor((l) => l.event === 'host.started', 'host.started');
  app.child.kill('SIGTERM');
  const code = await app.exited;
  return { code, loaded: new Set(readFileSync(file, 'utf8').split('\n').filter(Boolean)) };
}

/** A plugin that imports the library entry, as every plugin of a project does. */
const PLUGIN = `import { definePlugin } from '../core/index.js';
export default definePlugin({ name: 'hello', handler: async () => 'hello' });
`;

t.test('a local-backend start loads neither BullMQ nor ioredis, nor what nothing at start needs', async (t) => {
  const dir = makeProject(t, { server: { port: 0 } }, { examples: false });
  writeFileSync(path.join(dir, 'plugins/hello.ts'), PLUGIN);
  const { code, loaded } = await packagesOfStart(t, dir);
  t.equal(code, 0, 'the host stopped cleanly');
  // What every start loads shows the record works: the HTTP server, and esbuild for the plugin.
  t.ok(loaded.has('fastify'), 'fastify recorded');
  t.ok(loaded.has('esbuild'), 'esbuild recorded (a dynamic import)');
  t.ok(loaded.has('@fastify/websocket'), '@fastify/websocket recorded (a CommonJS package)');
  t.same(
    NOT_AT_START.filter((p) => loaded.has(p)),
    [],
  );
});

t.test('a redis-backend start loads them', async (t) => {
  const redis = await startRedis(t);
  const dir = makeProject(t, { server: { port: 0 }, backend: { kind: 'redis', url: redis.url } }, { examples: false });
  writeFileSync(path.join(dir, 'plugins/hello.ts'), PLUGIN);
  const { code, loaded } = await packagesOfStart(t, dir);
  t.equal(code, 0, 'the host stopped cleanly');
  t.same(
    CLUSTER_PACKAGES.filter((p) => loaded.has(p)),
    CLUSTER_PACKAGES,
  );
});
