/**
 * What tracing costs (issue 28, SPEC §15), engine and HTTP, each set-up in fresh processes and
 * the rounds interleaved so drift in the machine's load touches every set-up alike:
 * - `before`: the commit before tracing landed (the parent of the commit that added
 *   core/contract/tracing.ts; `BENCH_BEFORE=<ref>` picks another), checked out beside this tree
 *   (bench/ab.ts), measured with its own bench code;
 * - `off`: this tree with no OpenTelemetry SDK (the API's no-op tracer: every host without OTEL_*);
 * - `on`: this tree with the SDK started as `jobhost start` starts it (core/contract/otel-sdk.ts,
 *   from OTEL_* variables), a batch span processor exporting OTLP (http/protobuf, the default; `BENCH_OTLP_PROTOCOL=http/json`
 *   for JSON) to a local receiver in a
 *   process of its own; over HTTP every request carries a `traceparent` to continue.
 * Engine: no-op runs, trigger → succeeded, disk store. HTTP: POST /jobs/noop/run, 50 connections.
 * Goals (SPEC §15, issue 28): tracing off / before ≥ 0.98, tracing on / off ≥ 0.8, engine and HTTP alike.
 * Run: `npm run bench -- tracing` (or `npx tsx bench/tracing.ts [runs] [seconds] [rounds]`).
 */
import { execFileSync, fork } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { checkout, describe, engineRound, figures, HERE, httpRound, interleave, median, type Round, ratios } from './ab.js';
import { fmt, header, row } from './util.js';

type Receiver = { url: string; count(): Promise<{ spans: number; requests: number }>; stop(): void };

async function startReceiver(): Promise<Receiver> {
  const child = fork(fileURLToPath(new URL('./otlp-receiver.ts', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = <T>(): Promise<T> => new Promise((resolve) => child.once('message', (m) => resolve(m as T)));
  const { url } = await next<{ url: string }>();
  return {
    url,
    count: () => {
      const answer = next<{ spans: number; requests: number }>();
      child.send('count');
      return answer;
    },
    stop: () => child.send('stop'),
  };
}

/** The commit before tracing landed: the parent of the one that added core/contract/tracing.ts. */
function beforeTracing(): string | undefined {
  if (process.env['BENCH_BEFORE']) return process.env['BENCH_BEFORE'];
  try {
    const added = execFileSync('git', ['log', '--diff-filter=A', '--format=%H', '--', 'core/contract/tracing.ts'], { cwd: HERE, encoding: 'utf8' }).trim();
    return added ? `${added.split('\n').pop()}^` : undefined;
  } catch {
    return undefined; // not a git checkout
  }
}

/** A sampled caller's context, continued by every traced HTTP trigger. */
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

export async function tracingBench(runs = 30_000, seconds = 5, rounds = 3): Promise<void> {
  const ref = beforeTracing();
  const before = ref ? checkout(ref) : undefined;
  header(
    `tracing: engine (${fmt(runs)} no-op runs, disk store) and HTTP (${seconds} s, 50 connections), ${rounds} interleaved rounds, ` +
      `before = ${before ? describe(before.commit) : '(no git history: skipped)'}`,
  );
  const receiver = await startReceiver();
  const off = { OTEL_SDK_DISABLED: 'true' };
  const on = {
    OTEL_SDK_DISABLED: 'false',
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.url,
    // OTLP over HTTP with protobuf, the SDK's default protocol (and cheaper to serialize than http/json).
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: process.env['BENCH_OTLP_PROTOCOL'] ?? 'http/protobuf',
    // A queue of 28 batches of 512 (the default batch): deeper than the default 2048, which drops
    // spans at these rates, and still flushed whole by the SDK's forceFlush, which sends every
    // queued batch at once and loses those past the exporter's 30 concurrent exports.
    OTEL_BSP_MAX_QUEUE_SIZE: String(28 * 512),
  };
  const kinds = before ? (['before', 'off', 'on'] as const) : (['off', 'on'] as const);
  try {
    const warm = 10_000;
    const engine: Record<string, Round[]> = await interleave(kinds, rounds, (k) =>
      k === 'before' ? engineRound(before!.dir, runs, warm, off) : engineRound(HERE, runs, warm, k === 'on' ? on : off),
    );
    const engineSpans = (await receiver.count()).spans;
    // The floor: the SDK making and exporting a run's three spans, no engine (same rounds' machine).
    const floor: Round[] = [];
    for (let r = 0; r < rounds; r++) floor.push(await engineRound('sdk-floor', runs, warm, on));
    const floorSpans = (await receiver.count()).spans - engineSpans;
    const preload = ['--import', pathToFileURL(fileURLToPath(new URL('./otel-preload.ts', import.meta.url))).href];
    const http: Record<string, Round[]> = await interleave(kinds, rounds, (k) =>
      k === 'before'
        ? httpRound(before!.dir, { seconds, env: off })
        : k === 'off'
          ? httpRound(HERE, { seconds, env: off })
          : httpRound(HERE, { seconds, env: on, execArgv: preload, headers: { traceparent: TRACEPARENT } }),
    );
    const httpSpans = (await receiver.count()).spans - engineSpans - floorSpans;
    if (engine['before']) row('engine: before tracing', figures(engine['before'], 'runs/s'));
    row('engine: no SDK (no-op tracer)', figures(engine['off']!, 'runs/s'));
    row('engine: Node SDK, batch OTLP exporter', figures(engine['on']!, 'runs/s'));
    row('engine: spans received / expected', `${fmt(engineSpans)} / ${fmt(3 * (warm + runs) * rounds)}`);
    row('engine: CPU per run, tracing on − off', `${fmt(median(engine['on']!.map((r) => r.cpuUs)) - median(engine['off']!.map((r) => r.cpuUs)), 1)} µs`);
    row("SDK alone: a run's 3 spans made and exported", `${fmt(median(floor.map((r) => r.cpuUs)), 1)} µs CPU per run   (${fmt(floorSpans)} spans received)`);
    if (http['before']) row('http: before tracing', figures(http['before'], 'req/s'));
    row('http: no SDK (no-op tracer)', figures(http['off']!, 'req/s'));
    row('http: Node SDK, traceparent on each request', figures(http['on']!, 'req/s'));
    row('http: spans received', fmt(httpSpans));
    if (engine['before'] && http['before']) {
      ratios('engine: tracing off / before', engine['off']!, engine['before']);
      ratios('http: tracing off / before', http['off']!, http['before']);
    }
    ratios('engine: tracing on / off', engine['on']!, engine['off']!);
    ratios('http: tracing on / off', http['on']!, http['off']!);
    ratios('tracing on / off', engine['on']!, engine['off']!);
  } finally {
    receiver.stop();
    before?.remove();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [runs, seconds, rounds] = process.argv.slice(2).map(Number);
  await tracingBench(runs || undefined, seconds || undefined, rounds || undefined);
}
