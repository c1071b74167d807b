/**
 * Dead letters and conflicts a person acts on, at real branches (the in-process relay of
 * agent/testing/branches.ts stands in for the hub): retry after fixing the cause, discard,
 * and override a conflict so that the losing version wins everywhere.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { triage, triageWords } from '../cli/commands/agent-triage.js';
import { createTestDatabase, type TestDatabase } from '../test/support/pg.js';
import { cursorOf, dump, LWW, openBranch, Relay, type TestBranch } from './testing/branches.js';
import { AgentMetrics } from './metrics.js';
import { discardDeadLetter, listConflicts, listDeadLetters, overrideConflict, retryDeadLetter } from './triage.js';

const DDL = `CREATE TABLE public.customer (id int PRIMARY KEY, email text UNIQUE, name text)`;
const TABLES = [{ name: 'public.customer' }];

/** One log for the whole file, as a hub's: cursors only move forward. */
const relay = new Relay();
let dbs: TestDatabase[] = [];
let a: TestBranch;
let b: TestBranch;

beforeAll(async () => {
  dbs = await Promise.all(['a', 'b'].map((l) => createTestDatabase(`triage_${l}`)));
  [a, b] = (await Promise.all(dbs.map((d, i) => openBranch(d.url, `b${i + 1}`, DDL, TABLES, { policy: LWW })))) as [TestBranch, TestBranch];
  // What the running agent keeps from the hub's hello, which retries from the command line read.
  for (const x of [a, b]) await x.engine.setPolicy(LWW);
}, 60_000);

afterAll(async () => {
  await Promise.all([a, b].map((x) => x?.close()));
  await Promise.all(dbs.map((d) => d.drop()));
});

async function sync(): Promise<void> {
  for (const x of [a, b]) await relay.collect(x);
  for (const x of [a, b]) await relay.deliver(x, await cursorOf(x));
}

describe('dead letters', () => {
  it('a change refused by a unique value applies on retry once the value is freed, and the dead letter goes', async () => {
    await b.pool.query(`INSERT INTO customer VALUES (2, 'ann@x', 'Ann at b')`);
    await a.pool.query(`INSERT INTO customer VALUES (1, 'ann@x', 'Ann at a')`);
    await relay.collect(a);
    await relay.deliver(b, await cursorOf(b));
    const [dead] = await listDeadLetters(b.pool);
    expect(dead?.reason).toContain('unique');
    // Waiting dead letters show on /metrics, with the age of the oldest.
    const metrics = new AgentMetrics({ tenant: 'acme', branch: b.id }, false);
    metrics.watchDeadLetters(b.pool);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^hub_broker_agent_dead_letters\{[^}]*\} 1$/m);
    expect(text).toMatch(/^hub_broker_agent_dead_letter_oldest_seconds\{[^}]*\} 0\.\d+|^hub_broker_agent_dead_letter_oldest_seconds\{[^}]*\} [1-9]/m);

    // Retried before the cause is fixed: it fails again, with the reason, under a new id.
    const again = await retryDeadLetter(b.pool, dead?.id as string);
    expect(again.result).toBe('failed');
    const still = await listDeadLetters(b.pool);
    expect(still.map((d) => d.id)).not.toContain(dead?.id);
    expect(still).toHaveLength(1);

    await b.pool.query(`UPDATE customer SET email = 'ann@b' WHERE id = 2`);
    const out: string[] = [];
    expect(await triage(b.pool, 'dead-letters', 'retry', still[0]?.id, false, (s) => out.push(s))).toBe(0);
    expect(out.join('\n')).toContain('applied and removed');
    expect(await listDeadLetters(b.pool)).toEqual([]);
    expect(await dump(b.pool, 'public.customer', ['id'])).toEqual(['(1,ann@x,"Ann at a")', '(2,ann@b,"Ann at b")']);
  });

  it('discards a dead letter, and refuses ids it does not have', async () => {
    await b.pool.query(`UPDATE customer SET email = 'taken@x' WHERE id = 2`);
    await a.pool.query(`INSERT INTO customer VALUES (3, 'taken@x', 'Bob')`);
    await relay.collect(a);
    await relay.deliver(b, await cursorOf(b));
    const [dead] = await listDeadLetters(b.pool);
    expect(dead).toBeDefined();
    expect((await discardDeadLetter(b.pool, dead?.id as string)).table).toBe('public.customer');
    expect(await listDeadLetters(b.pool)).toEqual([]);
    await expect(discardDeadLetter(b.pool, dead?.id as string)).rejects.toThrow(`no dead letter ${dead?.id} here`);
    await expect(discardDeadLetter(b.pool, '1; DROP TABLE x')).rejects.toThrow('dead letter id must be a number');
  });

  it('takes its words in order: action, then id', () => {
    expect(triageWords('dead-letters', ['retry', '12', '--database-url', 'x'])).toEqual({ action: 'retry', id: '12', flags: ['--database-url', 'x'] });
    expect(triageWords('dead-letters', ['list', '--json'])).toEqual({ action: 'list', id: undefined, flags: ['--json'] });
    expect(triageWords('dead-letters', ['retry'])).toContain('which one?');
    expect(triageWords('conflicts', ['retry', '1'])).toContain('say one of list, show, override');
  });
});

describe('conflicts', () => {
  it('override writes the losing version as a new write, and every branch ends with it', async () => {
    for (const x of [a, b]) await x.pool.query(`DELETE FROM customer`);
    await sync();
    await a.pool.query(`INSERT INTO customer VALUES (10, 'c@x', 'first')`);
    await sync();
    await a.pool.query(`UPDATE customer SET name = 'edited at a' WHERE id = 10`);
    await new Promise((r) => setTimeout(r, 5));
    await b.pool.query(`UPDATE customer SET name = 'edited at b' WHERE id = 10`);
    await sync();
    expect(await dump(a.pool, 'public.customer', ['id'])).toEqual(['(10,c@x,"edited at b")']);
    const [c] = await listConflicts(a.pool);
    expect(c?.winner).toBe('incoming');

    const r = await overrideConflict(a.pool, c?.id as string);
    expect(r.wrote).toBe('update');
    await sync();
    for (const x of [a, b]) expect(await dump(x.pool, 'public.customer', ['id'])).toEqual(['(10,c@x,"edited at a")']);
    await expect(overrideConflict(a.pool, c?.id as string)).rejects.toThrow('overridden already');
  });
});
