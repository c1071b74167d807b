import pg from 'pg';

/** Anything that runs a query: a pool, or one client (inside a transaction). */
export type Queryable = Pick<pg.Pool, 'query'> | pg.PoolClient | pg.Client;

/** A pool whose idle clients losing their connection never crash the process. */
export function createPool(connectionString: string, max = 4, applicationName = 'hub-broker-agent'): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max,
    application_name: applicationName,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    // No JIT for these short statements: PostgreSQL compiles any statement whose estimate passes
    // jit_above_cost, and with jsonb functions in them ours often do; compiling took half of the
    // hub database's CPU at full relay load. `options` in the URL, if any, replaces this.
    options: '-c jit=off',
  });
  pool.on('error', () => undefined);
  // A client checked out when its connection drops emits 'error' with nobody listening, which
  // would end the process; the query in flight fails and tells its caller instead.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/** Runs `fn` in a transaction on one client; rolls back on any error. */
export async function withTransaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
  begin = 'BEGIN',
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query(begin);
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

/** SQLSTATE of a PostgreSQL error, if it is one. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** Deadlock or serialization failure: the whole transaction can simply run again. */
export function isRetryableTransactionError(err: unknown): boolean {
  const s = sqlState(err);
  return s === '40P01' || s === '40001';
}
