import pg from 'pg';

/** Anything that runs a query: a pool, or a client inside a transaction. */
export type Queryable = Pick<pg.Pool, 'query'> | pg.PoolClient | pg.Client;

export interface PoolOptions {
  readonly max?: number;
  readonly applicationName?: string;
}

/** A pool whose clients never crash the process on a dropped connection. */
export function createPool(connectionString: string, options: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'hub-broker',
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    // No JIT for these short statements: PostgreSQL compiles any statement whose estimate passes
    // jit_above_cost, and with jsonb functions in them ours often do; compiling took half of the
    // hub database's CPU at full relay load. `options` in the URL, if any, replaces this.
    options: '-c jit=off',
  });
  // An idle client losing its connection emits 'error' on the pool; the next checkout reconnects.
  pool.on('error', () => undefined);
  // A client checked out when its connection drops (a failover, a restart) emits 'error' with
  // nobody listening, which would end the process; the query in flight fails and tells its caller.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/** Runs `fn` in a transaction on one client of `pool`; rolls back on any error. */
export async function withTransaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
  isolation: 'READ COMMITTED' | 'REPEATABLE READ' | 'SERIALIZABLE' = 'READ COMMITTED',
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query(`BEGIN ISOLATION LEVEL ${isolation}`);
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

export { quoteIdent } from '../../common/sql.js';

/** Stable 64-bit key for `pg_advisory_*lock` calls, computed by PostgreSQL from the string in parameter `param`. */
export function advisoryKey(param = '$1'): string {
  return `hashtextextended(${param}, 7316)`;
}

/** `advisoryKey()` of `$1`, the usual place of the key's string. */
export const ADVISORY_KEY_SQL = advisoryKey();
