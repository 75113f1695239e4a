import type { AdmissionRules, Refusal } from './backend.js';
import type { Run, RunStatus } from './run.js';

/**
 * Chaining (`after`, SPEC §13) at the seam: a backend that records a run's end and the runs that
 * end triggers in one write (`Backend.chains`) asks the engine for those runs (`build`), adds
 * them in the write, and reports each one's fate (`added`).
 */

/** The end of a run, as the runs it triggers get it (their params, before a schema reshapes them). */
export interface AfterEnd {
  runId: string;
  job: string;
  status: RunStatus;
  /** The parent's result (null unless it succeeded). */
  result: unknown;
}

/** A run `after` triggers, built by the engine, and the rules its admission checks. */
export interface ChainedRun {
  run: Run;
  rules: AdmissionRules;
}

export interface AfterHooks {
  /** The runs `end` triggers (ids derived from the parent's, params checked); none when nothing waits for it. */
  build(end: AfterEnd): Promise<ChainedRun[]>;
  /** A run `build` gave was added with the end (`refused` undefined), or its admission refused it. */
  added(run: Run, refused: Refusal | undefined): void;
}
