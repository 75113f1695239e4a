/**
 * Deletes files older than a number of days from a scratch directory.
 * Shows: a cron schedule, params with defaults (overridable in config/jobhost.json), progress,
 * honouring the abort signal, and a custom notification built from the result.
 */
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { definePlugin } from '../core/index.js';

export default definePlugin({
  name: 'cleanup-temp-files',
  description: 'Delete files older than N days from a scratch directory',
  schedule: '0 */6 * * *',
  params: z.object({
    // Relative paths resolve against the host's working directory.
    dir: z.string().default('data/tmp'),
    olderThanDays: z.number().min(0).default(7),
  }),
  timeout: '5m',
  overlap: 'skip',
  notify: {
    title: 'Temp files cleaned',
    message: 'Removed {{result.count}} files ({{result.bytes}} bytes) from {{result.dir}}',
    customTitle: true,
    customMessage: true,
    tags: ['maintenance'],
  },
  async handler(ctx) {
    const dir = path.resolve(ctx.params.dir);
    await mkdir(dir, { recursive: true });
    const cutoff = Date.now() - ctx.params.olderThanDays * 86_400_000;
    const entries = await readdir(dir, { withFileTypes: true });
    let count = 0;
    let bytes = 0;
    for (const [i, entry] of entries.entries()) {
      ctx.signal.throwIfAborted();
      if (entry.isFile()) {
        const file = path.join(dir, entry.name);
        const info = await stat(file);
        if (info.mtimeMs < cutoff) {
          await rm(file, { force: true });
          count++;
          bytes += info.size;
        }
      }
      ctx.progress((i + 1) / entries.length, `checked ${i + 1} of ${entries.length}`);
    }
    ctx.log.info({ dir, count, bytes }, 'cleanup done');
    return { dir, count, bytes };
  },
});
