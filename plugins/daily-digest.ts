/**
 * Summarizes yesterday's runs from the host's own history: counts per job and the failures.
 * Shows: reading history through ctx.host, a timezone-aware cron, catch-up after downtime,
 * and a notification whose message comes from the result.
 */
import { z } from 'zod';
import { definePlugin } from '../core/index.js';

const DAY = 86_400_000;

export default definePlugin({
  name: 'daily-digest',
  description: "Summarize yesterday's runs: counts per job and failures",
  schedule: '0 7 * * *',
  timezone: 'UTC',
  catchUp: true,
  params: z.object({
    // The UTC day to report on; default: yesterday.
    day: z
      .string()
      .regex(/^\d{4}-\d{2}-\d{2}$/)
      .optional(),
  }),
  notify: {
    title: 'Daily digest {{result.day}}',
    message: '{{result.summary}}',
    customTitle: true,
    customMessage: true,
    tags: ['digest'],
  },
  async handler(ctx) {
    const day = ctx.params.day ?? new Date(Date.now() - DAY).toISOString().slice(0, 10);
    const from = `${day}T00:00:00.000Z`;
    const to = new Date(Date.parse(from) + DAY).toISOString();
    const byJob: Record<string, { succeeded: number; failed: number; canceled: number }> = {};
    const failures: Array<{ job: string; runId: string; error: string }> = [];
    let before: string | undefined;
    let scanned = 0;
    // History comes newest first; page back until the runs are older than the day.
    for (;;) {
      ctx.signal.throwIfAborted();
      const page = await ctx.host.runs({ limit: 500, ...(before ? { before } : {}) });
      for (const run of page.items) {
        scanned++;
        if (run.createdAt >= to || run.createdAt < from || run.job === ctx.job) continue;
        if (run.status !== 'succeeded' && run.status !== 'failed' && run.status !== 'canceled') continue;
        const counts = (byJob[run.job] ??= { succeeded: 0, failed: 0, canceled: 0 });
        counts[run.status]++;
        if (run.status === 'failed' && failures.length < 20) failures.push({ job: run.job, runId: run.id, error: run.error?.message ?? '' });
      }
      const oldest = page.items.at(-1);
      if (!page.next || !oldest || oldest.createdAt < from) break;
      before = page.next;
      ctx.progress(0.5, `scanned ${scanned} runs`);
    }
    const total = Object.values(byJob).reduce((n, c) => n + c.succeeded + c.failed + c.canceled, 0);
    const failed = Object.values(byJob).reduce((n, c) => n + c.failed, 0);
    const lines = Object.entries(byJob).map(([job, c]) => `${job}: ${c.succeeded} ok, ${c.failed} failed`);
    const summary = total === 0 ? `No runs on ${day}.` : `${total} runs on ${day}, ${failed} failed. ${lines.join('; ')}`;
    return { day, total, failed, byJob, failures, summary };
  },
});
