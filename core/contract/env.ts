import { z } from 'zod';

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * A config string with `${NAME}` read from the environment when the config loads (secrets: a
 * destination's URL, an API token); an unset variable is an error naming it (never the value).
 */
export const envString = z.string().transform((value, ctx) => {
  let missing: string | undefined;
  const out = value.replace(ENV_REF, (_, name: string) => {
    const v = process.env[name];
    if (v === undefined) missing ??= name;
    return v ?? '';
  });
  if (missing !== undefined) {
    ctx.addIssue({ code: 'custom', message: `environment variable ${missing} is not set` });
    return z.NEVER;
  }
  return out;
});
