/**
 * Server-side prepared statements for the hub's hot queries. Planning, not running, was most of
 * their cost: the connect-time positions query took 0.43 ms as an unnamed statement and 0.09 ms
 * prepared (pgbench, one tenant schema), and in a reconnect storm over 100 tenants nearly every
 * connection ran one of its own, planned afresh: 8 s of the database's CPU per 20,000 branches.
 *
 * The SQL names a tenant's schema, so every tenant has statements of its own, and PostgreSQL
 * keeps a plan per statement per connection (tens of KB each). So each database connection
 * holds at most `MAX_PREPARED` of them: a pool connection that would need more runs the query
 * unnamed and is then closed and replaced, which frees them all (a statement cache's eviction,
 * without tracking which statement to DEALLOCATE).
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { Queryable } from './db.js';

export const MAX_PREPARED = 128;

/** Statement names a connection has prepared, by connection. */
const preparedOn = new WeakMap<object, Set<string>>();

/** Name by SQL text; cleared when it grows past a bound (names are recomputed on demand). */
const names = new Map<string, string>();

/** A name for `text`: the same text always gets the same name, and names stay within PostgreSQL's 63 bytes. */
export function statementName(text: string): string {
  let name = names.get(text);
  if (name === undefined) {
    if (names.size >= 10_000) names.clear();
    name = `hb_${createHash('sha256').update(text).digest('base64url').slice(0, 32)}`;
    names.set(text, name);
  }
  return name;
}

function isPool(q: Queryable): q is pg.Pool {
  return typeof (q as pg.Pool).connect === 'function' && 'totalCount' in q;
}

/**
 * Runs `text` as a named statement on a connection of `q` (a pool, or one client, e.g. inside
 * a transaction). Same results as `q.query(text, values)`.
 */
export async function queryPrepared<R extends pg.QueryResultRow>(q: Queryable, text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
  const name = statementName(text);
  if (!isPool(q)) {
    const prepared = preparedSet(q);
    if (prepared.has(name) || prepared.size < MAX_PREPARED) {
      prepared.add(name);
      return q.query<R>({ name, text, values });
    }
    return q.query<R>(text, values);
  }
  const client = await q.connect();
  let replace = false;
  try {
    const prepared = preparedSet(client);
    if (prepared.has(name) || prepared.size < MAX_PREPARED) {
      prepared.add(name);
      return await client.query<R>({ name, text, values });
    }
    replace = true;
    return await client.query<R>(text, values);
  } catch (err) {
    // As pool.query does: a connection that failed a query is not reused.
    replace = true;
    throw err;
  } finally {
    client.release(replace);
  }
}

function preparedSet(client: object): Set<string> {
  let s = preparedOn.get(client);
  if (!s) preparedOn.set(client, (s = new Set()));
  return s;
}

/** How many statements `client` has prepared through `queryPrepared` (for tests). */
export function preparedCount(client: object): number {
  return preparedOn.get(client)?.size ?? 0;
}
