/**
 * A branch's credentials in the wrong hands: a hand-written client logs in as branch c and sends
 * changes that name tables nobody configured, SQL in identifiers, agent-internal tables. The hub
 * relays them (it does not know the branches' schemas); every receiving agent refuses them,
 * executes nothing of them, records and reports them, and goes on syncing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeHlc, type Change } from '../../protocol/index.js';
import { TestAgent, tokenFor, wsUrl } from '../../hub/testing/harness.js';
import { converged, E2E, type Branch, type Hub } from './support.js';

const DDL = `
  CREATE TABLE public.customer (id int PRIMARY KEY, name text NOT NULL, email text);
  CREATE TABLE public.secret (id int PRIMARY KEY, payload text);
  CREATE TABLE public.canary (id int PRIMARY KEY);
  INSERT INTO public.secret VALUES (1, 'local only');
  INSERT INTO public.canary VALUES (1);
`;
const TABLES = [{ name: 'public.customer' }];

const e2e = new E2E('security');
let hub: Hub;
let a: Branch;
let b: Branch;
let c: Branch;

beforeAll(async () => {
  hub = await e2e.startHub();
  const all = await Promise.all(['a', 'b', 'c'].map((id) => e2e.branch(hub, 'acme', id, DDL, TABLES)));
  [a, b, c] = all as [Branch, Branch, Branch];
  for (const x of all) await x.start();
}, 120_000);

afterAll(() => e2e.close(), 60_000);

let seq = 1_000_000_000_000;

/** A well-formed change from c, far above any sequence number c's real agent will use. */
function forged(table: string, op: Change['op'], pk: Change['pk'], row: Change['row']): Change {
  seq++;
  return {
    table,
    op,
    pk,
    row,
    hlc: encodeHlc({ wall: Date.now(), logical: 0 }),
    vv: { c: seq },
    origin: 'c',
    seq,
    tx: String(seq),
    tx_end: true,
  };
}

describe('changes that name anything not configured', { timeout: 90_000 }, () => {
  it('are refused by every receiving branch, execute nothing, are reported to the sender, and the stream goes on', async () => {
    await a.query(`INSERT INTO customer VALUES (1, 'before', NULL)`);
    await converged([a, b, c], [{ name: 'public.customer' }]);

    // c's agent is down; someone holding c's API key speaks the protocol by hand.
    await c.stop();
    const mallory = await TestAgent.open(wsUrl(hub.app as NonNullable<Hub['app']>), await tokenFor(hub.url, 'acme', 'c', c.apiKey), { bootstrap: false });
    const injection = `'); DROP TABLE public.canary; --`;
    const changes = [
      forged('public.secret', 'update', { id: '1' }, { id: '1', payload: 'overwritten' }),
      forged('public.canary', 'delete', { id: '1' }, null),
      forged(`public.customer; DROP TABLE public.canary; --`, 'insert', { id: '2' }, { id: '2', name: 'x' }),
      forged('public.customer', 'insert', { id: '3' }, { id: '3', name: 'x', [`name" = 'pwned', "email`]: 'x' }),
      forged('public.customer', 'update', { [`id" = "id" OR TRUE; --`]: '1' }, { id: '1', name: 'pwned' }),
      forged('public.customer', 'insert', { id: '4', name: 'not the key' }, { id: '4', name: 'x' }),
      forged('pg_catalog.pg_authid', 'delete', { oid: '10' }, null),
      // A value is only ever a value: this one is written as the text it is.
      forged('public.customer', 'insert', { id: '5' }, { id: '5', name: injection, email: null }),
    ];
    // Hub-Broker's own tables are refused by the hub itself, and nothing of the batch is stored.
    const own = mallory.id();
    mallory.send({ type: 'sync.batch', id: own, batch_id: 'forged-0', changes: [forged('hubsync.meta', 'update', { singleton: 'true' }, { singleton: 'true', branch_id: 'evil', cursor: '0' })] });
    const refused = await mallory.next('error', (x) => x.ref === own);
    expect(refused).toMatchObject({ code: 'forbidden_table', message: expect.stringContaining('"hubsync.meta" is Hub-Broker\'s own') });
    mallory.send({ type: 'sync.batch', id: mallory.id(), batch_id: 'forged-1', changes });
    const ack = await mallory.next('sync.ack', (x) => x.batch_id === 'forged-1');
    expect(ack.offsets).toHaveLength(changes.length);

    for (const x of [a, b]) {
      await expect.poll(async () => (await x.deadLetters()).length, { timeout: 20_000 }).toBe(changes.length - 1);
      const reasons = (await x.deadLetters()).map((d) => d.reason);
      expect(reasons).toEqual([
        'table "public.secret" is not synced here',
        'table "public.canary" is not synced here',
        'table "public.customer; DROP TABLE public.canary; --" is not synced here',
        `column "name\\" = 'pwned', \\"email" is not synced in public.customer`,
        `key column "id\\" = \\"id\\" OR TRUE; --" is not the primary key of public.customer`,
        'key column "name" is not the primary key of public.customer',
        'table "pg_catalog.pg_authid" is not synced here',
      ]);
      // Nothing of them ran.
      expect(await x.query(`SELECT * FROM secret`)).toEqual([{ id: 1, payload: 'local only' }]);
      expect(await x.query(`SELECT * FROM canary`)).toEqual([{ id: 1 }]);
      expect(await x.query(`SELECT tenant_id, branch_id FROM hubsync.meta`)).toEqual([{ tenant_id: 'acme', branch_id: x.id }]);
      expect(await x.dump('public.customer')).toEqual(['(1,before,)', `(5,"${injection}",)`]);
    }
    // Each receiving branch reports each refusal; the hub passes them to the branch that sent them.
    await expect
      .poll(() => mallory.received('conflict.notify').filter((n) => n.conflict.kind === 'dead-letter').length, { timeout: 20_000 })
      .toBe(2 * (changes.length - 1));
    await mallory.close();

    // The stream goes on: new writes flow, and c's real agent comes back and catches up.
    await b.query(`INSERT INTO customer VALUES (6, 'after', NULL)`);
    await c.start();
    const [rows] = await converged([a, b], [{ name: 'public.customer' }]);
    expect(rows).toEqual(['(1,before,)', `(5,"${injection}",)`, '(6,after,)']);
    await expect.poll(() => c.dump('public.customer'), { timeout: 20_000 }).toEqual(['(1,before,)', '(6,after,)']);
  });
});
