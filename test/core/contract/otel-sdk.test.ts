import t from 'tap';
import { otelRequested, otlpProtocol, threadOtelModules } from '../../../core/contract/otel-sdk.js';

/**
 * How `jobhost start` reads the standard OTEL_* variables (SPEC §15): whether to start the SDK,
 * and which OTLP protocol its worker threads export with, read as the Node SDK reads it for the
 * main thread so that both threads of a run's trace send the same way.
 */

t.test('the SDK starts when an exporter or an endpoint asks for it, and never with OTEL_SDK_DISABLED', async (t) => {
  t.equal(otelRequested({}), false);
  t.equal(otelRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), true);
  t.equal(otelRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }), true);
  t.equal(otelRequested({ OTEL_TRACES_EXPORTER: 'otlp' }), true);
  t.equal(otelRequested({ OTEL_TRACES_EXPORTER: 'none' }), false);
  t.equal(otelRequested({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), false, 'none wins over an endpoint');
  t.equal(otelRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: ' TRUE ' }), false);
});

t.test("the protocol: the traces variable, else the general one, a blank one counting as unset, as the SDK's own reading", async (t) => {
  t.equal(otlpProtocol({}), 'http/protobuf');
  t.equal(otlpProtocol({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), 'grpc');
  t.equal(otlpProtocol({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), 'http/json');
  t.equal(otlpProtocol({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: '', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }), 'http/json', 'an empty traces variable is unset');
  t.equal(otlpProtocol({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: '  ', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), 'grpc', 'so is a blank one');
  t.equal(otlpProtocol({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: ' http/json ' }), ' http/json ', 'not trimmed (the SDK warns and uses http/protobuf)');
});

t.test("a worker thread's exporter is the one of that protocol", async (t) => {
  const exporter = (env: NodeJS.ProcessEnv): string | undefined =>
    threadOtelModules({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', ...env })?.exporter;
  t.equal(threadOtelModules({}), undefined, 'nothing to load without tracing');
  t.match(exporter({}), /exporter-trace-otlp-proto\//);
  t.match(exporter({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }), /exporter-trace-otlp-http\//);
  t.match(
    exporter({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: '', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }),
    /exporter-trace-otlp-http\//,
    'as the main thread reads it',
  );
  t.match(exporter({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), /exporter-trace-otlp-grpc\//);
  t.match(exporter({ OTEL_EXPORTER_OTLP_PROTOCOL: 'carrier-pigeon' }), /exporter-trace-otlp-proto\//, 'one it does not know: http/protobuf, as the SDK');
});
