/**
 * Branches that start from the hub's snapshot instead of the log: a new, empty branch joining
 * while the others keep inserting, updating and deleting; a second branch of a tenant whose first
 * branch published the data it already held (`hub-broker agent publish-existing`); and a branch
 * whose cursor fell behind the hub's retention while it was offline. Each ends identical to the
 * others (ordered dumps), with the rows written during its snapshot, and nothing applied twice.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyAuditDdl, converged, E2E, metric, ROOT, type Branch, type Hub } from './support.js';

const DDL = `
  CREATE TABLE public.item (id int PRIMARY KEY, origin text NOT NULL, v int NOT NULL, note text);
  CREATE TABLE public.tag (item_id int, name text, PRIMARY KEY (item_id, name));
  ${applyAuditDdl('public.item')}
`;
const TABLES = [{ name: 'public.item' }, { name: 'public.tag' }];
const DUMP = [{ name: 'public.item' }, { name: 'public.tag', pk: ['item_id', 'name'] }];

const e2e = new E2E('bootstrap');
// Retention prunes every tenant of a hub database: the retention test gets a hub database of its own.
const e2eRetention = new E2E('bootret');
let hub: Hub;

beforeAll(async () => {
  // Small chunks, two in flight: the snapshot takes many round trips while the writers go on.
  hub = await e2e.startHub({ snapshotChunkRows: 100, snapshotWindow: 2 });
}, 120_000);

afterAll(async () => {
  await e2e.close();
  await e2eRetention.close();
}, 60_000);

const tick = (ms = 5): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Row images the apply engine wrote more than once at `x` (every write below makes a new image). */
function appliedTwice(x: Branch): Promise<unknown[]> {
  return x.query(`SELECT op, coalesce(new_row, old_row) AS image, count(*)::int AS times FROM apply_audit GROUP BY 1, 2 HAVING count(*) > 1`);
}

/** The snapshot progress an in-process agent shows (0–100). */
function snapshotPercent(x: Branch): Promise<number> {
  return metric((x.agent as NonNullable<Branch['agent']>).metrics.snapshotPercent);
}

/**
 * Writes at `x` until stopped, one transaction after another: a new item (with a tag), an update
 * of a recent one and of an old one, and every third time a delete of a recent and an old one.
 * Ids are `base + i`; the old rows are `old + i`.
 */
function writer(x: Branch, base: number, old: number): { written: () => number; stop: () => Promise<number> } {
  let running = true;
  let i = 0;
  const done = (async () => {
    while (running) {
      const k = i + 1;
      const statements = [
        `INSERT INTO item VALUES (${base + k}, '${x.id}', 0, 'new ${k}')`,
        `INSERT INTO tag VALUES (${base + k}, 'w-${x.id}')`,
        `UPDATE item SET v = v + 1, note = 'updated at ${x.id}' WHERE id IN (${base + k - 2}, ${old + k})`,
      ];
      if (k % 3 === 0) statements.push(`DELETE FROM item WHERE id IN (${base + k - 4}, ${old + 500 + k})`, `DELETE FROM tag WHERE item_id = ${base + k - 4}`);
      await x.transaction(...statements);
      i = k;
      await tick(20);
    }
  })();
  return {
    written: () => i,
    stop: async () => {
      running = false;
      await done;
      return i;
    },
  };
}

/** Runs `hub-broker <args>` to the end; exit code and output. */
function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/hub-broker.ts', ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (b: Buffer) => (output += b.toString('utf8')));
  child.stderr.on('data', (b: Buffer) => (output += b.toString('utf8')));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, output })));
}

