import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { tempDir } from '../../helpers.js';

/**
 * The dashboard's type-check (`tsc -p core/server/dashboard`, part of `npm run lint`) catches a
 * field the page reads that the API does not send: a copy of the dashboard where one module reads
 * a field by a wrong name fails, for that field alone. The copy sits where the real one does
 * relative to core/contract/ (a link) and node_modules (another), so its imports resolve alike.
 */

const ROOT = path.resolve(import.meta.dirname, '../../..');
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const run = promisify(execFile);

/** tsc's exit code and output on the dashboard copy in `root`. */
async function check(root: string): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await run(process.execPath, [TSC, '-p', path.join(root, 'core/server/dashboard')], { cwd: root });
    return { code: 0, out: stdout };
  } catch (err) {
    const e = err as { code?: number; stdout?: string };
    return { code: e.code ?? -1, out: e.stdout ?? '' };
  }
}

t.test('a field read under a name the contract does not have fails the type-check', async (t) => {
  const root = tempDir(t, 'jobhost-dashboard-types-');
  const copy = path.join(root, 'core/server/dashboard');
  mkdirSync(path.dirname(copy), { recursive: true });
  cpSync(path.join(ROOT, 'core/server/dashboard'), copy, { recursive: true });
  symlinkSync(path.join(ROOT, 'core/contract'), path.join(root, 'core/contract'), 'dir');
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(root, 'node_modules'), 'dir');

  // `counts.succeeded` of a job (JobView in core/contract/views.ts), misspelled in the jobs table.
  const jobs = path.join(copy, 'jobs.js');
  const source = readFileSync(jobs, 'utf8');
  t.match(source, /job\.counts\.succeeded\b/);
  writeFileSync(jobs, source.replace(/job\.counts\.succeeded\b/g, 'job.counts.succeded'));
  // One run of tsc (a few seconds): it fails, and only for the misspelled field, so the copy is otherwise clean.
  const { code, out } = await check(root);
  t.not(code, 0, 'the misspelled field fails the check');
  const errors = out.split('\n').filter((line) => line.includes('error TS'));
  t.ok(errors.length > 0, 'tsc names the error');
  for (const line of errors) t.match(line, /^core\/server\/dashboard\/jobs\.js\(\d+,\d+\): error TS2551: Property 'succeded' does not exist/, line);
});
