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
    } else if (key === 'server') {
      // Tokens apply at once (the server reads them per request); the rest of `server` on restart.
      const { token: t0, tokens: ts0, ...rest0 } = previous.server;
      const { token: t1, tokens: ts1, ...rest1 } = next.server;
      if (JSON.stringify(rest0) !== JSON.stringify(rest1)) changed.push('server');
      if (t0 !== t1 || JSON.stringify(ts0) !== JSON.stringify(ts1)) changed.push('server.tokens');
    } else if (JSON.stringify(previous[key]) !== JSON.stringify(next[key])) {
      changed.push(key);
    }
  }
  const restartRequired = changed.filter((k) => RESTART_KEYS.has(k));
  // Read once, at start: named as needing a restart, as a whole key would be.
  if (previous.notifications.concurrency !== next.notifications.concurrency) restartRequired.push('notifications.concurrency');
  const enabledEdited = Object.keys(next.jobs).filter(
    (name) => previous.jobs[name]?.enabled !== next.jobs[name]?.enabled && next.jobs[name]?.enabled !== undefined,
  );
  return { changed, restartRequired, enabledEdited };
}
