const compiled = new Map<string, RegExp>();

/** A `*` glob as a regex: `*` matches any run of characters; everything else is literal. */
export function glob(pattern: string): RegExp {
  let re = compiled.get(pattern);
  if (!re) {
    re = new RegExp(
      `^${pattern
        .split('*')
        .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*')}$`,
    );
    if (compiled.size < 10_000) compiled.set(pattern, re);
  }
  return re;
}

/** True when `value` matches one of the `*` globs. */
export function matchesAny(patterns: readonly string[], value: string): boolean {
  return patterns.some((p) => glob(p).test(value));
}
