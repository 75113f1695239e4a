import { z } from 'zod';
import { HostError } from './errors.js';

/** A run query as a library caller or a handler's `ctx.host.runs()` gives it, checked as `GET /runs` checks its query. */
export const runQuerySchema = z.strictObject({
  job: z.string().optional(),
  status: z.enum(['queued', 'running', 'succeeded', 'failed', 'canceled']).optional(),
  limit: z.number().int().min(1).max(1000).optional(),
  before: z.string().optional(),
});

/** `query` checked: INVALID_BODY naming the field. */
export function checkRunQuery(query: unknown): void {
  const checked = runQuerySchema.safeParse(query);
  if (checked.success) return;
  const issue = checked.error.issues[0]!;
  throw new HostError('INVALID_BODY', `${issue.path.join('.') || '(query)'}: ${issue.message}`);
}
