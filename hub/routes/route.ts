/**
 * What a tenant declares about routing (docs/sync-semantics.md "Routing"), and the checks made
 * when it is saved: groups and attributes of branches, routes of tenants. Pure.
 *
 * A tenant without routes sends every change to every other branch. With routes, a change of
 * table T from branch O reaches branch B when some route covers T, lists a group of O in `from`
 * and a group of B in `to`, and its filter (if any) selects the row for B.
 */
import { DNS_LABEL } from '../../protocol/index.js';
import { coveredTables, type KnownTable } from './catalog.js';
import { checkFilter, FilterError, parseFilter, type Filter } from './filter.js';

export interface Route {
  /** Unique within the tenant; names the route in errors, status and metrics. */
  readonly name: string;
  /** `schema.table`, or a pattern where `*` matches any run of characters (`sales.*`). */
  readonly tables: readonly string[];
  /** Groups whose branches send these tables; `*` is every branch. */
  readonly from: readonly string[];
  /** Groups whose branches receive them; `*` is every branch. */
  readonly to: readonly string[];
  /** Row filter evaluated per receiving branch (hub/routes/filter.ts); absent = every row. */
  readonly filter?: string;
}

export interface BranchRouting {
  readonly groups: readonly string[];
  readonly attributes: Readonly<Record<string, string>>;
}

/** The routing a branch's rows follow: the tenant's routes and the branch's own groups and attributes. */
export interface RoutingSynced extends BranchRouting {
  readonly routes: readonly Route[];
}

export const MAX_ROUTES = 100;
export const MAX_GROUPS = 32;
export const MAX_ATTRIBUTES = 32;
const ATTRIBUTE_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,62}$/;
const TABLE_PATTERN = /^[A-Za-z0-9_*$]+\.[A-Za-z0-9_*$]+$/;

export class RouteError extends Error {
  override readonly name = 'RouteError';
}

function group(what: string, g: unknown, wildcard: boolean): string {
  if (typeof g !== 'string' || !((wildcard && g === '*') || (g.length <= 63 && DNS_LABEL.test(g)))) {
    throw new RouteError(`${what}: group ${JSON.stringify(g)} must be a DNS-1123 label${wildcard ? ' or "*"' : ''}`);
  }
  return g;
}

function list(what: string, v: unknown, max: number): unknown[] {
  if (!Array.isArray(v)) throw new RouteError(`${what}: must be a list`);
  if (v.length > max) throw new RouteError(`${what}: at most ${max} entries`);
  return v;
}

/** Groups of a branch: distinct DNS labels, sorted. */
export function validateGroups(input: unknown): string[] {
  const groups = list('groups', input, MAX_GROUPS).map((g) => group('groups', g, false));
  return [...new Set(groups)].sort();
}

/** Attributes of a branch: names like identifiers, values strings of at most 256 characters. */
export function validateAttributes(input: unknown): Record<string, string> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new RouteError('attributes: must be an object of strings');
  const entries = Object.entries(input);
  if (entries.length > MAX_ATTRIBUTES) throw new RouteError(`attributes: at most ${MAX_ATTRIBUTES}`);
  const out: Record<string, string> = {};
  for (const [k, v] of entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!ATTRIBUTE_NAME.test(k)) throw new RouteError(`attributes: name ${JSON.stringify(k)} must start with a letter or "_" and hold letters, digits, "_" or "-"`);
    if (typeof v !== 'string' || v.length > 256) throw new RouteError(`attributes.${k}: must be a string of at most 256 characters`);
    out[k] = v;
  }
  return out;
}

/** What routes are checked against when saved. */
export interface RouteSchema {
  /**
   * Attribute names the tenant's branches carry; a filter naming another is refused (a typo
   * would select nothing). null: not checked (no branches yet, so routes can be declared first).
   */
  readonly attributes: ReadonlySet<string> | null;
  /**
   * Tables branches reported (`catalog.report`): a filter is checked against the columns of
   * every one its route covers. A table no branch reported yet is not checked.
   */
  readonly tables: readonly KnownTable[];
}

/** Routes as saved: every field checked, filters parsed and checked against `schema`. */
export function validateRoutes(input: unknown, schema: RouteSchema): Route[] {
  const routes = list('routes', input, MAX_ROUTES);
  const names = new Set<string>();
  return routes.map((r, i) => {
    if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new RouteError(`routes[${i}]: must be an object`);
    const o = r as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (!['name', 'tables', 'from', 'to', 'filter'].includes(k)) throw new RouteError(`routes[${i}]: unknown field "${k}"`);
    }
    const name = o.name;
    if (typeof name !== 'string' || name.length > 63 || !DNS_LABEL.test(name)) {
      throw new RouteError(`routes[${i}].name: must be a DNS-1123 label`);
    }
    if (names.has(name)) throw new RouteError(`routes[${i}].name: "${name}" is used twice`);
    names.add(name);
    const at = `route "${name}"`;
    const tables = list(`${at}: tables`, o.tables, 100).map((t) => {
      if (typeof t !== 'string' || t.length > 130 || !TABLE_PATTERN.test(t)) {
        throw new RouteError(`${at}: table ${JSON.stringify(t)} must be schema.table (unquoted names; * matches any run of characters)`);
      }
      return t;
    });
    if (tables.length === 0) throw new RouteError(`${at}: tables: name at least one`);
    const from = list(`${at}: from`, o.from, MAX_GROUPS).map((g) => group(`${at}: from`, g, true));
    const to = list(`${at}: to`, o.to, MAX_GROUPS).map((g) => group(`${at}: to`, g, true));
    if (from.length === 0 || to.length === 0) throw new RouteError(`${at}: from and to each need a group (or "*")`);
    if (o.filter === undefined || o.filter === null || o.filter === '') return { name, tables, from, to };
    if (typeof o.filter !== 'string') throw new RouteError(`${at}: filter must be text`);
    let parsed: Filter;
    try {
      parsed = parseFilter(o.filter);
    } catch (err) {
      if (err instanceof FilterError) throw new RouteError(`${at}: ${err.message}`);
      throw err;
    }
    const problems = filterProblems(parsed, tables, schema);
    if (problems.length > 0) throw new RouteError(`${at}: ${problems.join('; ')}`);
    return { name, tables, from, to, filter: o.filter };
  });
}

/** A filter's problems: attributes once, columns per covered table that branches reported. */
function filterProblems(f: Filter, patterns: readonly string[], schema: RouteSchema): string[] {
  const { attributes } = schema;
  const problems = checkFilter(f, { attributes });
  for (const t of coveredTables(patterns, schema.tables)) {
    for (const p of checkFilter(f, { attributes, columns: t.columns })) {
      if (!problems.includes(p)) problems.push(`${t.name}: ${p}`);
    }
  }
  return problems;
}

/** Whether a branch with `groups` is one of `wanted` (which may hold `*`). */
export function inGroups(groups: readonly string[], wanted: readonly string[]): boolean {
  return wanted.some((w) => w === '*' || groups.includes(w));
}
