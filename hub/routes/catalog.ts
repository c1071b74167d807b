/**
 * Route filters against the tables branches report (hub/store/catalog.ts): which reported
 * tables a route covers, and the kind of each of their columns as the filter language compares
 * it. Pure.
 */
import { anyTableMatcher } from '../../protocol/table-pattern.js';
import type { ColumnKind } from './filter.js';

export interface KnownTable {
  readonly name: string;
  readonly columns: readonly { readonly name: string; readonly type: string }[];
}

const NUMBER = /^(smallint|integer|bigint|numeric(\(\d+(,\d+)?\))?|real|double precision)$/;
const TEXT = /^(text|character varying(\(\d+\))?|character(\(\d+\))?|"char"|name|uuid|citext)$/;

/**
 * How the filter language compares a column of PostgreSQL type `type` (`format_type()` text):
 * values travel as PostgreSQL's text form, so numbers compare as decimals, text as text. Other
 * types (dates, arrays, json, domains) are compared as text and their literals not checked.
 */
export function columnKind(type: string): ColumnKind {
  if (NUMBER.test(type)) return 'number';
  if (type === 'boolean') return 'boolean';
  if (TEXT.test(type)) return 'text';
  return 'other';
}

/** The reported tables that `patterns` cover, each with its columns' kinds. */
export function coveredTables(patterns: readonly string[], known: readonly KnownTable[]): { name: string; columns: Map<string, ColumnKind> }[] {
  const covers = anyTableMatcher(patterns);
  return known.filter((t) => covers(t.name)).map((t) => ({ name: t.name, columns: new Map(t.columns.map((c) => [c.name, columnKind(c.type)])) }));
}
