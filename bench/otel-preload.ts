/**
 * `node --import bench/otel-preload.ts`: starts the OpenTelemetry SDK the way `jobhost start`
 * does (core/contract/otel-sdk.ts, from the `OTEL_*` variables) before the process's own code
 * runs. The tracing benchmark puts it in front of `bench/serve.ts` for its "tracing on" server.
 */
import { otelRequested, startOtel } from '../core/contract/otel-sdk.js';

if (otelRequested(process.env)) await startOtel((msg) => console.error(`otel: ${msg}`));
