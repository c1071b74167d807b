/**
 * The scripted story: writes at every branch, a conflict, a delete, a branch offline and back,
 * a busy hour, and a new branch bootstrapped from a snapshot. Every step writes through plain
 * SQL at a branch database and waits until the other branches show the result; nothing is
 * moved by the demo itself.
 */
import type pg from 'pg';
import { decodeHlc } from '../protocol/hlc.js';
import { branchData, converged, type BranchData } from './checksum.js';
import { TABLES, type Cluster, type DemoBranch } from './cluster.js';
import { count, table, type Narrator } from './narrate.js';
import { publishSchemaChange } from '../hub/schema/publish.js';

export const BRANCHES = ['store-north', 'store-south', 'warehouse'] as const;
export const NEW_BRANCH = 'store-east';

/** Raised when the run's deadline passes while waiting; the message says for what. */
export class DemoTimeout extends Error {
  override readonly name = 'DemoTimeout';
}

export interface ScenarioOptions {
  /** Orders written during the busy hour, over all branches. */
  readonly orders: number;
  /** Epoch ms by which the whole run must be done. */
  readonly deadline: number;
}

export interface Outcome {
  readonly branches: readonly string[];
  readonly data: readonly BranchData[];
  readonly converged: boolean;
}

interface Probe {
  readonly done: boolean;
  /** What is being waited for, as it stands now. */
  readonly status: string;
}

export class Scenario {
  constructor(
    private readonly cluster: Cluster,
    private readonly say: Narrator,
    private readonly options: ScenarioOptions,
  ) {}

  // ------------------------------------------------------------------ helpers

  private get live(): DemoBranch[] {
    return this.cluster.branches;
  }

  private b(id: string): DemoBranch {
    return this.cluster.branch(id);
  }

