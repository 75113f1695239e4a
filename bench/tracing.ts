/**
 * What tracing costs (issue 28): engine throughput (no-op runs, trigger → succeeded, disk store)
 * with no OpenTelemetry SDK (the API's no-op tracer: what every host without OTEL_* runs), and
 * with the Node SDK and a batch exporter sending OTLP/JSON to a local receiver. Rounds alternate
 * off and on; each figure is the best of its rounds.
 * Run: `npm run bench -- tracing` (or `npx tsx bench/tracing.ts [runs]`).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { context, propagation, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace';
import { throughput } from './runs.js';
import { fmt, header, row } from './util.js';

export async function tracingBench(runs = 50_000, rounds = 3): Promise<void> {
  header(`tracing: ${fmt(runs)} no-op runs (disk store), no SDK vs the Node SDK exporting to a local OTLP receiver`);
  let spans = 0;
  const receiver = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (c: string) => (body += c));
    req.on('end', () => {
      spans += (body.match(/"spanId"/g) ?? []).length;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/v1/traces`;
  await throughput('disk', 20_000); // warm-up
  let off = 0;
  let on = 0;
  for (let i = 0; i < rounds; i++) {
    off = Math.max(off, await throughput('disk', runs));
    const sdk = new NodeSDK({
      spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url }), maxQueueSize: 65_536, maxExportBatchSize: 2048 })],
      instrumentations: [],
      metricReaders: [],
      logRecordProcessors: [],
    });
    sdk.start();
    on = Math.max(on, await throughput('disk', runs));
    await sdk.shutdown().catch(() => undefined);
    // Back to no SDK at all for the next "off" round.
    trace.disable();
    context.disable();
    propagation.disable();
  }
  receiver.close();
  row('no SDK (no-op tracer)', `${fmt(off)} runs/s`);
  row('Node SDK, batch OTLP exporter', `${fmt(on)} runs/s`);
  row('spans received by the local collector', fmt(spans));
  row('tracing on / off', fmt(on / off, 2));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await tracingBench(Number(process.argv[2] ?? 50_000));
}
