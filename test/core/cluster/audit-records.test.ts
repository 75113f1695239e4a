import t from 'tap';
import { RedisAudit } from '../../../core/cluster/audit-records.js';
import { Connections } from '../../../core/cluster/connections.js';
import type { AuditRecord } from '../../../core/contract/audit.js';
import { createManualClock, isoTime } from '../../../core/contract/clock.js';
import { captureLogger } from '../../helpers.js';
import { startRedis } from '../../redis.js';

/** The cluster's audit trail in Redis (SPEC §14): retention as the local store keeps it. */

t.test('a lower keepRuns (a restart with a new config) applies to what is listed at once, not only from the next append on', async (t) => {
  const redis = await startRedis(t);
  const connections = new Connections({ url: redis.url }, 'jobhost:t', captureLogger().logger);
  await connections.open();
  t.teardown(() => connections.close());
  const clock = createManualClock();
  const trail = (keepRuns: number): RedisAudit => new RedisAudit({ redis: connections.producer, connections, key: 'jh:t:audit', keepRuns, keepDays: 0, clock });
  const before = trail(20);
  const ids: string[] = [];
  for (let i = 0; i < 12; i++) {
    await clock.advance(1000);
    const id = `${clock.now().toString(36).padStart(9, '0')}${String(i).padStart(4, '0')}`;
    ids.push(id);
    const record: AuditRecord = {
      id,
      at: isoTime(clock.now()),
      token: 'ci',
      action: 'job.run',
      target: 'job:x',
      ip: '127.0.0.1',
      outcome: 'ok',
      status: 202,
      code: null,
      host: 'h0',
    };
    await before.append(record);
  }
  t.equal((await before.list({ limit: 100 })).items.length, 12);
  const after = trail(5);
  const page = await after.list({ limit: 100 });
  t.same(
    page.items.map((r) => r.id),
    ids.slice(-5).reverse(),
    'the newest keepRuns, newest first',
  );
  t.same(
    (await after.list({ limit: 100, before: ids.at(-3) })).items.map((r) => r.id),
    [ids.at(-4), ids.at(-5)],
    'a page past the cursor stops there too',
  );
});
