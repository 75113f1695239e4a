import type { Config } from '../contract/config.js';

/** Keys that only take effect after a restart. */
const RESTART_KEYS = new Set(['server', 'store', 'plugins', 'events', 'backend', 'cluster', 'workers']);

/**
 * What a config edit changes: the top-level keys (and `jobs.<name>` entries) that differ, those
 * of them that need a restart, and the jobs whose `enabled` the edit sets anew.
 */
export function configChanges(previous: Config, next: Config): { changed: string[]; restartRequired: string[]; enabledEdited: string[] } {
  const changed: string[] = [];
  for (const key of Object.keys(next) as Array<keyof Config>) {
    if (key === 'jobs') {
      const names = new Set([...Object.keys(previous.jobs), ...Object.keys(next.jobs)]);
      for (const name of names) {
        if (JSON.stringify(previous.jobs[name]) !== JSON.stringify(next.jobs[name])) changed.push(`jobs.${name}`);
      }
    } else if (JSON.stringify(previous[key]) !== JSON.stringify(next[key])) {
      changed.push(key);
    }
  }
  const restartRequired = changed.filter((k) => RESTART_KEYS.has(k));
  const enabledEdited = Object.keys(next.jobs).filter(
    (name) => previous.jobs[name]?.enabled !== next.jobs[name]?.enabled && next.jobs[name]?.enabled !== undefined,
  );
  return { changed, restartRequired, enabledEdited };
}
