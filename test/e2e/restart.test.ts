/**
 * Crashes through a real hub process: an agent (a `hub-broker agent` child process) killed with
 * SIGKILL while it sends a steady stream of writes, or while it applies a large delivery, and the
 * hub (a `hub-broker hub` child process) killed mid-stream and restarted on the same port and
 * database. Each time, after convergence every write is everywhere, and nothing was applied twice:
 * an audit trigger at every branch records each row the apply engine writes, and every write below
 * makes a row image of its own (counters count up, items carry a version number), so a change
 * applied twice shows as the same image twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyAuditDdl, converged, E2E, type AgentProcess, type Branch, type HubProcess } from './support.js';

const DDL = `
  CREATE TABLE public.counter (id int PRIMARY KEY, n int NOT NULL);
  CREATE TABLE public.item (id int PRIMARY KEY, origin text NOT NULL, v int NOT NULL);
  ${applyAuditDdl('public.counter')}
  ${applyAuditDdl('public.item')}
`;
const TABLES = [{ name: 'public.counter' }, { name: 'public.item' }];
const HUB_ENV = { HUB_DATABASE_POOL_SIZE: '5' };

const e2e = new E2E('restart');
let hub: HubProcess;
let a: Branch;
let b: Branch;
let c: Branch;
let all: Branch[];
/** The running agent child processes of a and b. */
const procs = new Map<Branch, AgentProcess>();

const tick = (ms = 5): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls quickly (crash points are short windows) until `ok`; the test fails after `timeout`. */
async function until(what: string, ok: () => Promise<boolean>, timeout = 30_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await ok())) {
    if (Date.now() > deadline) throw await failure(`timed out waiting until ${what}`);
    await tick(10);
  }
}

/** Where each branch is, for a failure message. */
async function state(): Promise<string> {
  const per = await Promise.all(
    all.map(async (x) => {
      const counters = (await x.query<{ id: number; n: number }>(`SELECT id, n FROM counter ORDER BY id`)).map((r) => `${r.id}=${r.n}`).join(',');
      const [m] = await x.query<{ cursor: string; items: string; versions: string }>(
        `SELECT "cursor"::text AS cursor, (SELECT count(*) FROM item) AS items, (SELECT count(*) FROM hubsync.row_version) AS versions FROM hubsync.apply_state`,
      );
      return `${x.id}: counters ${counters}, ${m?.items} items, ${m?.versions} versions, ${await x.pending()} pending, cursor ${m?.cursor}`;
    }),
  );
  const hubSide = await hub.store.pool
    .query<{ b: string; pos: string }>(`SELECT branch_id AS b, pos::text AS pos FROM tenant_acme.cursors ORDER BY 1`)
    .then((r) => r.rows.map((c) => `${c.b}@${c.pos}`).join(' '))
    .catch((err: unknown) => (err as Error).message);
  const log = await hub.store.pool
    .query<{ head: string; pruned: string; compacted: string }>(
      `SELECT (SELECT max(pos) FROM tenant_acme.log)::text AS head, pruned_upto::text AS pruned, compacted_upto::text AS compacted FROM tenant_acme.meta`,
    )
    .then(
      (r) => `head ${r.rows[0]?.head}, pruned up to ${r.rows[0]?.pruned}, compacted up to ${r.rows[0]?.compacted}`,
      () => 'head ?',
    );
  return `${per.join('; ')}; hub cursors ${hubSide}, ${log}`;
}

/** A failure naming where everyone is, with the last output of the agents and the hub. */
async function failure(message: string): Promise<Error> {
  const outputs = [...procs].map(([x, p]) => `--- agent ${x.id}:\n${p.output().slice(-3000)}`).join('\n');
  return new Error(`${message}\n${await state()}\n${outputs}\n--- hub:\n${hub.output().slice(-3000)}`);
}

/** `converged`, with where everyone is when it does not happen. */
async function settle(timeout: number): Promise<string[][]> {
  try {
    return await converged(all, DUMP, timeout);
  } catch (err) {
    throw await failure((err as Error).message);
  }
}

