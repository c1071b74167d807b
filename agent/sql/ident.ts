/** Quoting for SQL the agent generates. Identifiers come from the catalog or the config, never from the wire. */

import { quoteIdent } from '../../common/sql.js';

export { quoteIdent };

/**
 * A string literal that reads the same whatever `standard_conforming_strings` is in the session
 * that runs it (generated function bodies are parsed at run time, in the writer's session).
 */
export function quoteLiteral(value: string): string {
  return `E'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** `schema.table` → its two parts; the config has already checked there is exactly one dot. */
export function splitTable(name: string): { schema: string; table: string } {
  const dot = name.indexOf('.');
  return { schema: name.slice(0, dot), table: name.slice(dot + 1) };
}

/** `"schema"."table"` */
export function quoteTable(name: string): string {
  const { schema, table } = splitTable(name);
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}
