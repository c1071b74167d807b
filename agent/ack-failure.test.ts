/**
 * The hub acknowledged a batch but deleting its rows from the outbox failed (a database hiccup):
 * the rows are sent again on the same connection, the hub answers the resend as a duplicate, and
 * the outbox drains. They used to stay excluded, unsent and undeleted, until the next reconnect.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestHub } from '../hub/testing/harness.js';
import type { HubApp } from '../hub/app.js';
import { useTestDatabase } from '../test/support/pg.js';
import type { AgentService } from './service.js';
import type { TestBranch } from './testing/branches.js';
import { openItemBranch, startItemAgent } from './testing/hub-agent.js';

const hubDb = useTestDatabase('ackfail_hub');
const branchDb = useTestDatabase('ackfail_branch');
let hub: HubApp;
let branch: TestBranch;
let agent: AgentService | undefined;

beforeAll(async () => {
  hub = await startTestHub(hubDb.url);
  let apiKey: string;
  ({ branch, apiKey } = await openItemBranch(hub, branchDb.url));
  // The first delete from the outbox fails (a sequence, so the failing transaction cannot undo the count).
  await branch.pool.query(`
    CREATE SEQUENCE public.deletes;
    CREATE FUNCTION public.fail_first_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF nextval('public.deletes') = 1 THEN RAISE EXCEPTION 'injected: outbox delete failed'; END IF;
      RETURN OLD;
    END $$;
    CREATE TRIGGER fail_first_delete BEFORE DELETE ON hubsync.change_log FOR EACH ROW EXECUTE FUNCTION public.fail_first_delete();`);
  agent = await startItemAgent(hub, branch, apiKey);
});

afterAll(async () => {
  await agent?.stop();
  await branch?.close();
  await hub?.stop();
});

it('rows whose acknowledged delete failed are sent again and leave the outbox, on the same connection', async () => {
  await branch.pool.query(`INSERT INTO item VALUES (1, 'one')`);
  const pending = async (): Promise<number> => Number((await branch.pool.query<{ n: string }>(`SELECT count(*) AS n FROM hubsync.change_log`)).rows[0]?.n);
  await expect.poll(async () => Number((await branch.pool.query<{ n: string }>(`SELECT last_value AS n FROM public.deletes`)).rows[0]?.n), { timeout: 15_000 }).toBeGreaterThanOrEqual(1);
  await expect.poll(pending, { timeout: 15_000 }).toBe(0);
  // Appended once at the hub: the resend was a duplicate.
  const { rows } = await hub.ctx.pool.query<{ n: string }>(`SELECT count(*) AS n FROM tenant_acme.log`);
  expect(Number(rows[0]?.n)).toBe(1);
  // On the connection it had: no reconnect was needed.
  const greeted = (await (agent as AgentService).metrics.connects.get()).values.filter((v) => v.labels.result === 'greeted');
  expect(greeted.reduce((n, v) => n + v.value, 0)).toBe(1);
});