/** Branch connections open at the hub, from its /metrics. */
async function connections(): Promise<number> {
  const text = await fetch(`${hub.url}/metrics`).then(
    (r) => r.text(),
    () => '',
  );
  const m = /^hub_broker_connections_active\{[^}]*tenant="acme"[^}]*\} (\d+)/m.exec(text);
  return Number(m?.[1] ?? 0);
}

/** Writers still running when a test fails are stopped before the databases go. */
const writers = new Set<{ stop: () => Promise<number> }>();

function spawnAgent(x: Branch, extra: Record<string, string> = {}): AgentProcess {
  // Warnings are kept with the process output, to show when a test fails.
  const p = x.spawn({ ...(process.env.E2E_LOG_LEVEL ? {} : { LOG_LEVEL: 'warn' }), ...extra });
  procs.set(x, p);
  return p;
}

async function killAgent(x: Branch): Promise<void> {
  await procs.get(x)?.kill();
  procs.delete(x);
}

async function count(x: Branch, sql: string): Promise<number> {
  return Number((await x.query<{ n: string }>(sql))[0]?.n ?? 0);
}

/** The counter value `id` holds at `x`. */
async function counterAt(x: Branch, id: number): Promise<number> {
  return (await x.query<{ n: number }>(`SELECT n FROM counter WHERE id = $1`, [id]))[0]?.n ?? -1;
}

/**
 * Writes at `x` until stopped, one transaction after another: counter `id` counts up, item
 * `base + i` is inserted with v = 0, and the item written five transactions earlier goes to v = 1.
 */
function writer(x: Branch, id: number, base: number): { written: () => number; stop: () => Promise<number> } {
  let running = true;
  let i = 0;
  const done = (async () => {
    while (running) {
      const k = i + 1;
      await x.transaction(
        `UPDATE counter SET n = n + 1 WHERE id = ${id}`,
        `INSERT INTO item VALUES (${base + k}, '${x.id}', 0)`,
        k > 5 ? `UPDATE item SET v = 1 WHERE id = ${base + k - 5}` : 'SELECT 1',
      );
      i = k;
      await tick(20);
    }
  })();
  const w = {
    written: () => i,
    stop: async () => {
      running = false;
      writers.delete(w);
      await done;
      return i;
    },
  };
  writers.add(w);
  return w;
}

/** What `writer` leaves behind after `n` transactions. */
function written(origin: string, base: number, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `(${base + i + 1},${origin},${i + 1 <= n - 5 ? 1 : 0})`);
}

/** Row images the apply engine wrote more than once at `x` (each write below makes a new image). */
function appliedTwice(x: Branch): Promise<unknown[]> {
  return x.query(`SELECT tbl, op, coalesce(new_row, old_row) AS image, count(*)::int AS times FROM apply_audit GROUP BY 1, 2, 3 HAVING count(*) > 1`);
}

/** The values above `from` that counter `id` took at `x` through applied changes, in the order they were applied. */
async function counterHistory(x: Branch, id: number, from = -1): Promise<string[]> {
  const rows = await x.query<{ op: string; n: number }>(
    `SELECT op, (new_row->>'n')::int AS n FROM apply_audit WHERE tbl = 'counter' AND new_row->>'id' = $1 AND (new_row->>'n')::int > $2 ORDER BY apply_audit.n`,
    [String(id), from],
  );
  return rows.map((r) => `${r.op}:${r.n}`);
}

/**
 * Counter `id`'s applied values are in source order and none twice (strictly increasing), end at
 * `n`, and start with the insert when `from` is -1. Changes to one row applied in one
 * transaction are written once, as their final state, so not every value in between shows
 * (docs/sync-semantics.md "Which order holds").
 */
function expectCountedTo(history: readonly string[], n: number, from = -1): void {
  const values = history.map((h) => Number(h.split(':')[1]));
  expect(values.every((v, i) => i === 0 || v > (values[i - 1] as number)), history.join(' ')).toBe(true);
  expect(values[values.length - 1], history.join(' ')).toBe(n);
  const ops = history.map((h) => h.split(':')[0]);
  expect(ops, history.join(' ')).toEqual(from < 0 ? ['INSERT', ...ops.slice(1).map(() => 'UPDATE')] : ops.map(() => 'UPDATE'));
}

