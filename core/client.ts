/**
 * `jobhost/client`: a running host's HTTP API and WebSocket for scripts, the way the CLI uses
 * them. It loads nothing of the host (no fastify, no store), so a script that only talks to a host
 * stays small.
 */

export type { Client, ClientErrorCode, ClientOptions, DamageReport, Job, Run, TriggerBody } from './cli/client.js';
export { ClientError, createClient } from './cli/client.js';
export type { ClientEvent, Hello, StreamEvents, StreamOptions } from './cli/client-stream.js';
export { EventStream, openEventStream } from './cli/client-stream.js';
export type { WaitHooks, WaitOptions } from './cli/client-wait.js';
export { triggerAndWait } from './cli/client-wait.js';
