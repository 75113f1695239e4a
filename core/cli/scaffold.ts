import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BUILT, CODE_DIR } from '../contract/package-root.js';
import { JOB_NAME, scheduleSchema } from '../contract/plugin-schema.js';

/**
 * `jobhost new <name>`: writes a typed plugin file that `jobhost validate` accepts, to be filled
 * in. The name and schedule are checked with the plugin schema's own rules before anything is
 * written, and an existing file is never overwritten without `force`.
 */

/** A refused scaffold: a bad name or schedule, or a file that exists. The CLI exits 2. */
export class ScaffoldError extends Error {
  readonly code: 'INVALID_NAME' | 'INVALID_CRON' | 'FILE_EXISTS';
  constructor(code: ScaffoldError['code'], message: string) {
    super(message);
    this.name = 'ScaffoldError';
    this.code = code;
  }
}

export interface ScaffoldOptions {
  name: string;
  /** The plugins directory, relative to `cwd` (default `plugins`). */
  dir?: string | undefined;
  /** The project root: where `core/` or `node_modules/` is (default the working directory). */
  cwd?: string | undefined;
  /** A cron expression, or `every 15m`; none makes a trigger-only job. */
  schedule?: string | undefined;
  force?: boolean | undefined;
}

/** A single-quoted TypeScript string literal. */
const quote = (text: string): string => `'${text.replace(/[\\']/g, '\\$&').replace(/\n/g, '\\n')}'`;

/** `'every 15m'` → `{ every: '15m' }`; anything else is a cron string. */
function scheduleSource(schedule: string): { source: string; value: unknown } {
  const every = /^every\s+(\S+)$/i.exec(schedule.trim());
  if (every) return { source: `{ every: ${quote(every[1]!)} }`, value: { every: every[1] } };
  return { source: quote(schedule.trim()), value: schedule.trim() };
}

/** The import specifier of `core/index.js` as seen from a file in `dir`. */
export function coreImport(dir: string, coreDir: string): string {
  const rel = path.relative(dir, path.join(coreDir, 'index.js')).split(path.sep).join('/');
  return rel.startsWith('.') ? rel : `./${rel}`;
}

/** Whether a `node_modules/jobhost` sits in `dir` or a folder above it (the project installed it). */
function installedAbove(dir: string): boolean {
  for (let at = dir; ; at = path.dirname(at)) {
    if (existsSync(path.join(at, 'node_modules', 'jobhost', 'package.json'))) return true;
    if (path.dirname(at) === at) return false;
  }
}

/**
 * What a plugin in `dir` imports `definePlugin` from. In a clone (`core/index.ts` at the project
 * root) the relative path to that core, as the example plugins do. Otherwise the package name,
 * when the project has jobhost installed or this is the built package (whose host resolves
 * `jobhost` to itself); else, running from a checkout's sources on a folder of its own, the
 * relative path to that checkout's core, which is what will load the plugin.
 */
export function pluginImport(cwd: string, dir: string, built = BUILT): string {
  if (existsSync(path.join(cwd, 'core', 'index.ts'))) return coreImport(dir, path.join(cwd, 'core'));
  if (built || installedAbove(dir)) return 'jobhost';
  return coreImport(dir, CODE_DIR);
}

/** The plugin file's text. */
export function renderPlugin(name: string, importPath: string, schedule: string | undefined): string {
  const scheduleLine = schedule
    ? `  schedule: ${scheduleSource(schedule).source},`
    : `  // schedule: '0 * * * *',        // cron (5 fields, or 6 with seconds first) or { every: '15m' }; none = trigger-only`;
  return `/**
 * ${name}: TODO say what this job does.
 * Check it with \`jobhost validate\`; run it with \`jobhost run ${name} --wait\`.
 */
import { z } from 'zod';
import { definePlugin } from '${importPath}';

export default definePlugin({
  name: '${name}',
  description: 'TODO: what ${name} does',
${scheduleLine}
  // Checked on every trigger: \`jobhost run ${name} --params '{"items":3}'\`.
  params: z.object({
    items: z.number().int().min(1).max(1000).default(5),
  }),
  timeout: '5m',                       // per attempt; ctx.signal is aborted when it passes
  retry: { attempts: 1 },              // e.g. { attempts: 3, backoff: 'exponential', delay: '1s' }
  async handler(ctx) {
    ctx.log.info({ params: ctx.params }, 'starting');
    let done = 0;
    for (let i = 1; i <= ctx.params.items; i++) {
      ctx.signal.throwIfAborted();     // stop promptly on timeout, cancel or shutdown
      // TODO: one unit of real work here
      done++;
      ctx.progress(i / ctx.params.items, \`item \${i} of \${ctx.params.items}\`);
    }
    ctx.log.info({ done }, 'finished');
    return { done };                   // the run's result, stored and shown
  },
});
`;
}

/** Checks the name and schedule, then writes `<dir>/<name>.ts`. Resolves with the file's path. */
export async function scaffoldPlugin(options: ScaffoldOptions): Promise<string> {
  const { name } = options;
  if (name.length > 100 || !JOB_NAME.test(name)) {
    throw new ScaffoldError('INVALID_NAME', `"${name}" is not a job name: use kebab-case, lower-case letters and digits (e.g. cleanup-temp-files)`);
  }
  if (options.schedule !== undefined) {
    const checked = scheduleSchema.safeParse(scheduleSource(options.schedule).value);
    if (!checked.success) {
      throw new ScaffoldError('INVALID_CRON', `--schedule: ${checked.error.issues[0]?.message ?? 'invalid schedule'}`);
    }
  }
  const cwd = path.resolve(options.cwd ?? process.cwd());
  const dir = path.resolve(cwd, options.dir ?? 'plugins');
  const file = path.join(dir, `${name}.ts`);
  // plugins/<name>.js beside a new .ts would declare the job twice.
  const twin = ['.js', '.mjs'].map((ext) => path.join(dir, name + ext)).find((f) => existsSync(f));
  if (twin) throw new ScaffoldError('FILE_EXISTS', `${path.relative(cwd, twin)} already exists: a plugin file named ${name} is there`);
  const text = renderPlugin(name, pluginImport(cwd, dir), options.schedule);
  await mkdir(dir, { recursive: true });
  try {
    await writeFile(file, text, { flag: options.force ? 'w' : 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new ScaffoldError('FILE_EXISTS', `${path.relative(cwd, file) || file} already exists (use --force to overwrite it)`);
    }
    throw err;
  }
  return file;
}
