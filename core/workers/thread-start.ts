import { SHARE_ENV, Worker } from 'node:worker_threads';
import { type Batch, IN_HEADER, type ThreadData } from './protocol.js';
import type { Slot } from './slot.js';
import { threadScript } from './thread-script.js';

/** What a started thread reports to its pool. */
export interface ThreadHooks {
  receive(slot: Slot, batch: Batch): void;
  died(slot: Slot, exitCode: number): void;
  /** Sends what was queued for the slot before its thread existed. */
  post(slot: Slot): void;
}

/**
 * Starts the thread of `slot` once its script is built (esbuild, once per process). A slot that
 * died meanwhile gets none; a script that cannot be built kills the slot with that error.
 */
export function startThread(slot: Slot, data: ThreadData, maxMemoryMb: number, hooks: ThreadHooks): void {
  threadScript().then(
    (url) => {
      if (slot.dead) return;
      const worker = new Worker(url, {
        workerData: data,
        env: SHARE_ENV,
        resourceLimits: { maxOldGenerationSizeMb: maxMemoryMb },
        // The main thread's loaders (tsx, a test runner's) are not the thread's: it starts from plain JS.
        execArgv: process.execArgv.filter((a) => a === '--enable-source-maps'),
        stdout: false,
        stderr: false,
      });
      slot.worker = worker;
      worker.on('message', (batch: Batch) => hooks.receive(slot, batch));
      worker.on('error', (err) => {
        slot.error = err;
      });
      worker.on('exit', (code) => hooks.died(slot, code));
      if (slot.tasks.size === 0) worker.unref();
      if (slot.out.length > IN_HEADER) hooks.post(slot);
    },
    (err: unknown) => {
      slot.error = err instanceof Error ? err : new Error(String(err));
      hooks.died(slot, 1);
    },
  );
}
