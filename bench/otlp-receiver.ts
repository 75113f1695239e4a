/**
 * A local OTLP/HTTP trace receiver (protobuf, or JSON) for the tracing benchmark, in a process of its own so
 * the host it measures never pays for a collector's work. It counts the spans it receives.
 * IPC: → { url } once listening; ← 'count' → { spans, requests }; ← 'stop' → exits.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

let spans = 0;
let requests = 0;

/** `"spanId"` keys in an export request's JSON body (a parent's is `"parentSpanId"`, not counted). */
function countJsonSpans(body: string): number {
  let n = 0;
  for (let at = body.indexOf('"spanId"'); at !== -1; at = body.indexOf('"spanId"', at + 8)) n++;
  return n;
}

/**
 * The spans of a protobuf ExportTraceServiceRequest: resource_spans (1) → scope_spans (2) →
 * spans (2), each a length-delimited field; `depth` is how far down `buf[from, to)` sits.
 */
function countProtoSpans(buf: Buffer, from = 0, to = buf.length, depth = 0): number {
  let n = 0;
  let at = from;
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const b = buf[at++]!;
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
  };
  while (at < to) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) varint();
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const len = varint();
      if (depth === 0 && field === 1) n += countProtoSpans(buf, at, at + len, 1);
      else if (depth === 1 && field === 2) n += countProtoSpans(buf, at, at + len, 2);
      else if (depth === 2 && field === 2) n++;
      at += len;
    } else throw new Error(`wire type ${wire} in an OTLP request`);
  }
  return n;
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    requests++;
    const body = Buffer.concat(chunks);
    // An empty ExportTraceServiceResponse: `{}` in JSON, no bytes at all in protobuf.
    if (req.headers['content-type']?.includes('json')) {
      spans += countJsonSpans(body.toString('utf8'));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    } else {
      spans += countProtoSpans(body);
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    }
  });
});
server.listen(0, '127.0.0.1', () => process.send?.({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces` }));
process.on('message', (m) => {
  if (m === 'count') process.send?.({ spans, requests });
  else if (m === 'stop') server.close(() => process.exit(0));
});
