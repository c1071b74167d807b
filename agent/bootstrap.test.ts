/**
 * Bootstrap: the first branch publishes the rows it already holds; a new branch applies a
 * snapshot in chunks with progress, then continues from the log after the snapshot's offset.
 * Snapshot contents are built here from the in-process relay's log (a stand-in for the hub in
 * these unit tests only; the hub compacts its own state).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compare } from '../protocol/version-vector.js';
import type { Change } from '../protocol/messages.js';
import { createTestDatabase, type TestDatabase } from '../test/support/pg.js';
import { loadConfig, type AgentConfig } from './config.js';
import { publishExisting } from './publish.js';
import { checkInstallation } from './service.js';
import { SnapshotReceiver, type SnapshotProgress } from './snapshot.js';
import { formatStatus, readStatus } from './status.js';
import { cursorOf, drainOutbox, dump, openBranch, Relay, type TestBranch } from './testing/branches.js';

const DDL = `
  CREATE TABLE public.product (sku text, region int, name text, price numeric(10,2), PRIMARY KEY (sku, region));
  INSERT INTO public.product SELECT 'sku-' || g, g % 3, 'product ' || g, g * 1.25 FROM generate_series(1, 2500) g;
`;
const TABLES = [{ name: 'public.product' }];

/** An agent configuration for `databaseUrl` (for the installation check). */
function agentConfig(databaseUrl: string): AgentConfig {
  return loadConfig({ env: { HUB_URL: 'http://127.0.0.1:9', TENANT_ID: 't', BRANCH_ID: 'b', API_KEY: 'k'.repeat(43), DATABASE_URL: databaseUrl, AGENT_TABLES: 'public.product' }, argv: [] });
}

let dbs: TestDatabase[] = [];
let first: TestBranch;
let second: TestBranch;
let fresh: TestBranch;
const relay = new Relay();

beforeAll(async () => {
  dbs = await Promise.all(['first', 'second', 'fresh'].map((l) => createTestDatabase(`boot_${l}`)));
  first = await openBranch(dbs[0]?.url ?? '', 'first', DDL, TABLES);
  second = await openBranch(dbs[1]?.url ?? '', 'second', `CREATE TABLE public.product (sku text, region int, name text, price numeric(10,2), PRIMARY KEY (sku, region))`, TABLES);
  fresh = await openBranch(dbs[2]?.url ?? '', 'fresh', `CREATE TABLE public.product (sku text, region int, name text, price numeric(10,2), PRIMARY KEY (sku, region))`, TABLES);
}, 60_000);

afterAll(async () => {
  await Promise.all([first, second, fresh].map((x) => x?.close()));
  await Promise.all(dbs.map((d) => d.drop()));
});

/** Per row, the versions no other version dominates: what the hub's compacted state keeps. */
function maximalVersions(changes: readonly Change[]): Change[] {
  const byRow = new Map<string, Change[]>();
  for (const c of changes) {
    const k = `${c.table}/${JSON.stringify(Object.entries(c.pk).sort())}`;
    const kept = (byRow.get(k) ?? []).filter((x) => compare(c.vv, x.vv) !== 'after');
    if (!kept.some((x) => ['after', 'equal'].includes(compare(x.vv, c.vv)))) kept.push(c);
    byRow.set(k, kept);
  }
  return [...byRow.values()].flat();
}

describe('publish-existing', () => {
  it('turns rows that were there before install into inserts, in key order, once', async () => {
    const progress: number[] = [];
    const published = await publishExisting(first.pool, first.tables, (p) => progress.push(p.published), 1000);
    expect(published.get('public.product')).toBe(2500);
    expect(progress).toEqual([1000, 2000, 2500]);
    expect((await publishExisting(first.pool, first.tables)).get('public.product')).toBe(0);
    const batches = await drainOutbox(first, 500, 5000);
    const changes = batches.flat();
    expect(changes).toHaveLength(2500);
    expect(changes.every((c) => c.op === 'insert' && c.vv.first === 1 && c.origin === 'first')).toBe(true);
    expect(changes[0]).toMatchObject({ pk: { sku: 'sku-1', region: '1' }, row: { name: 'product 1', price: '1.25' } });
    relay.append(changes);
  });

  it('lets a second branch catch up from the log', async () => {
    await relay.deliver(second, 0, 400);
    expect(await dump(second.pool, 'public.product', ['sku', 'region'])).toEqual(await dump(first.pool, 'public.product', ['sku', 'region']));
  });
});

