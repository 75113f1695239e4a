import type { RunStatus } from './run.js';

/**
 * Chaining (`after`, SPEC §13) at the seam: a backend that records a run's end and the runs that
 * end triggers in one write (`Backend.chains`) asks the engine for those runs
 * (`BackendHooks.after.build`), adds them in the write, and reports each one's fate (`added`).
 */

/** The end of a run, as the runs it triggers get it (their params, before a schema reshapes them). */
export interface AfterEnd {
  runId: string;
  job: string;
  status: RunStatus;
  /** The parent's result (null unless it succeeded). */
  result: unknown;
}
