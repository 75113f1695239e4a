/** jobhost's public API: one explicit export list. */
export { createHost, Host } from './engine/host.js';
export type { HostOptions, TriggerOptions, TriggerResult, PublishResult } from './engine/host.js';
export type { HostState, JobView, JobStats, Stats, StaleJob, BackendStats } from './contract/views.js';
export { createServer, useServer } from './server/server.js';
export type { Server, ServerOptions, ServerPlugin } from './server/server.js';
export { createDashboard, dashboard } from './server/dashboard.js';
export type { DashboardOptions } from './server/dashboard.js';
export type { JobhostApp } from './server/routes.js';
export type { HelloMessage, EventStreamOptions } from './server/ws.js';
export type { Metrics } from './server/metrics.js';
export type { HttpErrorBody } from './server/http-errors.js';
export { definePlugin } from './contract/plugin.js';
export type { PluginDefinition, JobContext, HostReader, NotifyOptions, RetryOptions, ParamsSchema } from './contract/plugin.js';
export type { NotifyPriority, NotifyStatus, Notification } from './contract/notification.js';
export { HostError, ERROR_CODES, isHostError } from './contract/errors.js';
export type { ErrorCode, RunError } from './contract/errors.js';
export type { Run, RunStatus, RunSource, Attempt, Progress, Page, RunQuery } from './contract/run.js';
export type { HostEvent, AnyHostEvent, EventType, EventDataMap, SkipReason } from './contract/events.js';
export { EVENT_TYPES } from './contract/events.js';
export type { EventFilter } from './engine/bus.js';
export type {
  Backend,
  BackendHooks,
  ExecutableJob,
  RunObserver,
  AttemptExecutor,
  AttemptTask,
  AttemptReporter,
  AttemptHandle,
  AdmissionRules,
  Refusal,
  JobState,
  JobFlags,
  Depths,
} from './contract/backend.js';
export { parseConfig } from './contract/config.js';
export type { Config, ConfigInput } from './contract/config.js';
export { systemClock, createManualClock } from './contract/clock.js';
export type { Clock, ManualClock, Timer } from './contract/clock.js';
export { parseDuration } from './contract/duration.js';
export type { Duration } from './contract/duration.js';
export { createLogger, silentLogger } from './contract/logger.js';
export type { Logger } from './contract/logger.js';
