import {
  type Context,
  context,
  isSpanContextValid,
  propagation,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import type { RunError } from './errors.js';

/**
 * Tracing through `@opentelemetry/api` (SPEC §15). jobhost only ever talks to the API: whoever
 * sets up an SDK (the embedding application, or `jobhost start` when `OTEL_*` asks, see
 * `otel-sdk.ts`) decides where spans go. Without one, every call here lands on the API's no-op
 * tracer: a span that records nothing and a context that carries no trace, so a run gets no
 * trace fields and pays a few property reads.
 *
 * The shape of a trace (the way BullMQ's own telemetry and OTel's messaging conventions draw a
 * queue): a trigger is a `jobhost.run <job>` span (kind producer) under the caller's context,
 * ended once the run is acknowledged; its context travels with the run as a W3C `traceparent`
 * (in the run record, so through a restart and to another cluster host); each attempt is a
 * `jobhost.attempt <job>` span (kind consumer) whose parent is that run span, and the handler
 * runs inside it, in a worker thread too.
 */

const tracer = trace.getTracer('jobhost');

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The W3C `traceparent` of a span context. */
export function traceparentOf(sc: SpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/** The remote span context a `traceparent` names; undefined for anything else. */
export function parseTraceparent(value: string | undefined): SpanContext | undefined {
  const m = value === undefined ? null : TRACEPARENT.exec(value);
  if (!m) return undefined;
  const sc: SpanContext = { traceId: m[1]!, spanId: m[2]!, traceFlags: Number.parseInt(m[3]!, 16), isRemote: true };
  return isSpanContextValid(sc) ? sc : undefined;
}

/** The context a stored `traceparent` continues (the root context when there is none). */
export function contextOf(traceparent: string | undefined): Context {
  const sc = parseTraceparent(traceparent);
  return sc ? trace.setSpanContext(ROOT_CONTEXT, sc) : ROOT_CONTEXT;
}

/**
 * The caller's context carried by request headers (`traceparent`, `tracestate`, or whatever the
 * application's propagator reads); undefined when they carry none, so the trigger runs under the
 * active context instead.
 */
export function extractContext(headers: Record<string, string | string[] | undefined>): Context | undefined {
  if (headers['traceparent'] === undefined && propagation.fields().every((f) => headers[f] === undefined)) return undefined;
  return propagation.extract(ROOT_CONTEXT, headers);
}

/** The trace fields a run records: empty when nothing traces. */
export interface RunTrace {
  traceId?: string;
  traceparent?: string;
}

/** A trigger's span, open until the run is acknowledged (or refused). */
export interface TriggerSpan {
  /** The run's trace fields, to store with it. */
  readonly fields: RunTrace;
  end(error?: { code: string; message: string }): void;
}

const NO_FIELDS: RunTrace = Object.freeze({});

/** Opens the span of a trigger of `job` (run `runId`) under `parent` (default: the active context). */
export function startTriggerSpan(job: string, runId: string, source: string, parent: Context | undefined): TriggerSpan {
  const span = tracer.startSpan(
    `jobhost.run ${job}`,
    { kind: SpanKind.PRODUCER, attributes: { 'jobhost.job': job, 'jobhost.run.id': runId, 'jobhost.run.source': source } },
    parent ?? context.active(),
  );
  const sc = span.spanContext();
  // No SDK (or nothing sampled this far up and no trace to continue): the no-op span's context is
  // invalid, and the run carries no trace fields.
  const fields = isSpanContextValid(sc) ? { traceId: sc.traceId, traceparent: traceparentOf(sc) } : NO_FIELDS;
  return {
    fields,
    end(error) {
      if (error) span.setStatus({ code: SpanStatusCode.ERROR, message: `${error.code}: ${error.message}` });
      span.end();
    },
  };
}

/** An attempt's span: the context the handler runs in, and its end. */
export interface AttemptSpan {
  readonly context: Context;
  /** The attempt span's `traceparent`, for a handler in another thread; undefined when nothing traces. */
  readonly traceparent: string | undefined;
  /** Once; later calls do nothing (an abort, then the attempt's report). */
  end(error: RunError | null): void;
}

/** Opens the span of attempt `attempt` of run `runId`, under the run's stored trace. */
export function startAttemptSpan(job: string, runId: string, attempt: number, traceparent: string | undefined, host?: string | null): AttemptSpan {
  const attributes: Record<string, string | number> = { 'jobhost.job': job, 'jobhost.run.id': runId, 'jobhost.attempt': attempt };
  if (host) attributes['jobhost.host'] = host;
  const span: Span = tracer.startSpan(`jobhost.attempt ${job}`, { kind: SpanKind.CONSUMER, attributes }, contextOf(traceparent));
  const sc = span.spanContext();
  const valid = isSpanContextValid(sc);
  let ended = false;
  return {
    context: trace.setSpan(ROOT_CONTEXT, span),
    traceparent: valid ? traceparentOf(sc) : undefined,
    end(error) {
      if (ended) return;
      ended = true;
      if (error) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: `${error.code}: ${error.message}` });
        span.setAttribute('jobhost.error.code', error.code);
      }
      span.end();
    },
  };
}

/** Runs `fn` inside `ctx` (a no-op wrapper without a context manager). */
export function within<T>(ctx: Context, fn: () => T): T {
  return context.with(ctx, fn);
}