  /** Polls `probe` until done, showing its status; throws `DemoTimeout` at the deadline. */
  async waitFor(what: string, probe: () => Promise<Probe>, intervalMs = 100): Promise<number> {
    const started = Date.now();
    this.say.resetProgress();
    for (;;) {
      const p = await probe();
      if (p.done) {
        this.say.end();
        return Date.now() - started;
      }
      if (Date.now() >= this.options.deadline) {
        this.say.end();
        throw new DemoTimeout(`the demo did not finish within its time (see --timeout): waited ${((Date.now() - started) / 1000).toFixed(0)} s until ${what} (now: ${p.status})`);
      }
      this.say.progress(p.status, started);
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }

  private async scalar(pool: pg.Pool, sql: string, params: unknown[] = []): Promise<number> {
    const { rows } = await pool.query<{ n: number }>(sql, params);
    return Number(rows[0]?.n ?? 0);
  }

  private customers(b: DemoBranch): Promise<number> {
    return this.scalar(b.pool, 'SELECT count(*)::int AS n FROM customer');
  }

  /** Waits until the branches agree on every synced table; says how many customers each has meanwhile. */
  private async converge(branches: readonly DemoBranch[], what: string): Promise<number> {
    return this.waitFor(what, async () => {
      const data = await Promise.all(branches.map((b) => branchData(b.pool, TABLES)));
      const status = branches.map((b, i) => `${b.id} ${data[i]?.counts[0] ?? 0}`).join(', ');
      return { done: converged(data), status: `customers: ${status}` };
    });
  }

  // ------------------------------------------------------------------ the story

  async run(): Promise<Outcome> {
    await this.inserts();
    await this.conflict();
    await this.stock();
    await this.deletion();
    await this.schemaChange();
    await this.offline();
    await this.busyHour();
    await this.bootstrap();
    return this.result();
  }

  private async inserts(): Promise<void> {
    this.say.step('Writes at every branch reach the others');
    const rows: Record<string, [number, string, string, string][]> = {
      'store-north': [
        [101, 'Ada Lovelace', 'ada@example.com', 'London'],
        [102, 'Charles Babbage', 'charles@example.com', 'London'],
      ],
      'store-south': [
        [201, 'Grace Hopper', 'grace@example.com', 'New York'],
        [202, 'Alan Turing', 'alan@example.com', 'Manchester'],
      ],
      warehouse: [
        [301, 'Edsger Dijkstra', 'edsger@example.com', 'Eindhoven'],
        [302, 'Barbara Liskov', 'barbara@example.com', 'Boston'],
      ],
    };
    for (const [branch, list] of Object.entries(rows)) {
      for (const r of list) {
        await this.b(branch).pool.query('INSERT INTO customer (id, name, email, city) VALUES ($1, $2, $3, $4)', r);
      }
      this.say.say(`${branch}: INSERT INTO customer … ${list.map((r) => `${r[0]} ${r[1]}`).join(', ')}`);
    }
    const ms = await this.converge(this.live, 'every branch has the 6 customers');
    this.say.ok('all 3 branches have the same 6 customers', ms);
  }

  private async conflict(): Promise<void> {
    this.say.step('The same row changed at two branches at once');
    const north = this.b('store-north');
    const south = this.b('store-south');
    const writes: [DemoBranch, string][] = [
      [north, 'ada@north.example'],
      [south, 'ada@south.example'],
    ];
    // Both updates are made in open transactions and committed together, so neither branch
    // can have seen the other's write: the two versions are concurrent.
    const clients = await Promise.all(writes.map(([b]) => b.pool.connect()));
    try {
      await Promise.all(clients.map((c) => c.query('BEGIN')));
      for (const [i, [b, email]] of writes.entries()) {
        await clients[i]?.query('UPDATE customer SET email = $1, updated_at = now() WHERE id = 101', [email]);
        this.say.say(`${b.id}: UPDATE customer SET email = '${email}' WHERE id = 101`);
      }
      await Promise.all(clients.map((c) => c.query('COMMIT')));
    } finally {
      for (const c of clients) c.release();
    }
    let conflict: ConflictRow | undefined;
    const ms = await this.waitFor('every branch has the same email for customer 101', async () => {
      const emails = await Promise.all(
        this.live.map((b) => b.pool.query<{ email: string }>('SELECT email FROM customer WHERE id = 101').then((r) => r.rows[0]?.email ?? '?')),
      );
      conflict ??= await readConflict(north.pool);
      const same = emails.every((e) => e === emails[0]);
      return { done: same && conflict !== undefined, status: this.live.map((b, i) => `${b.id} ${emails[i]}`).join(', ') };
    });
    const email = (await north.pool.query<{ email: string }>('SELECT email FROM customer WHERE id = 101')).rows[0]?.email;
    this.say.ok(`every branch now has ${email}`, ms);
    if (!conflict) return;
    const winner = conflict.winner === 'local' ? conflict.local_version : conflict.incoming_version;
    const loser = conflict.winner === 'local' ? conflict.incoming_version : conflict.local_version;
    const w = decodeHlc(winner.hlc);
    const l = decodeHlc(loser.hlc);
    const why =
      w.wall !== l.wall
        ? `its write has the later timestamp`
        : w.logical !== l.logical
          ? `same millisecond, later logical counter`
          : `same timestamp, so the tie goes to the higher branch id`;
    this.say.detail(`${winner.origin} wins: last-write-wins compares the hybrid logical clock (HLC) stamped on each write,`);
    this.say.detail(`and ${why}: ${winner.origin} ${hlcText(winner.hlc)} vs ${loser.origin} ${hlcText(loser.hlc)}.`);
    this.say.detail(`Every branch picks the same winner on its own; each keeps the conflict in hubsync.conflicts.`);
  }

  /** Two tills sell the same product at once: the stock column is a counter, so both sales count. */
  private async stock(): Promise<void> {
    this.say.step('The same stock level sold at two branches at once');
    const north = this.b('store-north');
    const south = this.b('store-south');
    await this.b('warehouse').pool.query(`INSERT INTO product VALUES (1, 'umbrella', 50)`);
    this.say.say(`warehouse: INSERT INTO product VALUES (1, 'umbrella', 50)`);
    await this.waitFor('every branch has the umbrellas', async () => {
      const n = await Promise.all(this.live.map((b) => this.scalar(b.pool, 'SELECT count(*)::int AS n FROM product')));
      return { done: n.every((x) => x === 1), status: `${n.filter((x) => x === 1).length} of ${n.length} branches` };
    });
    const sales: [DemoBranch, number][] = [
      [north, 3],
      [south, 2],
    ];
    // Committed together, as in the conflict above: neither sale can have seen the other.
    const clients = await Promise.all(sales.map(([b]) => b.pool.connect()));
    try {
      await Promise.all(clients.map((c) => c.query('BEGIN')));
      for (const [i, [b, n]] of sales.entries()) {
        await clients[i]?.query('UPDATE product SET stock = stock - $1 WHERE id = 1', [n]);
        this.say.say(`${b.id}: UPDATE product SET stock = stock - ${n} WHERE id = 1`);
      }
      await Promise.all(clients.map((c) => c.query('COMMIT')));
    } finally {
      for (const c of clients) c.release();
    }
    const ms = await this.waitFor('every branch has 45 umbrellas', async () => {
      const stock = await Promise.all(this.live.map((b) => this.scalar(b.pool, 'SELECT stock AS n FROM product WHERE id = 1')));
      return { done: stock.every((x) => x === 45), status: this.live.map((b, i) => `${b.id} ${stock[i]}`).join(', ') };
    });
    this.say.ok('every branch has 45 umbrellas: 50 − 3 − 2, both sales counted', ms);
    this.say.detail('stock is declared additive: each branch sends how much it changed the stock, not the new value,');
    this.say.detail('so concurrent sales add up instead of one overwriting the other (whole-row last-write-wins would leave 47 or 48).');
  }

  private async deletion(): Promise<void> {
    this.say.step('A delete');
    await this.b('warehouse').pool.query('DELETE FROM customer WHERE id = 202');
    this.say.say('warehouse: DELETE FROM customer WHERE id = 202');
    const ms = await this.waitFor('customer 202 is gone at every branch', async () => {
      const left = await Promise.all(this.live.map((b) => this.scalar(b.pool, 'SELECT count(*)::int AS n FROM customer WHERE id = 202')));
      return { done: left.every((n) => n === 0), status: `still there at ${this.live.filter((_, i) => left[i] !== 0).map((b) => b.id).join(', ')}` };
    });
    this.say.ok('customer 202 is gone at every branch (a tombstone keeps a late update from bringing it back)', ms);
  }

  /** A column added through the hub while the branches sync (docs/sync-semantics.md "Schema changes"). */
  private async schemaChange(): Promise<void> {
    this.say.step('A column added while every branch syncs');
    const { ctx } = this.cluster.hub;
    const tenant = await ctx.store.getTenant(this.cluster.tenantId);
    if (!tenant) throw new Error(`tenant ${this.cluster.tenantId} is gone`);
    const sql = 'ALTER TABLE public.customer ADD COLUMN loyalty_points integer NOT NULL DEFAULT 0';
    const published = await publishSchemaChange(ctx.pool, ctx.fanout, tenant, { sql, name: null, description: 'loyalty points', allowUnknownTables: false, by: 'demo' });
    this.say.say(`hub-broker schema apply: ${sql} (schema version ${published.version}, in the log at offset ${published.offset})`);
    const at = (b: DemoBranch): Promise<number> => this.scalar(b.pool, 'SELECT schema_version AS n FROM hubsync.apply_state');
    const ms = await this.waitFor('every branch has the new column', async () => {
      const v = await Promise.all(this.live.map(at));
      return { done: v.every((x) => x >= published.version), status: `at version ${published.version}: ${this.live.filter((_, i) => (v[i] ?? 0) >= published.version).map((b) => b.id).join(', ') || 'none yet'}` };
    });
    this.say.ok(`every branch added the column in the same transaction as its capture triggers, between the same two rows of the log`, ms);
    await this.b('store-north').pool.query(`UPDATE customer SET loyalty_points = 120, updated_at = now() WHERE id = 101`);
    this.say.say('store-north: UPDATE customer SET loyalty_points = 120 WHERE id = 101');
    const arrived = await this.waitFor('the new column arrives at the warehouse', async () => {
      const n = await this.scalar(this.b('warehouse').pool, 'SELECT loyalty_points AS n FROM customer WHERE id = 101');
      return { done: n === 120, status: `warehouse has ${n}` };
    });
    this.say.ok('the warehouse has 120 loyalty points for customer 101', arrived);
  }

  private async offline(): Promise<void> {
    this.say.step('A branch goes offline and catches up');
    const north = this.b('store-north');
    const south = this.b('store-south');
    const warehouse = this.b('warehouse');
    await south.stopAgent();
    this.say.say(`store-south's agent stops (its database keeps working)`);
    await north.pool.query(
      `INSERT INTO customer (id, name, email, city) VALUES (103, 'Katherine Johnson', 'katherine@example.com', 'Hampton'),
                                                          (104, 'Margaret Hamilton', 'margaret@example.com', 'Cambridge')`,
    );
    this.say.say('store-north: INSERT INTO customer … 103 Katherine Johnson, 104 Margaret Hamilton');
    await warehouse.pool.query(`UPDATE customer SET city = 'Austin', updated_at = now() WHERE id = 301`);
    this.say.say(`warehouse: UPDATE customer SET city = 'Austin' WHERE id = 301`);
    await south.pool.query(`INSERT INTO customer (id, name, email, city) VALUES (203, 'Donald Knuth', 'don@example.com', 'Stanford')`);
    this.say.say('store-south, offline: INSERT INTO customer … 203 Donald Knuth');
    const ms = await this.converge([north, warehouse], 'store-north and warehouse agree');
    const pending = await this.scalar(south.pool, 'SELECT count(*)::int AS n FROM hubsync.change_log');
    this.say.ok(
      `store-north and warehouse agree on ${await this.customers(north)} customers; store-south has ${await this.customers(south)}, ` +
        `with ${pending} change waiting in its outbox`,
      ms,
    );
    await south.startAgent();
    this.say.say(`store-south's agent starts again`);
    const back = await this.converge(this.live, 'store-south has caught up');
    this.say.ok(`store-south caught up: all 3 branches have the same ${await this.customers(south)} customers`, back);
  }

  private async busyHour(): Promise<void> {
    const total = this.options.orders;
    this.say.step(`A busy hour: ${count(total)} orders`);
    const per = BRANCHES.map((_, i) => Math.floor(total / BRANCHES.length) + (i < total % BRANCHES.length ? 1 : 0));
    const started = Date.now();
    await Promise.all(
      BRANCHES.map(async (id, i) => {
        const n = per[i] ?? 0;
        const base = (i + 1) * 1_000_000;
        // Transactions of 100 orders, as a till would write them in bursts.
        for (let from = 1; from <= n; from += 100) {
          await this.b(id).pool.query(
            `INSERT INTO orders (id, branch, customer_id, amount)
             SELECT $1::bigint + g, $2, (ARRAY[101, 102, 103, 104, 201, 203, 301, 302])[1 + g % 8], ((g * 7919) % 20000) / 100.0
             FROM generate_series($3::int, $4::int) AS g`,
            [base, id, from, Math.min(n, from + 99)],
          );
        }
      }),
    );
    this.say.say(`${BRANCHES.map((id, i) => `${id} ${count(per[i] ?? 0)}`).join(', ')} orders, in transactions of 100 rows`);
    await this.waitFor(`every branch has all ${count(total)} orders`, async () => {
      const n = await Promise.all(this.live.map((b) => this.scalar(b.pool, 'SELECT count(*)::int AS n FROM orders')));
      return { done: n.every((x) => x === total), status: `orders: ${this.live.map((b, i) => `${b.id} ${count(n[i] ?? 0)}`).join(', ')} of ${count(total)}` };
    }, 250);
    await this.converge(this.live, 'the branches agree');
    this.say.ok(`all 3 branches have the same ${count(total)} orders`, Date.now() - started);
  }

  private async bootstrap(): Promise<void> {
    this.say.step('A new branch joins and bootstraps from a snapshot');
    const started = Date.now();
    const east = await this.cluster.addBranch(NEW_BRANCH);
    this.say.say(`${NEW_BRANCH}: new database with empty tables, hubsync installed, branch and API key created at the hub`);
    this.say.say(`its agent connects; the hub sees a new branch of a tenant with history and sends a snapshot`);
    const north = this.b('store-north');
    const expected = (await branchData(north.pool, TABLES)).counts.reduce((a, b) => a + b, 0);
    const printed = { step: -1 };
    let percent = 0;
    for (;;) {
      const gauge = await east.agent?.metrics.snapshotPercent.get();
      percent = Math.max(percent, gauge?.values[0]?.value ?? 0);
      const rows = (await Promise.all(TABLES.map((t) => this.scalar(east.pool, `SELECT count(*)::int AS n FROM ${t.name}`)))).reduce((a, b) => a + b, 0);
      const bootstrapped = (await east.pool.query<{ b: boolean }>('SELECT bootstrapped AS b FROM hubsync.apply_state')).rows[0]?.b === true;
      this.say.bar(bootstrapped ? 100 : percent, `${count(rows)} of ${count(expected)} rows`, printed);
      if (bootstrapped && rows >= expected) break;
      if (Date.now() >= this.options.deadline) {
        this.say.end();
        throw new DemoTimeout(`timed out waiting for ${NEW_BRANCH} to finish its snapshot (${percent}%, ${count(rows)} of ${count(expected)} rows)`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    this.say.end();
    const cursor = await this.scalar(east.pool, 'SELECT "cursor"::bigint AS n FROM hubsync.apply_state');
    this.say.ok(`${NEW_BRANCH} loaded ${count(expected)} rows from the snapshot and follows the log after offset ${count(cursor)}`, Date.now() - started);
    await east.pool.query(`INSERT INTO customer (id, name, email, city) VALUES (401, 'Tim Berners-Lee', 'tim@example.com', 'Geneva')`);
    this.say.say(`${NEW_BRANCH}: INSERT INTO customer … 401 Tim Berners-Lee`);
    const ms = await this.waitFor('customer 401 is at every branch', async () => {
      const n = await Promise.all(this.live.map((b) => this.scalar(b.pool, 'SELECT count(*)::int AS n FROM customer WHERE id = 401')));
      return { done: n.every((x) => x === 1), status: `missing at ${this.live.filter((_, i) => n[i] !== 1).map((b) => b.id).join(', ')}` };
    });
    this.say.ok(`customer 401 from ${NEW_BRANCH} reached every branch`, ms);
  }

  /** Waits for the branches to agree (until the deadline), then tells how it ended. */
  private async result(): Promise<Outcome> {
    let data: BranchData[] = [];
    try {
      await this.waitFor('every branch holds the same data', async () => {
        data = await Promise.all(this.live.map((b) => branchData(b.pool, TABLES)));
        return { done: converged(data), status: 'comparing checksums' };
      });
    } catch (err) {
      if (!(err instanceof DemoTimeout)) throw err;
    }
    return { branches: this.live.map((b) => b.id), data, converged: converged(data) };
  }
}

/** The result table: rows per synced table and the checksum, one line per branch. Pure. */
export function resultTable(o: Outcome): string[] {
  const head = ['branch', ...TABLES.map((t) => t.name.replace(/^public\./, '')), 'checksum (sha-256)'];
  const majority = mostCommon(o.data.map((d) => d.checksum));
  const rows = o.branches.map((id, i) => {
    const d = o.data[i];
    const mark = d && d.checksum !== majority ? '  ← differs' : '';
    return [id, ...TABLES.map((_, t) => count(d?.counts[t] ?? 0)), `${(d?.checksum ?? '').slice(0, 16)}${mark}`];
  });
  return table([head, ...rows], new Set(TABLES.map((_, i) => i + 1)));
}

function mostCommon(values: readonly string[]): string | undefined {
  const n = new Map<string, number>();
  for (const v of values) n.set(v, (n.get(v) ?? 0) + 1);
  return [...n].sort((a, b) => b[1] - a[1])[0]?.[0];
}

interface StoredVersion {
  readonly hlc: string;
  readonly origin: string;
}

interface ConflictRow {
  readonly winner: 'local' | 'incoming';
  readonly local_version: StoredVersion;
  readonly incoming_version: StoredVersion;
}

async function readConflict(pool: pg.Pool): Promise<ConflictRow | undefined> {
  const { rows } = await pool.query<ConflictRow>(
    `SELECT winner, local_version, incoming_version FROM hubsync.conflicts
      WHERE tbl = 'public.customer' AND pk = '{"id": "101"}'::jsonb ORDER BY id DESC LIMIT 1`,
  );
  return rows[0];
}

/** `12:04:05.123 +0` (UTC wall clock and logical counter of an HLC). */
function hlcText(hlc: string): string {
  const h = decodeHlc(hlc);
  return `${new Date(h.wall).toISOString().slice(11, 23)} UTC +${h.logical}`;
}
