import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { packageJson } from '../contract/package-root.js';
import { pluginImport } from './scaffold.js';

/**
 * `jobhost init`: turns a folder into a jobhost project, so that `npx jobhost init && npx jobhost
 * start` is a working host: a starter `config/jobhost.json`, one example plugin and a `start`
 * script in `package.json`. It never overwrites: a file that is already there is kept and
 * reported, so running it twice, or in a project that has some of these, is safe.
 */

/** What init did with each file, for the CLI to print. */
export interface InitResult {
  /** Paths relative to the folder. */
  created: string[];
  kept: string[];
  /** The `package.json` script added (`start`, or `jobhost` when `start` was taken), or null. */
  script: string | null;
  /** The example plugin's job name. */
  job: string;
  /** Dependencies added to `package.json` (`jobhost`, `zod` when missing): `npm install` is then due. */
  dependencies: string[];
}

/** A refused init: a `package.json` that is not a JSON object. The CLI exits 2. */
export class InitError extends Error {
  readonly code = 'INVALID_PACKAGE_JSON';
  constructor(message: string) {
    super(message);
    this.name = 'InitError';
  }
}

const EXAMPLE_JOB = 'hello';

const ours = packageJson();
/** What a project needs to run the host and type its plugins: this version of jobhost and the zod its schemas use. */
const NEEDED: Record<string, string> = { jobhost: `^${ours.version}`, zod: ours.peerDependencies['zod'] ?? '^4' };

/** Written as the file would be read: every value the host's defaults would give, to be edited. */
const STARTER_CONFIG = {
  server: { host: '127.0.0.1', port: 3000, token: null },
  store: { dir: 'data', keepRuns: 1000, keepDays: 30 },
  plugins: { dir: 'plugins', watch: true },
  defaults: { timezone: 'UTC', timeout: '5m' },
  concurrency: 8,
  jobs: {},
};

/** The example plugin's text: a schedule, a params schema, progress and a result. */
export function renderExample(importPath: string): string {
  return `/**
 * ${EXAMPLE_JOB}: the example job written by \`jobhost init\`. Run it now with
 * \`npx jobhost run ${EXAMPLE_JOB} --wait\`; it also runs every hour. Copy it, or start a new job with
 * \`npx jobhost new <name>\`; a running host picks new and edited files up by itself.
 */
import { z } from 'zod';
import { definePlugin } from '${importPath}';

export default definePlugin({
  name: '${EXAMPLE_JOB}',
  description: 'Greets someone, to show the parts of a job',
  schedule: { every: '1h' },           // or a cron: '0 * * * *'
  // Checked on every trigger; \`jobs.${EXAMPLE_JOB}.params\` in config/jobhost.json overrides the defaults.
  params: z.object({
    name: z.string().min(1).default('world'),
  }),
  timeout: '30s',                      // per attempt; ctx.signal is aborted when it passes
  retry: { attempts: 3, backoff: 'exponential', delay: '1s' },
  async handler(ctx) {
    ctx.progress(0.5, \`greeting \${ctx.params.name}\`);
    ctx.log.info({ name: ctx.params.name }, 'saying hello');
    return { greeting: \`hello, \${ctx.params.name}\` };   // the run's result, stored and shown
  },
});
`;
}

/** Writes `file` unless it exists; says which happened. */
async function writeNew(root: string, rel: string, text: string, result: InitResult): Promise<void> {
  const file = path.join(root, rel);
  await mkdir(path.dirname(file), { recursive: true });
  try {
    await writeFile(file, text, { flag: 'wx' });
    result.created.push(rel);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    result.kept.push(rel);
  }
}

type PackagePlan =
  | { kind: 'create'; text: string; dependencies: string[] }
  | { kind: 'update'; text: string; script: string | null; dependencies: string[] }
  | { kind: 'keep' };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * What to do with `package.json`: create it in a folder that has none, or add to it the start
 * script (unless a script already runs `jobhost start`, or `start` and `jobhost` are both taken)
 * and the dependencies it lacks (so `npx jobhost init` in an empty folder, then `npm install`,
 * gives a project that runs on its own). Read before anything is written, so a broken file stops
 * init with nothing half done.
 */