describe('bootstrap from the hub snapshot', { timeout: 90_000 }, () => {
  it('a new, empty branch joining while the others insert, update and delete bootstraps and converges, with the rows written during its snapshot', async () => {
    const [a, b] = await Promise.all(['a', 'b'].map((id) => e2e.branch(hub, 'acme', id, DDL, TABLES))) as [Branch, Branch];
    await a.start();
    await b.start();
    await a.query(`INSERT INTO item SELECT g, 'a', 0, 'initial ' || g FROM generate_series(1, 2000) g`);
    await a.query(`INSERT INTO tag SELECT g, 'initial' FROM generate_series(1, 2000, 3) g`);
    await converged([a, b], DUMP);

    const wa = writer(a, 100_000, 0);
    const wb = writer(b, 200_000, 1000);
    const writers = [wa, wb];
    let d: Branch | undefined;
    try {
      await expect.poll(() => wa.written() + wb.written(), { timeout: 20_000 }).toBeGreaterThan(20);
      d = await e2e.branch(hub, 'acme', 'd', DDL, TABLES);
      const before = wa.written() + wb.written();
      await d.start();
      await expect.poll(() => snapshotPercent(d as Branch), { timeout: 40_000, interval: 50 }).toBe(100);
      const during = wa.written() + wb.written() - before;
      // The others kept writing while d took its snapshot.
      expect(during).toBeGreaterThan(0);
      // And after: d follows the log from the snapshot's offset.
      const after = wa.written();
      await expect.poll(async () => (await (d as Branch).query(`SELECT 1 FROM item WHERE id > $1 LIMIT 1`, [100_000 + after])).length, { timeout: 20_000 }).toBe(1);
    } finally {
      for (const w of writers) await w.stop();
    }

    const joined = d as Branch;
    const [items, tags] = await converged([a, b, joined], DUMP);
    expect(await joined.query(`SELECT bootstrapped FROM hubsync.apply_state`)).toEqual([{ bootstrapped: true }]);
    // Old rows updated and deleted, new rows inserted, updated and deleted, by both writers.
    expect(items?.length).toBeGreaterThan(2000);
    expect(items?.some((r) => r.includes('"updated at a"'))).toBe(true);
    expect(items?.some((r) => r.includes('"updated at b"'))).toBe(true);
    expect(items?.some((r) => r.startsWith('(503,'))).toBe(false);
    expect(tags?.some((r) => r.includes('w-b'))).toBe(true);
    for (const x of [a, b, joined]) {
      expect(await appliedTwice(x)).toEqual([]);
      expect(await x.deadLetters()).toEqual([]);
      // Done with these: their database connections go back before the next test.
      await x.stopAll();
    }
  });

  it('a new branch whose agent is killed (SIGKILL) in the middle of its snapshot bootstraps again when restarted and converges, applying nothing twice', async () => {
    const [a, b] = await Promise.all(['a', 'b'].map((id) => e2e.branch(hub, 'acme-2', id, DDL, TABLES))) as [Branch, Branch];
    await a.start();
    await b.start();
    await a.query(`INSERT INTO item SELECT g, 'a', 0, 'initial ' || g FROM generate_series(1, 2000) g`);
    await converged([a, b], DUMP);
    const e = await e2e.branch(hub, 'acme-2', 'e', DDL, TABLES);
    const wa = writer(a, 100_000, 0);
    try {
      const applied = async (): Promise<number> => Number((await e.query<{ n: string }>(`SELECT count(*) AS n FROM apply_audit`))[0]?.n);
      const bootstrapped = async (): Promise<boolean> => (await e.query<{ b: boolean }>(`SELECT bootstrapped AS b FROM hubsync.apply_state`))[0]?.b ?? false;
      const agent = e.spawn();
      await expect.poll(applied, { timeout: 30_000, interval: 10 }).toBeGreaterThan(0);
      await agent.kill();
      // Killed mid-snapshot: some chunks applied, the snapshot not finished.
      expect(await bootstrapped()).toBe(false);
      expect(await applied()).toBeLessThan(2000);
      e.spawn();
      await expect.poll(bootstrapped, { timeout: 30_000 }).toBe(true);
      const after = wa.written();
      await expect.poll(async () => (await e.query(`SELECT 1 FROM item WHERE id > $1 LIMIT 1`, [100_000 + after])).length, { timeout: 20_000 }).toBe(1);
    } finally {
      await wa.stop();
    }
    const [items] = await converged([a, b, e], DUMP);
    expect(items?.length).toBeGreaterThan(2000);
    for (const x of [a, b, e]) {
      expect(await appliedTwice(x)).toEqual([]);
      expect(await x.deadLetters()).toEqual([]);
      await x.stopAll();
    }
  });

  it('publish-existing: the first branch publishes the rows it already holds, and a second, empty branch bootstraps them', async () => {
    const seeded = `${DDL}
      INSERT INTO public.item SELECT g, 'p1', g % 7, CASE WHEN g % 5 = 0 THEN NULL ELSE 'ünïcödé ' || g END FROM generate_series(1, 1500) g;
      INSERT INTO public.tag SELECT g, n FROM generate_series(1, 300) g, unnest(ARRAY['x', 'y "z"']) n;`;
    const p1 = await e2e.branch(hub, 'pub', 'p1', seeded, TABLES);
    // Rows that were there before install were never captured.
    expect(await p1.pending()).toBe(0);

    const first = await cli(['agent', 'publish-existing'], p1.env());
    expect(first.output).toContain('public.item: 1500 rows published');
    expect(first.output).toContain('public.tag: 600 rows published');
    expect(first.code).toBe(0);
    expect(await p1.pending()).toBe(2100);
    // Running it again publishes nothing new.
    const again = await cli(['agent', 'publish-existing'], p1.env());
    expect(again.output).toContain('public.item: 0 rows published');
    expect(again.code).toBe(0);
    expect(await p1.pending()).toBe(2100);

    await p1.start();
    await expect.poll(() => p1.pending(), { timeout: 30_000 }).toBe(0);
    const p2 = await e2e.branch(hub, 'pub', 'p2', DDL, TABLES);
    await p2.start();
    const [items, tags] = await converged([p1, p2], DUMP);
    expect(await snapshotPercent(p2)).toBe(100);
    expect(items).toHaveLength(1500);
    expect(items).toContain('(10,p1,3,)');
    expect(items).toContain('(11,p1,4,"ünïcödé 11")');
    expect(tags).toHaveLength(600);

    // Both go on syncing both ways.
    await p2.query(`UPDATE item SET note = 'edited at p2' WHERE id = 1`);
    await p1.query(`DELETE FROM item WHERE id = 2`);
    const [later] = await converged([p1, p2], DUMP);
    expect(later?.slice(0, 2)).toEqual(['(1,p1,1,"edited at p2")', '(3,p1,3,"ünïcödé 3")']);
    expect(await appliedTwice(p2)).toEqual([]);
    await p1.stopAll();
    await p2.stopAll();
  });

  it('a branch whose cursor fell behind retention while it was offline bootstraps again, keeps what it wrote offline, and converges', async () => {
    const rhub = await e2eRetention.startHub({ retentionMaxEntries: 20, maintenanceIntervalMs: 3_600_000 });
    const [r1, r2] = await Promise.all(['r1', 'r2'].map((id) => e2eRetention.branch(rhub, 'ret', id, DDL, TABLES))) as [Branch, Branch];
    await r1.start();
    await r2.start();
    await r1.query(`INSERT INTO item SELECT g, 'r1', 0, NULL FROM generate_series(1, 50) g`);
    await converged([r1, r2], DUMP);

    await r2.stop();
    // 60 transactions while r2 is away: updates, deletes, inserts.
    for (let k = 1; k <= 60; k++) {
      if (k % 3 === 0) await r1.query(`DELETE FROM item WHERE id = ${k / 3}`);
      else if (k % 3 === 1) await r1.query(`UPDATE item SET v = v + 1 WHERE id = ${30 + (k % 20)}`);
      else await r1.query(`INSERT INTO item VALUES (${1000 + k}, 'r1', 0, 'while r2 was away')`);
    }
    await r2.query(`INSERT INTO item VALUES (5000, 'r2', 0, 'written offline')`);
    await expect.poll(() => r1.pending(), { timeout: 20_000 }).toBe(0);

    // The hub keeps only the last 20 entries: r2's cursor is now below what the log still holds.
    const pool = rhub.store.pool;
    const where = async (): Promise<{ pruned: number; cursor: number }> => {
      await rhub.app?.maintain();
      const { rows } = await pool.query<{ pruned: string; cursor: string }>(
        `SELECT m.pruned_upto AS pruned, c.pos AS cursor FROM tenant_ret.meta m, tenant_ret.cursors c WHERE c.branch_id = 'r2'`,
      );
      return { pruned: Number(rows[0]?.pruned), cursor: Number(rows[0]?.cursor) };
    };
    await expect
      .poll(async () => {
        const w = await where();
        return w.pruned > w.cursor;
      }, { timeout: 20_000 })
      .toBe(true);

    await r2.start();
    const [items] = await converged([r1, r2], DUMP);
    expect(await snapshotPercent(r2)).toBe(100);
    expect(items).toContain('(5000,r2,0,"written offline")');
    expect(items).toContain('(1002,r1,0,"while r2 was away")');
    expect(items?.some((r) => r.startsWith('(20,'))).toBe(false);
    expect(items).toHaveLength(50 - 20 + 20 + 1);
    for (const x of [r1, r2]) {
      expect(await appliedTwice(x)).toEqual([]);
      expect(await x.deadLetters()).toEqual([]);
    }
  });
});