describe('snapshot', () => {
  it('bootstraps a new branch in chunks with progress, then continues after the snapshot offset', async () => {
    // Writes at both branches, with a conflict, before the snapshot is taken.
    await first.pool.query(`UPDATE product SET price = price + 1 WHERE region = 0`);
    await second.pool.query(`UPDATE product SET name = 'renamed at second' WHERE sku = 'sku-3'`);
    await second.pool.query(`DELETE FROM product WHERE sku = 'sku-4'`);
    await relay.collect(first);
    await relay.collect(second);
    await relay.deliver(first, await cursorOf(first));
    await relay.deliver(second, await cursorOf(second));
    const offset = relay.log.length;
    const rows = maximalVersions(relay.log.map(([, c]) => c));

    const seen: SnapshotProgress[] = [];
    const receiver = new SnapshotReceiver(fresh.engine, (p) => seen.push(p));
    receiver.begin({ type: 'snapshot.begin', id: 'b', snapshot_id: 's1', offset, total_rows: rows.length });
    for (let i = 0, seq = 0; i < rows.length; i += 700, seq++) {
      await receiver.chunk({ type: 'snapshot.chunk', id: `c${seq}`, snapshot_id: 's1', seq, rows: rows.slice(i, i + 700) });
      // The cursor does not move before the end: a crash mid-snapshot bootstraps again.
      expect(await cursorOf(fresh)).toBe(0);
    }
    expect(await receiver.end({ type: 'snapshot.end', id: 'e', snapshot_id: 's1', offset, rows: rows.length })).toBe(offset);

    const chunks = Math.ceil(rows.length / 700);
    expect(seen).toHaveLength(chunks + 2);
    expect(seen.map((p) => p.rows)).toEqual([0, ...Array.from({ length: chunks }, (_, i) => Math.min(rows.length, (i + 1) * 700)), rows.length]);
    expect(seen.map((p) => p.percent)).toEqual([...seen.map((p) => p.percent)].sort((x, y) => x - y));
    expect([seen[0]?.percent, seen[1]?.percent, seen[seen.length - 1]?.percent]).toEqual([0, Math.floor((700 * 1000) / rows.length) / 10, 100]);
    expect(seen[seen.length - 1]).toMatchObject({ rows: rows.length, total: rows.length, done: true });
    expect(await cursorOf(fresh)).toBe(offset);
    expect((await readStatus(fresh.pool)).bootstrapped).toBe(true);
    const want = await dump(first.pool, 'public.product', ['sku', 'region']);
    expect(await dump(second.pool, 'public.product', ['sku', 'region'])).toEqual(want);
    expect(await dump(fresh.pool, 'public.product', ['sku', 'region'])).toEqual(want);
    expect(await fresh.outbox.pending()).toBe(0);

    // Sync goes on from the offset: later entries apply, earlier ones are not replayed.
    await first.pool.query(`UPDATE product SET name = 'after snapshot' WHERE sku = 'sku-10'`);
    await relay.collect(first);
    const results = await relay.deliver(fresh, 0);
    expect(results.reduce((n, r) => n + r.applied, 0)).toBe(1);
    expect(await dump(fresh.pool, 'public.product', ['sku', 'region'])).toEqual(await dump(first.pool, 'public.product', ['sku', 'region']));
  }, 60_000);

  it('refuses a chunk of a snapshot it did not begin', async () => {
    const receiver = new SnapshotReceiver(fresh.engine);
    await expect(receiver.chunk({ type: 'snapshot.chunk', id: 'x', snapshot_id: 'nope', seq: 0, rows: [] })).rejects.toThrow(/unknown snapshot/);
  });
});

describe('status', () => {
  it('shows pending changes, the cursor, the last ack, conflicts and dead letters', async () => {
    await second.pool.query(`UPDATE product SET name = 'pending' WHERE sku = 'sku-20'`);
    await second.engine.deliver([
      [
        10_000,
        {
          table: 'public.nope',
          op: 'insert',
          pk: { id: '1' },
          row: { id: '1' },
          hlc: '0000000000010000',
          vv: { evil: 1 },
          origin: 'evil',
          seq: 1,
          tx: '1',
        },
      ],
    ]);
    const s = await readStatus(second.pool);
    expect(s).toMatchObject({ installed: true, tenantId: 'acme', branchId: 'second', tables: ['public.product'], cursor: 10_000, pending: 1 });
    expect(s.conflicts?.total).toBeGreaterThan(0);
    expect(s.deadLetters).toMatchObject({ total: 1, unreported: 1, latest: { table: 'public.nope', origin: 'evil', seq: 1 } });
    const text = formatStatus(s);
    expect(text).toContain('pending changes:   1');
    expect(text).toContain('cursor:            10000');
    expect(text).toMatch(/dead letters:\s+1 \(1 not yet reported\)/);
    expect(text).toContain('is not synced here');
    expect(formatStatus(await readStatus(fresh.pool))).toContain('conflicts:         ');
  });

  it('says so when hubsync is not installed', async () => {
    const db = await createTestDatabase('boot_empty');
    try {
      const pg = await import('pg');
      const pool = new pg.default.Pool({ connectionString: db.url });
      expect(formatStatus(await readStatus(pool))).toMatch(/not installed/);
      await expect(checkInstallation(pool, agentConfig(db.url))).rejects.toMatchObject({ code: 'not_installed' });
      await pool.end();
    } finally {
      await db.drop();
    }
  });

  it('at start, an installation of an older schema version is refused with what to run', async () => {
    const db = await createTestDatabase('boot_old');
    try {
      const pg = await import('pg');
      const pool = new pg.default.Pool({ connectionString: db.url });
      const cfg = agentConfig(db.url);
      await pool.query(`CREATE SCHEMA hubsync; CREATE TABLE hubsync.meta (tenant_id text, branch_id text, version int, "cursor" bigint)`);
      await pool.query(`INSERT INTO hubsync.meta VALUES ($1, $2, 1, 5)`, [cfg.tenantId, cfg.branchId]);
      await expect(checkInstallation(pool, cfg)).rejects.toMatchObject({ code: 'install_outdated', message: expect.stringContaining('agent install') });
      await pool.end();
    } finally {
      await db.drop();
    }
  });

  it('at start, a database it cannot reach is reported as that, not as "not installed"', async () => {
    const pg = await import('pg');
    const url = 'postgres://postgres@127.0.0.1:1/unreachable';
    const pool = new pg.default.Pool({ connectionString: url });
    try {
      await expect(checkInstallation(pool, agentConfig(url))).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      await pool.end();
    }
  });
});
