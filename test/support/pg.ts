import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';

/** Server-level URL used to create and drop throwaway databases. */
export const adminDatabaseUrl =
  process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  readonly name: string;
  readonly url: string;
  drop(): Promise<void>;
}

/** Names carry their creation time so leftovers of a crashed run can be recognised. */
const PREFIX = 'hbt_';

function urlFor(name: string): string {
  const u = new URL(adminDatabaseUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: adminDatabaseUrl });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/**
 * Drops a test database. A pool's end() resolves before its connections have closed, and FORCE
 * would kill those mid-goodbye (an unhandled error in the test process): wait for them first,
 * and force only what is still connected after a few seconds (a connection a test leaked).
 */
async function dropDatabase(name: string): Promise<void> {
  await admin(async (c) => {
    for (let i = 0; i < 30; i++) {
      const { rows } = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [name]);
      if (rows[0]?.n === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  });
}

/** A new empty database, for one test file (or one branch of a test). */
export async function createTestDatabase(label = 'db'): Promise<TestDatabase> {
  const safe = label.toLowerCase().replace(/[^a-z0-9]/g, '_').slice(0, 20);
  const name = `${PREFIX}${Date.now().toString(36)}_${safe}_${randomBytes(3).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE "${name}"`));
  return {
    name,
    url: urlFor(name),
    drop: () => dropDatabase(name),
  };
}

/**
 * Registers hooks that create a database before the file's tests and drop it after.
 * The returned object is filled in by `beforeAll`; read `.url` inside tests.
 */
export function useTestDatabase(label = 'db'): { url: string; name: string } {
  const holder = { url: '', name: '' };
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    db = await createTestDatabase(label);
    holder.url = db.url;
    holder.name = db.name;
  });
  afterAll(async () => {
    await db?.drop();
  });
  return holder;
}

/** Drops throwaway databases older than `maxAgeMs` left behind by crashed runs. */
export async function dropStaleTestDatabases(maxAgeMs: number): Promise<number> {
  return admin(async (c) => {
    const { rows } = await c.query<{ datname: string }>(
      `SELECT datname FROM pg_database WHERE datname LIKE 'hbt\\_%'`,
    );
    let dropped = 0;
    for (const { datname } of rows) {
      const born = parseInt(datname.slice(PREFIX.length).split('_')[0] ?? '', 36);
      if (Number.isFinite(born) && Date.now() - born > maxAgeMs) {
        await c.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
        dropped++;
      }
    }
    return dropped;
  });
}