async function planPackage(root: string, needed: Record<string, string>): Promise<PackagePlan> {
  const file = path.join(root, 'package.json');
  if (!existsSync(file)) {
    const name =
      path
        .basename(root)
        .toLowerCase()
        .replace(/[^a-z0-9._-]+/g, '-')
        .replace(/^[._-]+/, '') || 'jobs';
    const pkg = {
      name,
      version: '0.1.0',
      private: true,
      type: 'module',
      scripts: { start: 'jobhost start' },
      ...(Object.keys(needed).length > 0 && { dependencies: needed }),
    };
    return { kind: 'create', text: `${JSON.stringify(pkg, null, 2)}\n`, dependencies: Object.keys(needed) };
  }
  const text = await readFile(file, 'utf8');
  let pkg: unknown;
  try {
    pkg = JSON.parse(text);
  } catch (err) {
    throw new InitError(`package.json is not valid JSON (${(err as Error).message}); fix it, then run jobhost init again`);
  }
  if (!isObject(pkg)) throw new InitError('package.json is not a JSON object');
  const scripts = pkg['scripts'] ?? {};
  if (!isObject(scripts)) throw new InitError('package.json "scripts" is not an object');
  const deps = pkg['dependencies'] ?? {};
  if (!isObject(deps)) throw new InitError('package.json "dependencies" is not an object');
  const dev = isObject(pkg['devDependencies']) ? pkg['devDependencies'] : {};
  const missing = Object.keys(needed).filter((name) => deps[name] === undefined && dev[name] === undefined);
  // A start script of the project's own stays; ours goes beside it.
  const script = Object.values(scripts).includes('jobhost start')
    ? null
    : scripts['start'] === undefined
      ? 'start'
      : scripts['jobhost'] === undefined
        ? 'jobhost'
        : null;
  if (script === null && missing.length === 0) return { kind: 'keep' };
  if (script !== null) pkg['scripts'] = { ...scripts, [script]: 'jobhost start' };
  if (missing.length > 0) pkg['dependencies'] = { ...deps, ...Object.fromEntries(missing.map((name) => [name, needed[name]])) };
  // The file's own indentation, so the diff stays small.
  const indent = /^[ \t]+(?=")/m.exec(text)?.[0] ?? '  ';
  return { kind: 'update', text: `${JSON.stringify(pkg, null, indent)}\n`, script, dependencies: missing };
}

/** Sets up `root` (default the working directory) as a jobhost project. */
export async function initProject(options: { cwd?: string | undefined } = {}): Promise<InitResult> {
  const root = path.resolve(options.cwd ?? process.cwd());
  const result: InitResult = { created: [], kept: [], script: null, job: EXAMPLE_JOB, dependencies: [] };
  const importPath = pluginImport(root, path.join(root, 'plugins'));
  // A project that imports jobhost by name needs it (and zod) installed; one that imports a
  // checkout's core by path (run from a clone's sources) loads that checkout's.
  const plan = await planPackage(root, importPath === 'jobhost' ? NEEDED : {});
  await writeNew(root, path.join('config', 'jobhost.json'), `${JSON.stringify(STARTER_CONFIG, null, 2)}\n`, result);
  await writeNew(root, path.join('plugins', `${EXAMPLE_JOB}.ts`), renderExample(importPath), result);
  if (plan.kind === 'create') {
    await writeNew(root, 'package.json', plan.text, result);
    result.script = 'start';
    result.dependencies = plan.dependencies;
  } else if (plan.kind === 'update') {
    await writeFile(path.join(root, 'package.json'), plan.text);
    result.script = plan.script;
    result.dependencies = plan.dependencies;
  } else {
    result.kept.push('package.json');
  }
  return result;
}
