/** jobhost's public API: one explicit export list. */

export type { AttemptExecutor, AttemptHandle, AttemptReporter, AttemptTask, ExecutableJob, RunObserver } from './contract/attempt.js';
export type { AdmissionRules, Backend, BackendHooks, Depths, JobFlags, JobState, Refusal } from './contract/backend.js';
export type { Clock, ManualClock, Timer } from './contract/clock.js';
export { createManualClock, systemClock } from './contract/clock.js';
export type { Config, ConfigInput } from './contract/config.js';
export { parseConfig } from './contract/config.js';
export type { Duration } from './contract/duration.js';
export { parseDuration } from './contract/duration.js';
export type { ErrorCode, RunError } from './contract/errors.js';
export { ERROR_CODES, HostError, isHostError } from './contract/errors.js';
export type { AnyHostEvent, EventDataMap, EventType, HelloMessage, HostEvent, SkipReason } from './contract/events.js';
export { EVENT_TYPES } from './contract/events.js';
export { logArgs } from './contract/log-capture.js';
export type { Logger } from './contract/logger.js';
export { createLogger, silentLogger } from './contract/logger.js';
export type { Notification, NotifyPriority, NotifyStatus } from './contract/notification.js';
export type { HostReader, JobContext, NotifyOptions, ParamsSchema, PluginDefinition, RetryOptions } from './contract/plugin.js';
export { definePlugin } from './contract/plugin.js';
export type { Attempt, Page, Progress, Run, RunQuery, RunSource, RunStatus } from './contract/run.js';
export type { LogLevel, LogLine, RunLog } from './contract/run-log.js';
export { LOG_MAX_BYTES, LOG_MAX_LINES, LogTail } from './contract/run-log.js';
export type { BackendHealth, DamageReport, LostLine, StoreWriteError } from './contract/store-health.js';
export type {
  BackendStats,
  BulkFilter,
  BulkResult,
  HostState,
  JobStats,
  JobView,
  Series,
  SeriesBucket,
  SeriesWindow,
  StaleJob,
  Stats,
} from './contract/views.js';
export { SERIES_WINDOWS } from './contract/views.js';
export type { EventFilter } from './engine/bus.js';
export type { HostOptions, PublishResult, TriggerOptions, TriggerResult, WaitOptions } from './engine/host.js';
export { createHost, Host } from './engine/host.js';
export type { FatalOrigin, ProcessHandlersOption } from './engine/process-handlers.js';
export type { DashboardOptions } from './server/dashboard.js';
export { createDashboard, dashboard } from './server/dashboard.js';
export type { HttpErrorBody } from './server/http-errors.js';
export type { Metrics } from './server/metrics.js';
export type { JobhostApp } from './server/routes.js';
export type { Server, ServerOptions, ServerPlugin } from './server/server.js';
export { createServer, useServer } from './server/server.js';
export type { EventStreamOptions } from './server/ws.js';
