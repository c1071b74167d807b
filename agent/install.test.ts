import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../test/support/pg.js';
import { loadInstalledTables } from './catalog.js';
import { AgentError } from './errors.js';
import { install, uninstall } from './install.js';
import { HUBSYNC_SCHEMA_VERSION } from './sql/schema.js';

let db: TestDatabase;
let pool: pg.Pool;

const SCHEMA = `
  CREATE SCHEMA shop;
  CREATE TABLE shop.customer (id bigint PRIMARY KEY, name text NOT NULL, email text UNIQUE);
  CREATE TABLE shop.orders (id uuid PRIMARY KEY, customer_id bigint, total numeric(12,2), at timestamptz DEFAULT now(),
                            doubled numeric GENERATED ALWAYS AS (total * 2) STORED);
  CREATE TABLE shop.nokey (a int, b text);
  CREATE TABLE shop.weird (id int PRIMARY KEY, rel regclass);
  CREATE TABLE shop.weird_array (id int PRIMARY KEY, types regtype[]);
  CREATE TABLE shop.ident (id int PRIMARY KEY, n int GENERATED ALWAYS AS IDENTITY);
  CREATE TABLE shop."Mixed Case" (id int PRIMARY KEY, "Some Col" text);
  CREATE VIEW shop.customer_view AS SELECT * FROM shop.customer;
`;

async function triggers(): Promise<string[]> {
  const { rows } = await pool.query<{ t: string }>(
    `SELECT c.relname || ':' || t.tgname AS t FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE NOT t.tgisinternal ORDER BY 1`,
  );
  return rows.map((r) => r.t);
}

async function hubsyncExists(): Promise<boolean> {
  const { rows } = await pool.query<{ ok: boolean }>(`SELECT to_regnamespace('hubsync') IS NOT NULL AS ok`);
  return rows[0]?.ok === true;
}

async function refusal(p: Promise<unknown>): Promise<AgentError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentError);
  return err as AgentError;
}

const ids = { tenantId: 'acme', branchId: 'store-1' };

beforeAll(async () => {
  db = await createTestDatabase('install');
  pool = new pg.Pool({ connectionString: db.url, max: 3 });
  await pool.query(SCHEMA);
});

afterAll(async () => {
  await pool.end();
  await db.drop();
});

