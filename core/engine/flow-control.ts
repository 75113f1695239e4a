import type { JobOverride } from '../contract/config.js';
import { HostError } from '../contract/errors.js';
import type { JobSpec, RateLimit } from '../contract/plugin-schema.js';

/**
 * `rateLimit` and `debounce` (SPEC §13) as a job runs with them: the plugin's, overridden by
 * `jobs.<name>` (null there turns the plugin's off). A debounced job always has a run waiting
 * during its window, so `overlap: 'skip'` and `once` (both refuse a trigger while a run waits)
 * would refuse what debounce merges: the combination is refused, naming the field.
 */
export function flowControl(spec: JobSpec, override: JobOverride | undefined): { rateLimit: RateLimit | undefined; debounceMs: number } {
  const limit = override?.rateLimit;
  const rateLimit = limit === null ? undefined : limit ? Object.freeze({ max: limit.max, perMs: limit.per }) : spec.rateLimit;
  const debounceMs = override?.debounce === null ? 0 : (override?.debounce ?? spec.debounceMs);
  if (debounceMs > 0 && (spec.overlap === 'skip' || spec.once)) {
    // The config's `debounce` is the config file's error (a live edit's config.error names its path); the plugin's own, the plugin's.
    const fromConfig = override?.debounce != null;
    const field = fromConfig ? `jobs.${spec.name}.debounce` : 'debounce';
    const other = spec.once ? 'once: true' : "overlap: 'skip'";
    const message = `${field}: cannot be combined with the plugin's ${other} (it would refuse the triggers debounce merges)`;
    throw new HostError(fromConfig ? 'CONFIG_INVALID' : 'PLUGIN_INVALID', message, { field, path: field });
  }
  return { rateLimit, debounceMs };
}
