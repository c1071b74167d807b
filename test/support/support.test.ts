import pg from 'pg';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, useTestDatabase } from './pg.js';
import { deleteRedisPrefix, newRedisPrefix, testRedisUrl } from './redis.js';

describe('test support', () => {
  const db = useTestDatabase('support');

  it('gives each test file an empty database of its own', async () => {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    const { rows } = await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public'`,
    );
    await c.end();
    expect(db.name).toMatch(/^hbt_/);
    expect(rows[0]?.n).toBe(0);
  });

  it('drops a database with open connections', async () => {
    const other = await createTestDatabase('drop');
    const c = new pg.Client({ connectionString: other.url });
    await c.connect();
    c.on('error', () => undefined); // the forced drop terminates this session
    await other.drop();
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [other.name]);
    await admin.end();
    expect(rowCount).toBe(0);
  });

  it('removes every key under a Redis prefix and nothing else', async () => {
    const a = newRedisPrefix('a');
    const b = newRedisPrefix('b');
    const r = new Redis(testRedisUrl);
    await r.set(`${a}x`, '1');
    await r.set(`${b}x`, '1');
    await deleteRedisPrefix(a);
    expect(await r.exists(`${a}x`)).toBe(0);
    expect(await r.exists(`${b}x`)).toBe(1);
    await deleteRedisPrefix(b);
    r.disconnect();
  });
});
