import pg from 'pg';
import { Redis } from 'ioredis';
import { adminDatabaseUrl, dropStaleTestDatabases } from './pg.js';
import { testRedisUrl } from './redis.js';

/** Fails the run early, with one line, when a service the tests need is not answering. */
export default async function setup(): Promise<void> {
  const c = new pg.Client({ connectionString: adminDatabaseUrl, connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    await c.end();
  } catch (err) {
    throw new Error(`tests need PostgreSQL at ${adminDatabaseUrl}: ${(err as Error).message}`);
  }
  const r = new Redis(testRedisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5000 });
  try {
    await r.connect();
    await r.ping();
  } catch (err) {
    throw new Error(`tests need Redis at ${testRedisUrl}: ${(err as Error).message}`);
  } finally {
    r.disconnect();
  }
  // Databases from runs that crashed more than a day ago; younger ones may belong to a run in progress.
  await dropStaleTestDatabases(24 * 3600_000);
}
