/**
 * A bare BullMQ worker in its own process, the cluster benchmark's baseline:
 * `tsx bench/cluster-worker.ts <redis url> <prefix> <queue> <concurrency>`. Says `ready` over IPC
 * once connected; closes on `stop`.
 */
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';

const [url, prefix, queue, concurrency] = process.argv.slice(2) as [string, string, string, string];
const connection = new Redis(url, { maxRetriesPerRequest: null });
const worker = new Worker(queue, async () => undefined, { connection, prefix, concurrency: Number(concurrency) });
worker.on('error', () => undefined);
await worker.waitUntilReady();
process.send?.('ready');
process.on('message', async () => {
  await worker.close();
  connection.disconnect();
  process.exit(0);
});
