import { createManualClock, systemClock } from '../contract/clock.js';
import { parseDuration } from '../contract/duration.js';
import { ERROR_CODES, HostError, isHostError } from '../contract/errors.js';
import { EVENT_TYPES } from '../contract/events.js';
import { definePlugin } from '../contract/plugin.js';
import { READY_SHAPE } from './plugin-code.js';

/**
 * What a plugin gets when it imports jobhost's own `core/index.js` inside a worker thread: the
 * part of the API a plugin file and its handler use. Importing the whole index would load the
 * host itself (fastify, the store, the server) into every worker: ~1 s and ~25 MB each. The
 * host-side names throw a clear error when read, so a plugin that needs them asks for `inline`.
 */

/** Exports of `core/index.ts` that only make sense in the host's main thread. */
export const HOST_ONLY = [
  'createHost',
  'Host',
  'createServer',
  'useServer',
  'dashboard',
  'createDashboard',
  'parseConfig',
  'createLogger',
  'silentLogger',
] as const;

/** The namespace a worker hands a plugin for `core/index`. */
export function pluginApi(): Record<string | symbol, unknown> {
  const api: Record<string | symbol, unknown> = {
    definePlugin,
    HostError,
    isHostError,
    ERROR_CODES,
    parseDuration,
    EVENT_TYPES,
    createManualClock,
    systemClock,
    __esModule: true,
    [READY_SHAPE]: true,
  };
  for (const name of HOST_ONLY) {
    Object.defineProperty(api, name, {
      enumerable: false,
      get() {
        throw new Error(`${name} is not available to a handler in a worker thread; give the job isolation: 'inline' to use it`);
      },
    });
  }
  return api;
}