describe('install', () => {
  beforeEach(async () => {
    await uninstall(pool, { force: true });
  });

  it('creates schema hubsync and one capture trigger per configured table', async () => {
    const report = await install(pool, { ...ids, tables: [{ name: 'shop.customer' }, { name: 'shop.orders', conflictStrategy: 'branch-priority' }] });
    expect(report.added).toEqual(['shop.customer', 'shop.orders']);
    expect(await triggers()).toEqual([
      'customer:hubsync_capture',
      'customer:hubsync_capture_insert',
      'customer:hubsync_no_truncate',
      'orders:hubsync_capture',
      'orders:hubsync_capture_insert',
      'orders:hubsync_no_truncate',
    ]);
    const tables = await loadInstalledTables(pool);
    expect(tables.get('shop.orders')).toMatchObject({
      pk: ['id'],
      strategy: 'branch-priority',
      // The generated column is computed at every branch and never carried.
      columns: [
        { name: 'id', type: 'uuid' },
        { name: 'customer_id', type: 'bigint' },
        { name: 'total', type: 'numeric(12,2)' },
        { name: 'at', type: 'timestamp with time zone' },
      ],
      pins: ['DateStyle', 'TimeZone'],
    });
    expect(tables.get('shop.customer')?.pins).toEqual([]);
  });

  it('is idempotent: a second run changes nothing and keeps captured changes', async () => {
    await install(pool, { ...ids, tables: [{ name: 'shop.customer' }] });
    await pool.query(`INSERT INTO shop.customer VALUES (1, 'Ada', 'ada@example.com')`);
    const before = await triggers();
    const again = await install(pool, { ...ids, tables: [{ name: 'shop.customer' }] });
    expect(again.added).toEqual([]);
    expect(again.updated).toEqual(['shop.customer']);
    expect(await triggers()).toEqual(before);
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM hubsync.change_log`);
    expect(rows[0]).toEqual({ n: 1 });
    await pool.query(`DELETE FROM shop.customer`);
  });

  it('adds and removes triggers when the table list changes', async () => {
    await install(pool, { ...ids, tables: [{ name: 'shop.customer' }] });
    const r = await install(pool, { ...ids, tables: [{ name: 'shop.orders' }, { name: 'shop.Mixed Case' }] });
    expect(r.added).toEqual(['shop.orders', 'shop.Mixed Case']);
    expect(r.removed).toEqual(['shop.customer']);
    expect(await triggers()).toEqual([
      'Mixed Case:hubsync_capture',
      'Mixed Case:hubsync_capture_insert',
      'Mixed Case:hubsync_no_truncate',
      'orders:hubsync_capture',
      'orders:hubsync_capture_insert',
      'orders:hubsync_no_truncate',
    ]);
    // In configuration order: applies lock rows table by table in this order.
    expect([...(await loadInstalledTables(pool)).keys()]).toEqual(['shop.orders', 'shop.Mixed Case']);
  });

  it.each([
    ['shop.missing', 'missing_table', 'table shop.missing does not exist'],
    ['shop.nokey', 'no_primary_key', 'table shop.nokey has no primary key'],
    ['shop.customer_view', 'not_a_table', 'shop.customer_view is not a table'],
    ['shop.weird', 'unsupported_type', 'table shop.weird column rel has type regclass'],
    ['shop.weird_array', 'unsupported_type', 'table shop.weird_array column types has type regtype[]'],
    ['shop.ident', 'identity_always', 'table shop.ident column n is GENERATED ALWAYS AS IDENTITY'],
  ])('refuses %s with a clear error and leaves nothing half-installed', async (table, code, message) => {
    const err = await refusal(install(pool, { ...ids, tables: [{ name: 'shop.customer' }, { name: table }] }));
    expect(err.code).toBe(code);
    expect(err.message).toContain(message);
    expect(await hubsyncExists()).toBe(false);
    expect(await triggers()).toEqual([]);
  });

  it('a refused re-install keeps the previous installation as it was', async () => {
    await install(pool, { ...ids, tables: [{ name: 'shop.customer' }] });
    await refusal(install(pool, { ...ids, tables: [{ name: 'shop.orders' }, { name: 'shop.nokey' }] }));
    expect(await triggers()).toEqual(['customer:hubsync_capture', 'customer:hubsync_capture_insert', 'customer:hubsync_no_truncate']);
    expect([...(await loadInstalledTables(pool)).keys()]).toEqual(['shop.customer']);
  });

  it('refuses to install over another branch', async () => {
    await install(pool, { ...ids, tables: [{ name: 'shop.customer' }] });
    const err = await refusal(install(pool, { tenantId: 'acme', branchId: 'store-2', tables: [{ name: 'shop.customer' }] }));
    expect(err.code).toBe('other_installation');
  });

  it('refuses TRUNCATE of a synced table, which would not replicate', async () => {
    await install(pool, { ...ids, tables: [{ name: 'shop.customer' }] });
    await expect(pool.query(`TRUNCATE shop.customer`)).rejects.toThrow(/TRUNCATE of synced table shop.customer is not replicated/);
  });
});

describe('uninstall', () => {
  it('removes triggers and schema, and is idempotent', async () => {
    await install(pool, { ...ids, tables: [{ name: 'shop.customer' }, { name: 'shop.orders' }] });
    expect(await uninstall(pool)).toEqual({ installed: true, droppedChanges: 0 });
    expect(await hubsyncExists()).toBe(false);
    expect(await triggers()).toEqual([]);
    expect(await uninstall(pool)).toEqual({ installed: false, droppedChanges: 0 });
  });

  it('refuses while unacknowledged changes wait, unless forced', async () => {
    await install(pool, { ...ids, tables: [{ name: 'shop.customer' }] });
    await pool.query(`INSERT INTO shop.customer VALUES (7, 'Grace', NULL)`);
    const err = await refusal(uninstall(pool));
    expect(err.code).toBe('pending_changes');
    expect(await hubsyncExists()).toBe(true);
    expect(await uninstall(pool, { force: true })).toEqual({ installed: true, droppedChanges: 1 });
    await pool.query(`DELETE FROM shop.customer`);
  });
});

describe('upgrade from schema version 1', () => {
  it('moves the cursor, clock floor and last ack out of hubsync.meta, keeps the outbox, and records the table order', async () => {
    await uninstall(pool, { force: true });
    // Version 1 as it was installed: everything in one meta row.
    await pool.query(`CREATE SCHEMA hubsync;
      CREATE TABLE hubsync.meta (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), tenant_id text NOT NULL,
        branch_id text NOT NULL, version integer NOT NULL, "cursor" bigint NOT NULL DEFAULT 0, bootstrapped boolean NOT NULL DEFAULT false,
        clock_floor bigint NOT NULL DEFAULT 0, last_ack_at timestamptz, last_apply_at timestamptz, installed_at timestamptz NOT NULL DEFAULT now());
      INSERT INTO hubsync.meta (tenant_id, branch_id, version, "cursor", bootstrapped, clock_floor, last_ack_at)
        VALUES ('acme', 'store-1', 1, 4242, true, 77, '2026-01-01T00:00:00Z')`);
    await install(pool, { ...ids, tables: [{ name: 'shop.orders' }, { name: 'shop.customer' }] });
    const { rows } = await pool.query(`SELECT m.version, a."cursor"::int, a.bootstrapped, a.clock_floor::int, s.last_ack_at IS NOT NULL AS acked
      FROM hubsync.meta m, hubsync.apply_state a, hubsync.send_state s`);
    expect(rows).toEqual([{ version: HUBSYNC_SCHEMA_VERSION, cursor: 4242, bootstrapped: true, clock_floor: 77, acked: true }]);
    const cols = await pool.query(`SELECT column_name FROM information_schema.columns WHERE table_schema = 'hubsync' AND table_name = 'meta' ORDER BY 1`);
    expect(cols.rows.map((r) => r.column_name)).toEqual(['branch_id', 'installed_at', 'singleton', 'tenant_id', 'version']);
    // Applies lock tables in configuration order, not by name.
    expect([...(await loadInstalledTables(pool)).keys()]).toEqual(['shop.orders', 'shop.customer']);
    // A capture after the upgrade stamps at least the migrated floor.
    await pool.query(`INSERT INTO shop.customer VALUES (9, 'after upgrade', NULL)`);
    const captured = await pool.query(`SELECT hlc::text FROM hubsync.change_log`);
    expect(BigInt(captured.rows[0].hlc)).toBeGreaterThan(77n);
    await uninstall(pool, { force: true });
    await pool.query(`DELETE FROM shop.customer`);
  });
});
