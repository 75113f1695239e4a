import { createHash } from 'node:crypto';
import { z } from 'zod';
import { envString } from './env.js';
import { matchesAny } from './glob.js';

/**
 * Who may do what (SPEC §14): API tokens with a name and a role, an operator's optional `jobs`
 * globs, and the order of the roles. `server.token` is the `admin` token; `server.tokens` adds
 * named ones. The routes and the role each needs are a table of the server's (`route-roles.ts`).
 */

/** Weakest first: each role may do everything the ones before it may. */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** True when a token of role `has` may do what needs `needs`. */
export function roleAllows(has: Role, needs: Role): boolean {
  return ROLES.indexOf(has) >= ROLES.indexOf(needs);
}

/** `GET /whoami`: who the request's token is, and what it may ask. */
export interface WhoAmI {
  name: string;
  role: Role;
  /** The `*` globs of the jobs an operator may act on; null: every job. */
  jobs: string[] | null;
  /** The audit actions (`job.run`, `run.cancel`, ...) the token may ask; `jobs` still limits those on a job, and leaves out those on a queue. */
  actions: string[];
}

/** The name `server.token` is known by (in the audit, `GET /whoami`). */
export const ADMIN_TOKEN_NAME = 'admin';
/** The name requests are recorded under when no token is configured (a loopback host). */
export const ANONYMOUS = 'anonymous';

/** A token may be stored as `sha256:<hex>` of itself: the config file then holds no usable secret. */
const HASHED = /^sha256:([0-9a-fA-F]{64})$/;
/** Named tokens are long enough that guessing one is out of reach (`server.token` keeps its older 8). */
export const MIN_TOKEN_LENGTH = 24;

/** The SHA-256 of a token, from the token or from its stored `sha256:<hex>` form. */
export function tokenDigest(stored: string): Buffer {
  const hashed = HASHED.exec(stored);
  return hashed ? Buffer.from(hashed[1]!, 'hex') : createHash('sha256').update(stored, 'utf8').digest();
}

/** A token an `Authorization: Bearer <token>` header can carry (`server.token` and `server.tokens`). */
export const sendableToken = [
  (v: string): boolean => !/\s/.test(v),
  'a token cannot hold spaces or line breaks: `Authorization: Bearer <token>` could not carry it',
] as const;

// The message never repeats the value: it is a secret.
const tokenValue = envString.pipe(
  z
    .string()
    .refine(
      (v) => HASHED.test(v) || (v.length >= MIN_TOKEN_LENGTH && !v.startsWith('sha256:')),
      `expected a token of at least ${MIN_TOKEN_LENGTH} characters, or sha256:<64 hex digits> of one`,
    )
    .refine(...sendableToken),
);

/** `server.tokens[i]`. */
export const tokenEntrySchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/, 'expected a name of 1 to 64 letters, digits, _ . @ -'),
  token: tokenValue,
  role: z.enum(ROLES),
  // Globs (`deploy-*`) of the jobs an operator may act on; without it, every job.
  jobs: z.array(z.string().min(1).max(200)).min(1).max(100).optional(),
});

export type TokenEntry = z.output<typeof tokenEntrySchema>;

/** A problem `checkTokens` found, with its path under `server`. */
export interface TokenIssue {
  path: Array<string | number>;
  message: string;
}

/**
 * What the schema of one entry cannot see: two tokens with the same name or value (compared by
 * digest, so a plain and a hashed copy of one token are caught too), a name taken by
 * `server.token` or by requests without a token, and `jobs` on a role it does not limit.
 */
export function checkTokens(adminToken: string | null, tokens: readonly TokenEntry[]): TokenIssue[] {
  const issues: TokenIssue[] = [];
  const names = new Map<string, number>();
  const digests = new Map<string, string>();
  if (adminToken !== null) digests.set(tokenDigest(adminToken).toString('hex'), 'server.token');
  tokens.forEach((entry, i) => {
    const at = (key: string): Array<string | number> => ['tokens', i, key];
    const reserved = entry.name === ANONYMOUS || (entry.name === ADMIN_TOKEN_NAME && adminToken !== null);
    const seen = names.get(entry.name);
    if (seen !== undefined) issues.push({ path: at('name'), message: `"${entry.name}" already names server.tokens.${seen}` });
    else if (reserved)
      issues.push({ path: at('name'), message: `"${entry.name}" is reserved (${entry.name === ANONYMOUS ? 'requests without a token' : 'server.token'})` });
    names.set(entry.name, i);
    const digest = tokenDigest(entry.token).toString('hex');
    const same = digests.get(digest);
    if (same !== undefined) issues.push({ path: at('token'), message: `the same token as ${same}` });
    digests.set(digest, `server.tokens.${i}`);
    if (entry.jobs !== undefined && entry.role !== 'operator') {
      issues.push({ path: at('jobs'), message: `jobs limits an operator; a token with role ${entry.role} cannot have it` });
    }
  });
  return issues;
}

/** A `server.tokens[i].jobs` glob that matches none of the jobs loaded. */
export interface UnmatchedGlob {
  /** `server.tokens.1.jobs.0`, as config errors name paths. */
  path: string;
  glob: string;
  token: string;
  /** The warning, alike in `jobhost validate` and the host's log. */
  message: string;
}

/**
 * The `jobs` globs of operator tokens that match no job of `names`: a typo, or a job not loaded
 * yet. A warning, not an error (`jobhost validate` prints it; the host logs it at start and at
 * each config edit), since a plugin may arrive later.
 */
export function unmatchedJobGlobs(tokens: readonly TokenEntry[], names: readonly string[]): UnmatchedGlob[] {
  return tokens.flatMap((t, i) =>
    (t.jobs ?? []).flatMap((glob, j) => {
      if (names.some((name) => matchesAny([glob], name))) return [];
      const path = `server.tokens.${i}.jobs.${j}`;
      return [{ path, glob, token: t.name, message: `${path}: "${glob}" (token "${t.name}") matches no job` }];
    }),
  );
}
