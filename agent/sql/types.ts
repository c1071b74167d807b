/**
 * Which column types the agent carries, and which session settings their text form depends on.
 * Values travel as PostgreSQL's text form (docs/architecture.md "Values on the wire"); a capture
 * function pins only the settings its table's types need, because each pinned setting costs
 * a little on every captured row.
 */

export type Pin = 'DateStyle' | 'IntervalStyle' | 'TimeZone' | 'bytea_output' | 'extra_float_digits' | 'lc_monetary';

/** The value every pinned setting takes, at capture and at apply. */
export const PINNED: Readonly<Record<Pin, string>> = {
  DateStyle: 'ISO, YMD',
  IntervalStyle: 'postgres',
  TimeZone: 'UTC',
  bytea_output: 'hex',
  extra_float_digits: '3',
  lc_monetary: 'C',
};

export const ALL_PINS: readonly Pin[] = Object.keys(PINNED) as Pin[];

/**
 * A condition, per setting, that is true when the session's value already produces the pinned
 * text form. ISO output ignores the field order of DateStyle; any positive extra_float_digits
 * gives the shortest exact form (PostgreSQL 12+); zones that are UTC forever print `+00`.
 */
export const ALREADY_PINNED: Readonly<Record<Pin, string>> = {
  DateStyle: `pg_catalog.starts_with(pg_catalog.current_setting('DateStyle'), 'ISO')`,
  IntervalStyle: `pg_catalog.current_setting('IntervalStyle') OPERATOR(pg_catalog.=) 'postgres'`,
  TimeZone: `pg_catalog.current_setting('TimeZone') OPERATOR(pg_catalog.=) ANY ('{UTC,Etc/UTC,Etc/UCT,UCT,Etc/Universal,Universal,Etc/Zulu,Zulu}'::pg_catalog.text[])`,
  bytea_output: `pg_catalog.current_setting('bytea_output') OPERATOR(pg_catalog.=) 'hex'`,
  extra_float_digits: `pg_catalog.current_setting('extra_float_digits')::pg_catalog.int4 OPERATOR(pg_catalog.>=) 1`,
  lc_monetary: `pg_catalog.current_setting('lc_monetary') OPERATOR(pg_catalog.=) 'C'`,
};

/** One type reachable from a column's type (itself, array elements, domain bases, range subtypes, fields). */
export interface TypeComponent {
  readonly schema: string;
  readonly name: string;
  /** pg_type.typtype: b base, c composite, d domain, e enum, p pseudo, r range, m multirange. */
  readonly typtype: string;
}

// Text form is the OID's name, resolved against the local catalog and search_path: not portable.
const OID_ALIASES = new Set([
  'regclass', 'regcollation', 'regconfig', 'regdictionary', 'regnamespace', 'regoper',
  'regoperator', 'regproc', 'regprocedure', 'regrole', 'regtype',
]);
// Output-only types: their input function refuses every value.
const NO_INPUT = new Set([
  'pg_node_tree', 'pg_ndistinct', 'pg_dependencies', 'pg_mcv_list',
  'pg_brin_bloom_summary', 'pg_brin_minmax_multi_summary', 'unknown',
]);

const SENSITIVE: Readonly<Record<string, readonly Pin[]>> = {
  date: ['DateStyle'],
  time: ['DateStyle'],
  timetz: ['DateStyle'],
  timestamp: ['DateStyle'],
  timestamptz: ['DateStyle', 'TimeZone'],
  interval: ['IntervalStyle'],
  bytea: ['bytea_output'],
  float4: ['extra_float_digits'],
  float8: ['extra_float_digits'],
  point: ['extra_float_digits'],
  line: ['extra_float_digits'],
  lseg: ['extra_float_digits'],
  box: ['extra_float_digits'],
  path: ['extra_float_digits'],
  polygon: ['extra_float_digits'],
  circle: ['extra_float_digits'],
  money: ['lc_monetary'],
};

export type TypeVerdict = { readonly ok: true; readonly pins: ReadonlySet<Pin> } | { readonly ok: false; readonly reason: string };

/** Decides whether a column whose type expands to `components` can be carried, and what to pin. */
export function classifyType(components: readonly TypeComponent[]): TypeVerdict {
  const pins = new Set<Pin>();
  for (const c of components) {
    if (c.typtype === 'p') return { ok: false, reason: `${c.name} is a pseudo-type` };
    if (c.schema === 'pg_catalog' && OID_ALIASES.has(c.name)) {
      return { ok: false, reason: `${c.name} holds catalog OIDs that mean nothing in another database` };
    }
    if (c.schema === 'pg_catalog' && NO_INPUT.has(c.name)) {
      return { ok: false, reason: `${c.name} has no input function` };
    }
    if (c.schema === 'pg_catalog') {
      for (const p of SENSITIVE[c.name] ?? []) pins.add(p);
    } else if (c.typtype === 'b') {
      // An extension's base type: its output may read any setting, so pin them all.
      for (const p of ALL_PINS) pins.add(p);
    }
  }
  return { ok: true, pins };
}
