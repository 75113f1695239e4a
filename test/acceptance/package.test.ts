import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { installProject, type Packed, packCheckout, readPackage, registryReachable, run, serve, until200, userEnv, writeFiles } from '../e2e/packed.js';
import { ROOT } from '../e2e/project.js';
import { type Tap, tempDir, until } from '../helpers.js';
import { httpReceiver } from '../receivers.js';

/**
 * The checkout as a package (issue 18): `npm pack`, then a second project that installs the
 * tarball from disk and its dependencies from the registry, and uses it the ways the README says:
 * embedded from a plain .mjs file, type-checked from TypeScript, and through the `jobhost` command.
 * One file, its steps in order, each on what the one before built. Slow (an install), so the hang
 * guards are generous; they bound a stuck npm, they measure nothing.
 */

t.setTimeout(15 * 60_000);

const reach = await registryReachable(ROOT);
if (!reach.ok) {
  t.plan(0, `the npm registry is unreachable from here (npm ping: ${reach.why}); the packing test needs it`);
} else {
  const packDir = tempDir(t, 'jobhost-pack-');
  const project = tempDir(t, 'jobhost-user-');
  let packed: Packed | undefined;
  const npx = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    run('npx', ['--no', '--', 'jobhost', ...args], project, { timeoutMs: 120_000, env: userEnv(env) });
  const URL_LINE = /dashboard and API at (http:\/\/\S+?)"/;
  /** Starts an installed host in the project (killed when the test ends) and reads its URL from its log. */
  const started = async (t: Tap, cmd: string, args: string[], env: NodeJS.ProcessEnv) => {
    const host = serve(cmd, args, project, userEnv(env));
    t.teardown(async () => {
      host.signal('SIGKILL');
      await host.closed;
    });
    let done = false;
    void host.closed.then(() => (done = true));
    await until(() => URL_LINE.test(host.stdout()) || done, 60_000, 'the host to print its URL');
    return { host, url: URL_LINE.exec(host.stdout())?.[1] ?? '', exited: () => done };
  };

  t.test('npm pack builds afresh and ships the JavaScript, the types, every runtime file and the command; no sources, no tests', async (t) => {
    // Left over from an older build: prepack must start dist/ from scratch.
    mkdirSync(path.join(ROOT, 'dist'), { recursive: true });
    writeFileSync(path.join(ROOT, 'dist', 'stale-module.js'), 'export {};\n');
    packed = await packCheckout(packDir);
    const files = new Set(packed.files);
    t.notOk(files.has('dist/stale-module.js'), 'a stale file in dist/ is not packed');
    for (const f of [
      'package.json',
      'README.md',
      'core/bin.mjs',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/client.js',
      'dist/client.d.ts',
      'dist/bin.js',
      'dist/workers/thread.js',
    ]) {
      t.ok(files.has(f), f);
    }
    // Every module of core/ has its type declaration and every asset its copy: a new static file
    // cannot be left out of the package unnoticed. The JavaScript is bundled (.ci/build.mjs).
    const missing: string[] = [];
    for (const entry of readdirSync(path.join(ROOT, 'core'), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const rel = path.relative(path.join(ROOT, 'core'), path.join(entry.parentPath, entry.name)).split(path.sep).join('/');
      // What only the type-check reads (the dashboard's tsconfig.json, a declaration file) has no built counterpart.
      const checkOnly = rel.endsWith('.d.ts') || rel.endsWith('tsconfig.json');
      const want = checkOnly ? [] : rel === 'bin.mjs' ? ['core/bin.mjs'] : rel.endsWith('.ts') ? [`dist/${rel.slice(0, -3)}.d.ts`] : [`dist/${rel}`];
      missing.push(...want.filter((f) => !files.has(f)));
    }
    t.same(missing, [], 'every file of core/ is in the package, built');
    // Bundled: the three entries, their shared chunks and the worker thread's script, not a module
    // per source file (loading those was most of the start-up, issue 26).
    const modules = packed.files.filter((f) => f.endsWith('.js') && !f.startsWith('dist/server/dashboard/'));
    t.same(
      modules.filter((f) => !/^dist\/(index|client|bin|chunks\/[^/]+|workers\/thread)\.js$/.test(f)),
      [],
      'the JavaScript is bundled',
    );
    const strays = packed.files.filter(
      (f) => (f.endsWith('.ts') && !f.endsWith('.d.ts')) || /^(test|bench|plugins|config|scripts)\//.test(f) || (f.startsWith('core/') && f !== 'core/bin.mjs'),
    );
    t.same(strays, [], 'no TypeScript sources, tests, benchmarks or example project');
    t.ok(
      packed.files.some((f) => f === 'dist/server/dashboard/index.html'),
      "the dashboard's static files",
    );
  });

  t.test('installs into a new project from the tarball; tsx is not installed, zod (the peer) is', async (t) => {
    t.ok(packed, 'packed');
    await installProject(project, packed!.tarball);
    t.ok(existsSync(path.join(project, 'node_modules', 'jobhost', 'dist', 'index.js')), 'jobhost installed');
    t.ok(existsSync(path.join(project, 'node_modules', '.bin', 'jobhost')), 'the jobhost command linked');
    t.ok(existsSync(path.join(project, 'node_modules', 'zod', 'package.json')), 'zod installed beside it');
    t.notOk(existsSync(path.join(project, 'node_modules', 'tsx')), 'no tsx anywhere near start-up');
    t.notOk(existsSync(path.join(project, 'node_modules', 'typescript')), 'no TypeScript either');
  });

  t.test('a plain .mjs file imports createHost and definePlugin from jobhost, runs a job and prints its result', async (t) => {
    writeFiles(project, {
      'embed.mjs': `import { createHost, definePlugin } from 'jobhost';
import { z } from 'zod';

const host = createHost({ store: 'memory' });
host.register(definePlugin({
  name: 'add',
  params: z.object({ a: z.number(), b: z.number() }),
  handler: async (ctx) => ({ sum: ctx.params.a + ctx.params.b }),
}));
await host.start();
const { runId } = await host.trigger('add', { params: { a: 2, b: 40 } });
const run = await host.wait(runId);
const refused = await host.trigger('add', { params: { a: 'two' } }).catch((e) => e.code);
await host.stop();
console.log(JSON.stringify({ status: run.status, result: run.result, refused }));
`,
    });
    const res = await run(process.execPath, ['embed.mjs'], project, { timeoutMs: 60_000 });
    t.equal(res.code, 0, res.stderr);
    t.same(JSON.parse(res.stdout.trim()), { status: 'succeeded', result: { sum: 42 }, refused: 'INVALID_PARAMS' });

    // The README's embedding example, with the server, on a free port, stopped at the end.
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const embed = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes('useServer(host, { plugins: [dashboard] })'));
    t.ok(embed, 'the README shows how to embed the host');
    writeFiles(project, { 'readme-embed.mjs': `${embed!.replace('port: 3000', 'port: 0')}await host.stop();\n` });
    const example = await run(process.execPath, ['readme-embed.mjs'], project, { timeoutMs: 60_000 });
    t.equal(example.code, 0, example.stderr);
    t.match(example.stdout, /^hi \S+$/m, 'prints the run result');
  });

  t.test('npx jobhost init writes a starter project that npx jobhost validate accepts; new writes a plugin importing jobhost', async (t) => {
    const init = await npx(['init']);
    t.equal(init.code, 0, init.stderr);
    t.match(init.stdout, /created config\/jobhost\.json/);
    t.match(init.stdout, /created plugins\/hello\.ts/);
    t.equal((readPackage(project)['scripts'] as Record<string, string>)['start'], 'jobhost start', 'the start script');
    t.match(readFileSync(path.join(project, 'plugins', 'hello.ts'), 'utf8'), "import { definePlugin } from 'jobhost';");

    const again = await npx(['init']);
    t.equal(again.code, 0);
    t.match(again.stdout, /kept\s+config\/jobhost\.json/, 'a second init keeps what is there');

    const validate = await npx(['validate']);
    t.equal(validate.code, 0, validate.stdout + validate.stderr);
    t.match(validate.stdout, 'ok: config and 1 plugin valid (hello)');

    const made = await npx(['new', 'sync-invoices', '--schedule', 'every 15m']);
    t.equal(made.code, 0, made.stderr);
    t.match(readFileSync(path.join(project, 'plugins', 'sync-invoices.ts'), 'utf8'), "import { definePlugin } from 'jobhost';");
    const both = await npx(['validate']);
    t.equal(both.code, 0, both.stdout + both.stderr);
    t.match(both.stdout, 'ok: config and 2 plugins valid (hello, sync-invoices)');

    writeFileSync(
      path.join(project, 'plugins', 'broken.ts'),
      "import { definePlugin } from 'jobhost';\nexport default definePlugin({ name: 'broken', schedule: 'nope', handler: () => 1 });\n",
    );
    const bad = await npx(['validate']);
    t.equal(bad.code, 1, 'a bad plugin fails validate');
    t.match(bad.stdout, /plugins\/broken\.ts\s+INVALID_CRON/);
    rmSync(path.join(project, 'plugins', 'broken.ts'));
  });

  t.test(
    'jobhost init in an empty folder (as `npx jobhost init` runs it) adds jobhost and zod to the dependencies; installed, the project validates',
    async (t) => {
      const empty = tempDir(t, 'jobhost-empty-');
      const bin = path.join(project, 'node_modules', 'jobhost', 'core', 'bin.mjs');
      const init = await run(process.execPath, [bin, 'init'], empty, { timeoutMs: 60_000, env: userEnv() });
      t.equal(init.code, 0, init.stderr);
      const version = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
      t.match(readPackage(empty), { scripts: { start: 'jobhost start' }, dependencies: { jobhost: `^${version}`, zod: '^4.2.0' } });
      t.match(init.stdout, /added jobhost and zod to package\.json's dependencies/);
      t.match(init.stderr, /next: `npm install`, then `npx jobhost start`/);
      t.match(readFileSync(path.join(empty, 'plugins', 'hello.ts'), 'utf8'), "import { definePlugin } from 'jobhost';");
      // What `npm install` would then bring (jobhost is not on the registry): the packed one and its zod.
      symlinkSync(path.join(project, 'node_modules'), path.join(empty, 'node_modules'));
      const validate = await run(process.execPath, [bin, 'validate'], empty, { timeoutMs: 60_000, env: userEnv() });
      t.equal(validate.code, 0, validate.stdout + validate.stderr);
      t.match(validate.stdout, 'ok: config and 1 plugin valid (hello)');
    },
  );

  t.test('npx jobhost start serves /health and /ready, runs the example plugin, and stops on SIGTERM', async (t) => {
    const { host, url, exited } = await started(t, 'npx', ['--no', '--', 'jobhost', 'start'], { JOBHOST_PORT: '0' });
    t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/, host.stderr());
    t.equal((await fetch(`${url}/health`)).status, 200, '/health');
    await until200(`${url}/ready`, performance.now(), 30_000, () => !exited());
    // The dashboard from the package's dist/, and uPlot from the project's node_modules.
    const page = await fetch(`${url}/`);
    t.equal(page.status, 200, 'the dashboard');
    t.match(await page.text(), /<title>[^<]*jobhost/i);
    for (const asset of ['/assets/uPlot.esm.js', '/assets/uPlot.min.css', '/assets/charts.js']) {
      const res = await fetch(`${url}${asset}`);
      t.equal(res.status, 200, asset);
      t.ok((await res.text()).length > 100, `${asset} has a body`);
    }
    const jobs = (await (await fetch(`${url}/jobs`)).json()) as { items: Array<{ name: string }> };
    t.same(jobs.items.map((j) => j.name).sort(), ['hello', 'sync-invoices']);

    const ran = await npx(['run', 'hello', '--wait', '--params', '{"name":"package test"}', '--url', url]);
    t.equal(ran.code, 0, ran.stderr);
    t.same(JSON.parse(ran.stdout.slice(ran.stdout.indexOf('{'))), { greeting: 'hello, package test' }, 'the example ran');
    t.match(ran.stderr, /succeeded/);

    writeFiles(project, {
      'client.mjs': `import { createClient } from 'jobhost/client';
const jobs = await createClient({ url: process.argv[2] }).jobs();
console.log(JSON.stringify(jobs.map((j) => [j.name, j.lastRun?.status ?? null]).sort()));
`,
    });
    const client = await run(process.execPath, ['client.mjs', url], project, { timeoutMs: 60_000 });
    t.equal(client.code, 0, client.stderr);
    t.same(JSON.parse(client.stdout), [
      ['hello', 'succeeded'],
      ['sync-invoices', null],
    ]);

    host.signal('SIGTERM');
    await host.closed;
    t.match(host.stdout(), /"msg":"host\.stopped"/, 'a graceful stop');
  });

  t.test("with OTEL_* the installed host exports its own spans: one copy of @opentelemetry/api, the SDK's, beside the bundle", async (t) => {
    const collector = await httpReceiver(t);
    collector.fallback = { status: 200, headers: { 'content-type': 'application/json' }, body: '{}' };
    const env = { JOBHOST_PORT: '0', OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_BSP_SCHEDULE_DELAY: '100' };
    const { host, url, exited } = await started(t, process.execPath, [path.join(project, 'node_modules', 'jobhost', 'core', 'bin.mjs'), 'start'], env);
    const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const res = await fetch(`${url}/jobs/hello/run`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${trace}-00f067aa0ba902b7-01` },
      body: '{}',
    });
    t.equal(res.status, 202, host.stderr());
    type Span = { name: string; traceId: string; spanId: string; parentSpanId?: string };
    type Body = { resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: Span[] }> }> };
    const spans = (): Span[] =>
      collector.received.flatMap((r) => ((r.json as Body).resourceSpans ?? []).flatMap((rs) => (rs.scopeSpans ?? []).flatMap((ss) => ss.spans ?? [])));
    const named = (name: string): Span | undefined => spans().find((s) => s.name === name);
    await until(() => Boolean(named('jobhost.trigger hello') && named('jobhost.attempt hello')) || exited(), 60_000, "the host's spans at the collector");
    const trigger = named('jobhost.trigger hello');
    t.equal(trigger?.traceId, trace, "the trigger span continues the caller's trace");
    t.equal(named('jobhost.attempt hello')?.parentSpanId, trigger?.spanId, "the attempt span is the trigger span's child");
    host.signal('SIGTERM');
    await host.closed;
  });

  t.test('a TypeScript consumer type-checks against the shipped types: ctx.params inferred from a zod schema', async (t) => {
    const tools = await run('npm', ['install', '--no-audit', '--no-fund', '--save-dev', 'typescript@~5.9.3', '@types/node@^20'], project, {
      timeoutMs: 600_000,
    });
    t.equal(tools.code, 0, tools.stderr);
    writeFiles(project, {
      'tsconfig.json': JSON.stringify({
        // skipLibCheck off: the shipped .d.ts files are checked too, not just used.
        compilerOptions: {
          target: 'ES2022',
          module: 'nodenext',
          moduleResolution: 'nodenext',
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: ['node'],
        },
        include: ['*.mts', 'plugins/*.ts'],
      }),
      'consumer.mts': `import { createHost, definePlugin, type Run } from 'jobhost';
import { createClient, type Job } from 'jobhost/client';
import { z } from 'zod';

const plugin = definePlugin({
  name: 'typed',
  params: z.object({ count: z.number().int(), label: z.string().default('x') }),
  async handler(ctx) {
    // Fails if ctx.params were unknown or any:
    const count: number = ctx.params.count;
    const label: string = ctx.params.label;
    // @ts-expect-error count is a number
    ctx.params.count.toUpperCase();
    // @ts-expect-error no such param
    void ctx.params.missing;
    return { count, label };
  },
});
const host = createHost({ store: 'memory', plugins: [plugin] });
const run: Run | undefined = await host.run('none');
const jobs: Job[] = await createClient({ url: 'http://127.0.0.1:3000' }).jobs();
void run, jobs;
`,
    });
    // The README's plugin and client examples, as a user pastes them.
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const pluginBlock = blocks.find((b) => b.includes("name: 'sync-invoices'"));
    const clientBlock = blocks.find((b) => b.includes("from 'jobhost/client'"));
    t.ok(pluginBlock && clientBlock, 'the README shows a plugin and a client script');
    writeFileSync(path.join(project, 'plugins', 'readme-example.ts'), pluginBlock!.replace("name: 'sync-invoices'", "name: 'readme-example'"));
    writeFiles(project, { 'readme-client.mts': clientBlock! });
    const tsc = await run(process.execPath, [path.join(project, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], project, { timeoutMs: 180_000 });
    t.equal(tsc.code, 0, tsc.stdout + tsc.stderr);

    // The check can fail: a params type that does not match is an error, from the shipped types.
    writeFiles(project, {
      'wrong.mts':
        "import { definePlugin } from 'jobhost';\nimport { z } from 'zod';\ndefinePlugin({ name: 'w', params: z.object({ n: z.number() }), handler: (ctx) => ctx.params.n.trim() });\n",
    });
    const wrong = await run(process.execPath, [path.join(project, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], project, { timeoutMs: 180_000 });
    t.equal(wrong.code, 2);
    t.match(wrong.stdout, /wrong\.mts.*error TS2339: Property 'trim' does not exist on type 'number'/);
  });
}
