import t from 'tap';
import { parseTraceparent, traceparentOf } from '../../../core/contract/tracing.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

t.test('a stored traceparent reads back as the span context it was written from', async (t) => {
  for (const traceFlags of [0, 1, 2, 0xff]) {
    const value = traceparentOf({ traceId: TRACE, spanId: SPAN, traceFlags });
    t.equal(value.length, 55);
    t.same(parseTraceparent(value), { traceId: TRACE, spanId: SPAN, traceFlags, isRemote: true }, value);
  }
  t.equal(traceparentOf({ traceId: TRACE, spanId: SPAN, traceFlags: 1 }), `00-${TRACE}-${SPAN}-01`);
});

t.test('anything else is no span context', async (t) => {
  const bad = [
    undefined,
    '',
    `00-${TRACE}-${SPAN}`,
    `01-${TRACE}-${SPAN}-01`,
    `00-${TRACE.toUpperCase()}-${SPAN}-01`,
    `00-${TRACE}-${SPAN}-01-`,
    `00-${TRACE}x${SPAN}-01`,
    `00-${'0'.repeat(32)}-${SPAN}-01`,
    `00-${TRACE}-${'0'.repeat(16)}-01`,
    `00-${TRACE}-${SPAN}-0g`,
  ];
  for (const value of bad) t.equal(parseTraceparent(value), undefined, String(value));
});
