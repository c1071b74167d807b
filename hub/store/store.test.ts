import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../../test/support/pg.js';
import { CONTROL_CHANNEL, createPool, generateApiKey, HubStore, parseControlEvent, StoreError, type ControlEvent } from './index.js';
import { GLOBAL_SCHEMA_VERSION } from './migrations.js';

// Cheap argon2 for tests; production defaults are in api-keys.ts.
const argon2 = { memoryCost: 1024, timeCost: 1, parallelism: 1 };

describe('hub store', () => {
  const db = useTestDatabase('store');
  let pool: pg.Pool;
  let store: HubStore;

  beforeAll(async () => {
    pool = createPool(db.url);
    store = new HubStore(pool, { argon2 });
    await store.migrate();
  });
  afterAll(() => pool.end());

  async function schemaExists(name: string): Promise<boolean> {
    const { rowCount } = await pool.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [name]);
    return rowCount === 1;
  }

  it("runs its sessions without PostgreSQL's JIT (compiling short statements cost more than running them)", async () => {
    const { rows } = await pool.query<{ jit: string }>('SHOW jit');
    expect(rows).toEqual([{ jit: 'off' }]);
  });

  it('applies migrations once even when several instances start at once', async () => {
    const others = [1, 2, 3].map(() => createPool(db.url, { max: 1 }));
    const reports = await Promise.all(others.map((p) => new HubStore(p).migrate()));
    await Promise.all(others.map((p) => p.end()));
    expect(reports.every((r) => r.applied.length === 0)).toBe(true);
    const { rows } = await pool.query('SELECT version FROM hub.schema_migrations ORDER BY version');
    expect(rows).toEqual(Array.from({ length: GLOBAL_SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })));
  });

  it('creates a tenant with its schema, log, cursors, compacted-state and conflict-notice tables', async () => {
    const t = await store.createTenant('acme-retail', { maxBranches: 5, rateLimit: { messagesPerSecond: 100, burst: 200 } });
    expect(t).toMatchObject({ id: 'acme-retail', status: 'active', maxBranches: 5, schemaName: 'tenant_acme_retail' });
    const { rows } = await pool.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'tenant_acme_retail' ORDER BY 1`,
    );
    expect(rows.map((r) => r.table_name)).toEqual(['catalog', 'cursors', 'log', 'meta', 'notices', 'schema_changes', 'state']);
    await expect(store.createTenant('acme-retail')).rejects.toMatchObject({ code: 'conflict' });
  });

  it('refuses ids that are not DNS-1123 labels', async () => {
    // 57 characters would make `tenant_<id>` longer than PostgreSQL's 63-byte identifiers.
    for (const bad of ['Acme', 'a_b', '-a', 'a'.repeat(57), 'x"; drop schema hub; --']) {
      await expect(store.createTenant(bad)).rejects.toBeInstanceOf(StoreError);
    }
  });

  it('ensureTenant changes nothing when the spec is unchanged', async () => {
    const first = await store.ensureTenant('steady', { maxBranches: 3, conflictStrategy: 'branch-priority', branchPriority: ['hq'] });
    expect(first).toMatchObject({ created: true, changed: true });
    const again = await store.ensureTenant('steady', { maxBranches: 3, conflictStrategy: 'branch-priority', branchPriority: ['hq'] });
    expect(again).toMatchObject({ created: false, changed: false });
    expect(again.tenant.updatedAt).toEqual(first.tenant.updatedAt);
    const changed = await store.ensureTenant('steady', { maxBranches: 4 });
    expect(changed).toMatchObject({ created: false, changed: true });
    expect(changed.tenant).toMatchObject({ maxBranches: 4, conflictStrategy: 'branch-priority', branchPriority: ['hq'] });
  });

  it('announces status changes to listeners on the control channel', async () => {
    await store.createTenant('noisy');
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    const events: ControlEvent[] = [];
    listener.on('notification', (n) => {
      const e = parseControlEvent(n.payload);
      if (e) events.push(e);
    });
    await listener.query(`LISTEN ${CONTROL_CHANNEL}`);
    await store.suspendTenant('noisy');
    await store.createBranch('noisy', 'b1');
    await store.suspendBranch('noisy', 'b1');
    await expect.poll(() => events.length).toBeGreaterThanOrEqual(3);
    await listener.end();
    expect(events).toEqual([
      { kind: 'tenant', tenant: 'noisy', op: 'updated' },
      { kind: 'branch', tenant: 'noisy', branch: 'b1', op: 'updated' },
      { kind: 'branch', tenant: 'noisy', branch: 'b1', op: 'updated' },
    ]);
  });

  describe('branches and keys', () => {
    beforeAll(async () => {
      await store.createTenant('keys');
    });

    it('issues a key once, stores only its argon2id hash, and starts the cursor at 0', async () => {
      const { branch, apiKey } = await store.createBranch('keys', 'store-1');
      expect(apiKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(branch).toMatchObject({ tenantId: 'keys', id: 'store-1', status: 'active', hasKey: true });
      const { rows } = await pool.query('SELECT key_hash FROM hub.branches WHERE id = $1', ['store-1']);
      expect(rows[0].key_hash).toMatch(/^\$argon2id\$/);
      expect(rows[0].key_hash).not.toContain(apiKey as string);
      const cursor = await pool.query('SELECT pos FROM tenant_keys.cursors WHERE branch_id = $1', ['store-1']);
      expect(cursor.rows).toEqual([{ pos: '0' }]);
    });

    it('verifies the right key and refuses wrong keys, unknown branches and suspended ones', async () => {
      const { apiKey } = await store.createBranch('keys', 'store-2');
      const key = apiKey as string;
      expect(await store.verifyBranchKey('keys', 'store-2', key)).toMatchObject({ ok: true, tenant: { schemaName: 'tenant_keys' } });
      expect(await store.verifyBranchKey('keys', 'store-2', key.slice(1) + 'A')).toEqual({ ok: false, reason: 'wrong_key' });
      expect(await store.verifyBranchKey('keys', 'nope', key)).toEqual({ ok: false, reason: 'unknown_branch' });
      expect(await store.verifyBranchKey('other', 'store-2', key)).toEqual({ ok: false, reason: 'unknown_branch' });
      await store.suspendBranch('keys', 'store-2');
      expect(await store.verifyBranchKey('keys', 'store-2', key)).toEqual({ ok: false, reason: 'suspended' });
      await store.resumeBranch('keys', 'store-2');
      await store.suspendTenant('keys');
      expect(await store.verifyBranchKey('keys', 'store-2', key)).toEqual({ ok: false, reason: 'suspended' });
      await store.resumeTenant('keys');
      expect((await store.verifyBranchKey('keys', 'store-2', key)).ok).toBe(true);
    });

    it('keeps the old key valid during the grace period of a rotation, then not', async () => {
      const { apiKey: oldKey } = await store.createBranch('keys', 'store-3');
      const { apiKey: newKey, branch } = await store.rotateKey('keys', 'store-3', 3600);
      expect(branch.previousKeyValidUntil).not.toBeNull();
      expect((await store.verifyBranchKey('keys', 'store-3', newKey)).ok).toBe(true);
      expect((await store.verifyBranchKey('keys', 'store-3', oldKey as string)).ok).toBe(true);
      // End the grace period as time would.
      await pool.query(`UPDATE hub.branches SET prev_key_expires_at = now() - interval '1 second' WHERE id = 'store-3'`);
      expect(await store.verifyBranchKey('keys', 'store-3', oldKey as string)).toEqual({ ok: false, reason: 'wrong_key' });
      expect((await store.verifyBranchKey('keys', 'store-3', newKey)).ok).toBe(true);
    });

    it('rotates to a key the caller generated and stored first', async () => {
      await store.createBranch('keys', 'store-5');
      const mine = generateApiKey();
      const { apiKey } = await store.rotateKey('keys', 'store-5', 60, mine);
      expect(apiKey).toBe(mine);
      expect((await store.verifyBranchKey('keys', 'store-5', mine)).ok).toBe(true);
      await expect(store.rotateKey('keys', 'store-5', 60, 'short')).rejects.toMatchObject({ code: 'invalid' });
    });

    it('revokes the old key at once when rotating without grace, and every key on revoke', async () => {
      const { apiKey: oldKey } = await store.createBranch('keys', 'store-4');
      const { apiKey: newKey } = await store.rotateKey('keys', 'store-4', 0);
      expect((await store.verifyBranchKey('keys', 'store-4', oldKey as string)).ok).toBe(false);
      await store.revokeKeys('keys', 'store-4');
      expect(await store.verifyBranchKey('keys', 'store-4', newKey)).toEqual({ ok: false, reason: 'unknown_branch' });
    });

    it('enforces maxBranches, also against concurrent creations', async () => {
      await store.createTenant('small', { maxBranches: 2 });
      const results = await Promise.allSettled(['a', 'b', 'c', 'd'].map((id) => store.createBranch('small', id)));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
      const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(refused.map((r) => (r.reason as StoreError).code)).toEqual(['limit_exceeded', 'limit_exceeded']);
      expect(await store.countBranches('small')).toBe(2);
    });

    it('deletes a branch with its cursor', async () => {
      await store.createBranch('keys', 'gone');
      expect(await store.deleteBranch('keys', 'gone')).toBe(true);
      expect(await store.getBranch('keys', 'gone')).toBeNull();
      const { rowCount } = await pool.query(`SELECT 1 FROM tenant_keys.cursors WHERE branch_id = 'gone'`);
      expect(rowCount).toBe(0);
      expect(await store.deleteBranch('keys', 'gone')).toBe(false);
    });
  });

  describe('tenant deletion', () => {
    it('with policy delete drops the schema', async () => {
      await store.createTenant('temp', { deletionPolicy: 'delete' });
      await store.createBranch('temp', 'b');
      expect(await store.deleteTenant('temp')).toEqual({ deleted: true, schemaDropped: true });
      expect(await schemaExists('tenant_temp')).toBe(false);
      expect(await store.getBranch('temp', 'b')).toBeNull();
    });

    it('with policy retain keeps the schema and its log for a tenant of the same id', async () => {
      await store.createTenant('kept');
      await pool.query(
        `INSERT INTO tenant_kept.log (pos, origin, origin_seq, change) VALUES (nextval('tenant_kept.log_pos_seq'), 'b', 1, '{}')`,
      );
      expect(await store.deleteTenant('kept')).toEqual({ deleted: true, schemaDropped: false });
      expect(await schemaExists('tenant_kept')).toBe(true);
      await store.createTenant('kept');
      const { rows } = await pool.query('SELECT count(*)::int AS n FROM tenant_kept.log');
      expect(rows[0].n).toBe(1);
    });

    it('writes what happened to the audit log', async () => {
      const entries = await store.listAudit({ tenantId: 'temp' });
      expect(entries.map((e) => e.event)).toEqual(['tenant.deleted', 'branch.created', 'tenant.created']);
      expect(entries[0]?.detail).toEqual({ policy: 'delete' });
    });
  });
});
