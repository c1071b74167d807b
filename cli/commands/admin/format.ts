/** How `hub-broker admin` shows the API's answers to a person: tables and lists of fields. */

export type Json = Record<string, unknown>;

export function time(v: unknown): string {
  if (typeof v !== 'string') return '-';
  return v.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function cell(v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'number') return String(v);
  return JSON.stringify(v);
}

export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  if (rows.length === 0) return '(none)\n';
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`;
}

export function fields(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return `${pairs.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v}`).join('\n')}\n`;
}

/** A list of names, `-` when empty. */
export function names(v: unknown): string {
  return Array.isArray(v) && v.length > 0 ? v.map(cell).join(', ') : '-';
}

/** A branch's attributes as `k=v, k=v` by name, `-` when it has none. */
export function pairs(v: unknown): string {
  // By name: PostgreSQL's jsonb keeps keys shortest first, which reads as no order at all.
  const entries = typeof v === 'object' && v !== null ? Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) : [];
  return entries.length > 0 ? entries.map(([k, x]) => `${k}=${cell(x)}`).join(', ') : '-';
}
