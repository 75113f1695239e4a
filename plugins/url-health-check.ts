/**
 * Checks that a URL answers with the expected status; by default the host's own /health.
 * Shows: an `every` schedule, retries with exponential backoff, a per-attempt timeout passed to
 * fetch through ctx.signal, and the default (non-custom) notification on failure only.
 */
import { z } from 'zod';
import { definePlugin } from '../core/index.js';

/** The host's own base URL: set by the running host, else the default port. */
function ownUrl(): string {
  return process.env['JOBHOST_URL'] ?? `http://127.0.0.1:${process.env['JOBHOST_PORT'] ?? 3000}`;
}

export default definePlugin({
  name: 'url-health-check',
  description: "Check that a URL answers (default: this host's /health)",
  schedule: { every: '5m' },
  params: z.object({
    url: z.string().url().optional(),
    expectStatus: z.number().int().min(100).max(599).default(200),
  }),
  retry: { attempts: 3, backoff: 'exponential', delay: '2s', maxDelay: '30s' },
  timeout: '10s',
  overlap: 'skip',
  notify: { title: 'Health check', on: ['failed'], tags: ['monitoring'] },
  async handler(ctx) {
    const url = ctx.params.url ?? `${ownUrl()}/health`;
    const started = performance.now();
    const res = await fetch(url, { signal: ctx.signal });
    await res.arrayBuffer();
    const ms = Math.round(performance.now() - started);
    if (res.status !== ctx.params.expectStatus) {
      throw Object.assign(new Error(`${url} answered ${res.status}, expected ${ctx.params.expectStatus}`), { code: 'UNEXPECTED_STATUS' });
    }
    return { url, status: res.status, ms };
  },
});
