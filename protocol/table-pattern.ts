/**
 * Table patterns as routes write them: a table name, or one with `*` standing for any run of
 * characters (`sales_*`). Shared by the hub's routes and the agent's send filter so that both
 * read a pattern alike.
 */

/** A compiled table pattern. */
export function tableMatcher(pattern: string): (table: string) => boolean {
  if (!pattern.includes('*')) return (t) => t === pattern;
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.$^+?()[\]{}|\\]/g, '\\$&')).join('.*')}$`);
  return (t) => re.test(t);
}

/** Whether a table matches any of `patterns`. */
export function anyTableMatcher(patterns: readonly string[]): (table: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.includes('*')));
  const globs = patterns.filter((p) => p.includes('*')).map(tableMatcher);
  return (t) => exact.has(t) || globs.some((g) => g(t));
}
