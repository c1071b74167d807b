/** SQL that turns a row's columns into a jsonb object of their text forms. */
import { quoteIdent, quoteLiteral } from './ident.js';

/**
 * `jsonb_build_object('c1', alias."c1"::text, …)`, cut into pieces of 50 pairs joined with `||`
 * (a function call takes at most 100 arguments). `qualified`: every name in pg_catalog, for
 * generated function bodies that run under the writer's search_path.
 */
export function jsonbOfColumns(alias: string, names: readonly string[], qualified = false): string {
  const pg = qualified ? 'pg_catalog.' : '';
  const pieces: string[] = [];
  for (let i = 0; i < names.length; i += 50) {
    const pairs = names.slice(i, i + 50).map((c) => `${quoteLiteral(c)}, ${alias}.${quoteIdent(c)}::${pg}text`);
    pieces.push(`${pg}jsonb_build_object(${pairs.join(', ')})`);
  }
  return pieces.join(qualified ? ' OPERATOR(pg_catalog.||) ' : ' || ');
}

/**
 * A jsonb literal of `value`. Apply transactions are sent as one message of several statements,
 * which cannot carry parameters, so their data travels as literals.
 */
export function jsonbLiteral(value: unknown): string {
  return `${quoteLiteral(JSON.stringify(value))}::jsonb`;
}
