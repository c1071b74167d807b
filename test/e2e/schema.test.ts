/**
 * Schema changes through the hub (docs/sync-semantics.md "Schema changes"), with a real hub and a
 * PostgreSQL database per branch: two branches write all along while a column, a table and an
 * index are added and a column renamed; one branch is offline during both changes and writes at
 * the old schema meanwhile; one cannot apply the rename (a local difference) until a person fixes
 * it; one joins afterwards from a snapshot. Refused statements never reach a branch. At the end
 * every branch holds the same rows and the same schema.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { converged, E2E, metric, type Branch, type Hub } from './support.js';

const ADMIN = 'schema-admin-token-5e2f7a9c1d';
const DDL = `CREATE TABLE public.item (id int PRIMARY KEY, name text, qty int)`;
const TABLES = [{ name: 'public.item' }];
const V1 = `
  ALTER TABLE public.item ADD COLUMN colour text NOT NULL DEFAULT 'none';
  CREATE TABLE public.note (id int PRIMARY KEY, item_id int, body text);
  CREATE INDEX item_name_idx ON public.item (name);`;
const V2 = `ALTER TABLE public.item RENAME COLUMN qty TO amount;`;

const e2e = new E2E('schema');
let hub: Hub;
let a: Branch;
let b: Branch;
let c: Branch;

interface Answer {
  readonly status: number;
  // Bodies are whatever the API answers; tests look into them.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly body: any;
}

async function api(method: string, path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${hub.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}

async function schemaOf(x: Branch): Promise<string> {
  const cols = await x.query<{ t: string; c: string; ty: string; d: string | null }>(
    `SELECT table_name AS t, column_name AS c, data_type AS ty, column_default AS d FROM information_schema.columns
      WHERE table_schema = 'public' ORDER BY table_name, ordinal_position`,
  );
  const idx = await x.query<{ i: string }>(`SELECT indexname AS i FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname`);
  return JSON.stringify({ cols, idx: idx.map((r) => r.i) });
}

async function versionAt(x: Branch): Promise<{ version: number; blocked: { version: number; error: string } | null }> {
  const rows = await x.query<{ v: number; b: { version: number; error: string } | null }>(`SELECT schema_version AS v, schema_blocked AS b FROM hubsync.apply_state`);
  return { version: rows[0]?.v ?? -1, blocked: rows[0]?.b ?? null };
}

/** Writes at a branch until stopped, with statements valid at every schema version of the test. */
function writer(x: Branch, base: number): { stop: () => Promise<number> } {
  let running = true;
  let n = 0;
  const done = (async () => {
    while (running) {
      n++;
      await x.query(`INSERT INTO item (id, name) VALUES ($1, $2)`, [base + n, `${x.id}-${n}`]).catch(() => undefined);
      if (n > 3) await x.query(`UPDATE item SET name = name || '+' WHERE id = $1`, [base + n - 3]).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return n;
    },
  };
}

beforeAll(async () => {
  hub = await e2e.startHub({ adminToken: ADMIN });
  a = await e2e.branch(hub, 'acme', 'a', DDL, TABLES);
  b = await e2e.branch(hub, 'acme', 'b', DDL, TABLES);
  c = await e2e.branch(hub, 'acme', 'c', DDL, TABLES);
  await Promise.all([a.start(), b.start(), c.start()]);
}, 120_000);

afterAll(() => e2e.close(), 60_000);

describe('schema changes through the hub', { timeout: 240_000 }, () => {
  it('refuses unsupported statements up front, naming them, and stores nothing', async () => {
    for (const sql of ['DROP TABLE public.item', 'ALTER TABLE public.item ALTER COLUMN name TYPE varchar(10)', `ALTER TABLE hubsync.tables ADD COLUMN x int`]) {
      const r = await api('POST', '/admin/tenants/acme/schema', { sql });
      expect(r.status, sql).toBe(400);
      expect(r.body.error.message.length).toBeGreaterThan(10);
    }
    expect((await api('POST', '/admin/tenants/acme/schema', { sql: 'DROP TABLE public.item' })).body.error.message).toMatch(/statement 1 \(DROP TABLE public\.item\): DROP TABLE is not supported/);
    expect((await api('GET', '/admin/tenants/acme/schema')).body.version).toBe(0);
  });

  it('migrates every branch in order while two write, one is offline and one cannot apply a change until fixed', async () => {
    await a.query(`INSERT INTO item (id, name, qty) VALUES (1, 'first', 5)`);
    await converged([a, b, c], TABLES);
    // Known to the hub now: its key column cannot be dropped.
    const key = await api('POST', '/admin/tenants/acme/schema', { sql: 'ALTER TABLE public.item DROP COLUMN id' });
    expect(key.status).toBe(400);
    expect(key.body.error.message).toContain('public.item.id is part of the primary key');
    await c.stop();
    const writers = [writer(a, 100_000), writer(b, 200_000)];

    const v1 = await api('POST', '/admin/tenants/acme/schema', { sql: V1, description: 'colour, notes, name index' });
    expect(v1.status, JSON.stringify(v1.body)).toBe(201);
    expect(v1.body.version).toBe(1);
    expect(v1.body.statements.map((s: { kind: string }) => s.kind)).toEqual(['add_column', 'create_table', 'create_index']);
    await expect.poll(async () => [(await versionAt(a)).version, (await versionAt(b)).version], { timeout: 30_000 }).toEqual([1, 1]);

    // At the new version: the new column and table are written, and synced.
    await a.query(`UPDATE item SET colour = 'red' WHERE id = 1`);
    await a.query(`INSERT INTO note VALUES (1, 1, 'new table')`);
    // Offline at version 0, c writes at the old schema.
    await c.query(`INSERT INTO item (id, name, qty) VALUES (3, 'from c offline', 7)`);

    // b has a column of that name already: the rename cannot be applied there.
    await b.query(`ALTER TABLE item ADD COLUMN amount int`);
    const v2 = await api('POST', '/admin/tenants/acme/schema', { sql: V2 });
    expect(v2.status, JSON.stringify(v2.body)).toBe(201);
    await expect.poll(async () => (await versionAt(a)).version, { timeout: 30_000 }).toBe(2);
    await a.query(`INSERT INTO item (id, name, amount) VALUES (2, 'after rename', 9)`);
    await expect.poll(async () => (await versionAt(b)).blocked?.version ?? null, { timeout: 30_000 }).toBe(2);
    const blocked = await versionAt(b);
    expect(blocked.version).toBe(1);
    expect(blocked.blocked?.error).toContain('amount');
    expect(await metric((b.agent as NonNullable<Branch['agent']>).metrics.registry.getSingleMetric('hub_broker_agent_schema_blocked') as never)).toBe(2);
    // Nothing after the change reached b: the row written at version 2 waits.
    expect(await b.query(`SELECT 1 FROM item WHERE id = 2`)).toEqual([]);
    const listing = await api('GET', '/admin/tenants/acme/schema');
    expect(listing.body.branches.find((x: { id: string }) => x.id === 'b')).toMatchObject({ schema_version: 1, pending: 1 });

    // A person fixes the difference; the branch tries again by itself and goes on.
    await b.query(`ALTER TABLE item DROP COLUMN amount`);
    await expect.poll(async () => versionAt(b), { timeout: 60_000 }).toEqual({ version: 2, blocked: null });

    // c comes back: both changes first, then the rows; its own rows at the old schema apply everywhere.
    await c.start();
    await expect.poll(async () => (await versionAt(c)).version, { timeout: 30_000 }).toBe(2);

    const written = await Promise.all(writers.map((w) => w.stop()));
    expect(Math.min(...written)).toBeGreaterThan(20);
    const [items, notes] = await converged([a, b, c], [...TABLES, { name: 'public.note' }], 90_000);
    expect(items?.length).toBeGreaterThan(40);
    const rows = await a.query<{ id: number; colour: string; amount: number | null }>(`SELECT id, colour, amount FROM item WHERE id <= 3 ORDER BY id`);
    expect(rows).toEqual([
      { id: 1, colour: 'red', amount: 5 },
      { id: 2, colour: 'none', amount: 9 },
      // Written at version 0: the new column took its default, the renamed one its new name.
      { id: 3, colour: 'none', amount: 7 },
    ]);
    expect(notes).toHaveLength(1);
    const schemas = await Promise.all([a, b, c].map(schemaOf));
    expect(new Set(schemas).size).toBe(1);
    expect(schemas[0]).toContain('item_name_idx');
    expect(await b.deadLetters()).toEqual([]);
    expect(await c.deadLetters()).toEqual([]);
  });

  it('a branch joining afterwards gets the schema at the snapshot version, then the rows', async () => {
    const d = await e2e.branch(hub, 'acme', 'd', DDL, TABLES);
    await d.start();
    await expect.poll(async () => (await versionAt(d)).version, { timeout: 60_000 }).toBe(2);
    await converged([a, d], [...TABLES, { name: 'public.note' }], 60_000);
    expect(await schemaOf(d)).toBe(await schemaOf(a));
    const applied = await d.query<{ version: number; outcome: string }>(`SELECT version, outcome FROM hubsync.schema_changes ORDER BY version`);
    expect(applied).toEqual([
      { version: 1, outcome: 'applied' },
      { version: 2, outcome: 'applied' },
    ]);
  });

  it('publishes a named change once: the same name and SQL again is a no-op, other SQL a conflict', async () => {
    const sql = 'CREATE INDEX item_amount_idx ON public.item (amount);';
    const first = await api('POST', '/admin/tenants/acme/schema', { sql, name: 'qty-index' });
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    expect(first.body).toMatchObject({ version: 3, created: true });
    const again = await api('POST', '/admin/tenants/acme/schema', { sql, name: 'qty-index' });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ version: 3, offset: first.body.offset, created: false });
    const other = await api('POST', '/admin/tenants/acme/schema', { sql: 'CREATE INDEX item_amount2_idx ON public.item (amount);', name: 'qty-index' });
    expect(other.status).toBe(409);
    expect(other.body.error.message).toContain('"qty-index" was published as version 3 with other SQL');
    const listing = await api('GET', '/admin/tenants/acme/schema');
    expect(listing.body.changes.map((c: { version: number; name: string | null }) => [c.version, c.name])).toEqual([
      [1, null],
      [2, null],
      [3, 'qty-index'],
    ]);
    await expect.poll(async () => (await versionAt(a)).version, { timeout: 30_000 }).toBe(3);
  });
});