const DUMP = [{ name: 'public.counter' }, { name: 'public.item' }];

beforeAll(async () => {
  // A small pool: the machine's PostgreSQL serves other test files at the same time.
  hub = await e2e.startHubProcess(undefined, HUB_ENV);
  all = await Promise.all(['a', 'b', 'c'].map((id) => e2e.branch(hub, 'acme', id, DDL, TABLES)));
  [a, b, c] = all as [Branch, Branch, Branch];
  spawnAgent(a);
  spawnAgent(b);
  // c runs in this process and retries quickly when the hub is away.
  await c.start({}, { random: () => 0.05 });
  // Everyone is connected before the first write, so every change reaches every branch through
  // the log (a branch connecting to a tenant with history would bootstrap from a snapshot).
  await until('all three agents are connected', async () => (await connections()) === 3);
  await a.query(`INSERT INTO counter VALUES (1, 0)`);
  await b.query(`INSERT INTO counter VALUES (2, 0)`);
}, 120_000);

afterAll(async () => {
  for (const w of [...writers]) await w.stop().catch(() => undefined);
  await e2e.close();
}, 60_000);

describe('restarts', { timeout: 90_000 }, () => {
  it('an agent killed with SIGKILL while it sends a steady stream of writes resends what was not acknowledged: nothing lost, nothing applied twice', async () => {
    // Small batches: many are in flight when the kill comes.
    await killAgent(a);
    spawnAgent(a, { AGENT_BATCH_SIZE: '2', AGENT_POLL_MS: '100' });
    const w = writer(a, 1, 10_000);
    for (const seen of [10, 25]) {
      await until(`c holds ${seen} of a's increments`, async () => (await counterAt(c, 1)) >= seen);
      // Mid-stream: some of a's writes are at the hub, some are still waiting in a's outbox.
      await until('a has unsent writes', async () => (await a.pending()) > 0);
      await killAgent(a);
      const at = w.written();
      await until('a wrote more while its agent was down', async () => w.written() >= at + 5);
      spawnAgent(a, { AGENT_BATCH_SIZE: '2', AGENT_POLL_MS: '100' });
    }
    await until("c holds 40 of a's increments", async () => (await counterAt(c, 1)) >= 40);
    const n = await w.stop();

    const [counters, items] = await settle(30_000);
    expect(counters).toEqual([`(1,${n})`, '(2,0)']);
    expect(items).toEqual(written('a', 10_000, n));
    for (const x of [b, c]) {
      expectCountedTo(await counterHistory(x, 1), n);
      expect(await appliedTwice(x)).toEqual([]);
      // n inserts and n − 5 updates; an insert and the update of the same item that reach an apply
      // in one chunk are written once (agent/apply/plan.ts), so a backlog after a restart may show fewer.
      const images = await count(x, `SELECT count(*) AS n FROM apply_audit WHERE tbl = 'item' AND new_row->>'origin' = 'a'`);
      expect(images).toBeLessThanOrEqual(n + (n - 5));
      expect(images).toBeGreaterThanOrEqual(n);
    }
    expect(await appliedTwice(a)).toEqual([]);
    for (const x of all) expect(await x.deadLetters()).toEqual([]);
  });

  it('an agent killed with SIGKILL while it applies a large incoming delivery, twice, resumes from its cursor: nothing lost, nothing applied twice', async () => {
    await killAgent(b);
    // While b is away, a writes a large backlog: 12,000 inserts, then 6,000 updates and 1,500 deletes.
    const INSERTS = 12_000;
    for (let t = 0; t < 24; t++) {
      await a.query(`INSERT INTO item SELECT g, 'bulk', 0 FROM generate_series(${100_000 + t * 500 + 1}, ${100_000 + (t + 1) * 500}) g`);
    }
    for (let t = 0; t < 12; t++) {
      await a.query(`UPDATE item SET v = 1 WHERE id BETWEEN ${100_000 + t * 1000 + 1} AND ${100_000 + t * 1000 + 500}`);
    }
    await a.query(`DELETE FROM item WHERE id > ${100_000 + INSERTS - 1500}`);
    const total = INSERTS + 6000 + 1500;
    const bulkAt = (x: Branch): Promise<number> => count(x, `SELECT count(*) AS n FROM apply_audit WHERE coalesce(new_row, old_row)->>'origin' = 'bulk'`);
    await expect.poll(() => bulkAt(c), { timeout: 30_000 }).toBe(total);
    expect(await bulkAt(b)).toBe(0);

    // b comes back and is killed twice while it works through the backlog.
    for (const share of [0, 0.4]) {
      spawnAgent(b);
      await until(`b applied more than ${share * 100}% of the backlog`, async () => (await bulkAt(b)) > share * total);
      await killAgent(b);
      // The kill came mid-backlog (otherwise this test would not test anything).
      expect(await bulkAt(b)).toBeLessThan(total);
    }
    spawnAgent(b);
    const [, items] = await settle(30_000);
    const bulk = items?.filter((r) => r.includes(',bulk,')) ?? [];
    expect(bulk).toHaveLength(INSERTS - 1500);
    expect(bulk.filter((r) => r.endsWith(',1)'))).toHaveLength(6000 - 500);
    expect(await bulkAt(b)).toBe(total);
    const ops = await b.query<{ op: string; n: number }>(
      `SELECT op, count(*)::int AS n FROM apply_audit WHERE coalesce(new_row, old_row)->>'origin' = 'bulk' GROUP BY op ORDER BY op`,
    );
    expect(ops).toEqual([
      { op: 'DELETE', n: 1500 },
      { op: 'INSERT', n: INSERTS },
      { op: 'UPDATE', n: 6000 },
    ]);
    for (const x of all) {
      expect(await appliedTwice(x)).toEqual([]);
      expect(await x.deadLetters()).toEqual([]);
    }
  });

  it('the hub killed with SIGKILL mid-stream and restarted on the same port and database: agents reconnect, nothing lost, nothing applied twice', async () => {
    const wa = writer(a, 1, 20_000);
    const wb = writer(b, 2, 30_000);
    const fromA = await counterAt(a, 1);
    await until('c receives from both writers', async () => (await counterAt(c, 1)) >= fromA + 10 && (await counterAt(c, 2)) >= 10);
    await hub.kill();
    // The branches go on writing while the hub is down; what they send now waits in their outboxes.
    const at = wa.written() + wb.written();
    await until('both branches wrote more while the hub was down', async () => wa.written() + wb.written() >= at + 20);
    const port = hub.port;
    hub = await e2e.startHubProcess(port, HUB_ENV);
    await until('the agents reconnected', async () => (await connections()) === 3);
    // Everything written up to now reaches c, and the writers go on a little after that.
    const [ha, hb] = [await counterAt(a, 1), await counterAt(b, 2)];
    await until('c receives what was written while the hub was down', async () => (await counterAt(c, 1)) >= ha && (await counterAt(c, 2)) >= hb);
    const [na, nb] = [await wa.stop(), await wb.stop()];

    const [counters, items] = await settle(45_000);
    const total = fromA + na;
    expect(counters).toEqual([`(1,${total})`, `(2,${nb})`]);
    expect(items?.filter((r) => /^\(2\d{4},/.test(r))).toEqual(written('a', 20_000, na));
    expect(items?.filter((r) => /^\(3\d{4},/.test(r))).toEqual(written('b', 30_000, nb));
    for (const x of [b, c]) expectCountedTo(await counterHistory(x, 1, fromA), total, fromA);
    for (const x of [a, c]) expectCountedTo(await counterHistory(x, 2), nb);
    for (const x of all) {
      expect(await appliedTwice(x)).toEqual([]);
      expect(await x.deadLetters()).toEqual([]);
    }
  });
});
