import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { BIN, childEnv } from './project.js';

/**
 * kill -9 at random moments (issue 6): start `jobhost start` on a store, fire triggers at it over
 * HTTP, SIGKILL it, start it again on the same directory, many times. Every acknowledged (202)
 * runId must exist after the last restart and reach a final state, and every restart must load
 * the store. Used by the test suite (20 cycles) and `bench/soak-kill.ts` (100).
 */

export interface KillReport {
  cycles: number;
  acknowledged: number;
  refusedOrCut: number;
  finalized: number;
  missing: string[];
  notFinal: string[];
  failedStarts: string[];
  /** Damage reports the last start holds: a kill -9 leaves torn tails at most, never damage. */
  damage: string[];
}

export const KILL_PLUGIN = `import { setTimeout as sleep } from 'node:timers/promises';
export default {
  name: 'work',
  concurrency: 8,
  retry: { attempts: 5, delay: 0 },
  async handler(ctx: { params: { n?: number } }) {
    await sleep(Math.random() * 10);
    return { n: ctx.params.n ?? 0 };
  },
};
`;

/** Writes the plugin the cycles trigger into a project made by createProject/makeProject. */
export function addKillPlugin(dir: string): void {
  writeFileSync(path.join(dir, 'plugins', 'work.ts'), KILL_PLUGIN);
}

interface Child {
  url: string;
  kill: () => Promise<void>;
  stop: () => Promise<number | null>;
}

async function startChild(dir: string): Promise<Child> {
  const child = spawn(process.execPath, [BIN, 'start'], { cwd: dir, env: childEnv({ LOG_LEVEL: 'info' }), stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let out = '';
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start within 30 s: ${err.slice(-2000)}`)), 30_000);
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      const m = /"url":"(http:[^"]+)"[^\n]*jobhost started/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before starting: ${err.slice(-2000)} ${out.slice(-2000)}`));
    });
  });
  return {
    url,
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

const FINAL = new Set(['succeeded', 'failed', 'canceled']);

export async function killCycles(
  dir: string,
  options: { cycles: number; producers?: number; onCycle?: (i: number, acked: number) => void },
): Promise<KillReport> {
  const acknowledged = new Set<string>();
  const failedStarts: string[] = [];
  let refusedOrCut = 0;
  let n = 0;
  for (let cycle = 0; cycle < options.cycles; cycle++) {
    let child: Child;
    try {
      child = await startChild(dir);
    } catch (err) {
      failedStarts.push(`cycle ${cycle}: ${(err as Error).message}`);
      continue;
    }
    let killed = false;
    let flowing!: () => void;
    const firstAck = new Promise<void>((r) => (flowing = r));
    const producer = async (): Promise<void> => {
      while (!killed) {
        try {
          const res = await fetch(`${child.url}/jobs/work/run`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ params: { n: n++ } }),
          });
          const body = (await res.json()) as { runId?: string };
          if (res.status === 202 && body.runId) {
            acknowledged.add(body.runId);
            flowing();
          } else refusedOrCut++;
        } catch {
          refusedOrCut++; // the connection died with the process: not acknowledged
        }
      }
    };
    const producers = Array.from({ length: options.producers ?? 16 }, producer);
    // A random moment once triggers flow (a slow start on a loaded machine does not eat the window):
    // anywhere from mid-commit to mid-run. A host that acknowledges nothing is killed after 30 s.
    await Promise.race([firstAck, new Promise((r) => setTimeout(r, 30_000).unref())]);
    await new Promise((r) => setTimeout(r, 50 + Math.random() * 400));
    await child.kill();
    killed = true;
    await Promise.all(producers);
    options.onCycle?.(cycle, acknowledged.size);
  }

  const missing: string[] = [];
  const notFinal: string[] = [];
  let finalized = 0;
  const damage: string[] = [];
  let last: Child | undefined;
  try {
    last = await startChild(dir);
  } catch (err) {
    failedStarts.push(`final start: ${(err as Error).message}`);
  }
  if (last) {
    const pending = new Set(acknowledged);
    const deadline = Date.now() + 60_000;
    while (pending.size > 0 && Date.now() < deadline) {
      for (const id of [...pending]) {
        const res = await fetch(`${last.url}/runs/${id}`);
        if (res.status === 404) {
          missing.push(id);
          pending.delete(id);
          continue;
        }
        const run = (await res.json()) as { status: string };
        if (FINAL.has(run.status)) {
          finalized++;
          pending.delete(id);
        }
      }
      if (pending.size > 0) await new Promise((r) => setTimeout(r, 100));
    }
    notFinal.push(...pending);
    const found = (await (await fetch(`${last.url}/store/damage`)).json()) as { items: Array<{ message: string }> };
    damage.push(...found.items.map((d) => d.message));
    await last.stop();
  }
  return { cycles: options.cycles, acknowledged: acknowledged.size, refusedOrCut, finalized, missing, notFinal, failedStarts, damage };
}
