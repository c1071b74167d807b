import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../test/support/pg.js';
import type { HubApp } from './app.js';
import { UNAUTHORIZED_BODY } from './auth/token.js';
import { CLOSE } from './errors.js';
import { requestToken, seedBranch, startTestHub, TEST_JWT_SECRET, TestAgent, tokenFor, wsUrl } from './testing/harness.js';

const T = 'acme';

async function sign(payload: Record<string, unknown>, options: { kid?: string; secret?: Uint8Array; exp?: number } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'HS256', kid: options.kid ?? 'k1' })
    .setIssuer('hub-broker')
    .setIssuedAt(now)
    .setExpirationTime(options.exp ?? now + 600)
    .sign(options.secret ?? Buffer.from(TEST_JWT_SECRET, 'base64url'));
}

function upgradeStatus(app: HubApp, token: string | undefined, query = ''): Promise<number> {
  return TestAgent.connect(wsUrl(app) + query, token).then(
    (a) => {
      a.terminate();
      return 101;
    },
    (err: { status?: number }) => err.status ?? 0,
  );
}

describe('authentication', () => {
  const db = useTestDatabase('auth');
  let app: HubApp;
  let key: string;

  beforeAll(async () => {
    app = await startTestHub(db.url);
    key = await seedBranch(app.ctx.store, T, 'store-1');
    await seedBranch(app.ctx.store, T, 'store-2');
  });
  afterAll(() => app.stop());

  it('issues a token for a good key, and the socket opens with hello for that branch', async () => {
    const r = await requestToken(app.url, { tenant_id: T, branch_id: 'store-1', api_key: key });
    expect(r.status).toBe(200);
    expect(Date.parse(r.body.expires_at as string)).toBeGreaterThan(Date.now());
    const agent = await TestAgent.open(wsUrl(app), r.body.token as string);
    expect(agent.hello).toMatchObject({ tenant_id: T, branch_id: 'store-1', protocol: 1, bootstrap: false, cursor: 0 });
    await agent.close();
  });

  it('answers a wrong key, an unknown branch and an unknown tenant with the same 401 body, and audits each', async () => {
    const attempts = [
      { tenant_id: T, branch_id: 'store-1', api_key: 'wrong-key' },
      { tenant_id: T, branch_id: 'nobody', api_key: key },
      { tenant_id: 'other', branch_id: 'store-1', api_key: key },
    ];
    for (const body of attempts) {
      const r = await requestToken(app.url, body);
      expect(r.status).toBe(401);
      expect(r.body).toEqual(UNAUTHORIZED_BODY);
    }
    const audit = await app.ctx.store.listAudit({ event: 'auth.failed' });
    expect(audit.map((a) => a.detail?.reason).sort()).toEqual(['unknown_branch', 'unknown_branch', 'wrong_key']);
  });

  it('refuses a malformed request with 400', async () => {
    const r = await requestToken(app.url, { tenant_id: 'Not A Label', branch_id: 'x', api_key: 'k' });
    expect(r.status).toBe(400);
  });

  it('refuses a suspended tenant with the same 401', async () => {
    const k = await seedBranch(app.ctx.store, 'paused', 'b1');
    await app.ctx.store.suspendTenant('paused');
    const r = await requestToken(app.url, { tenant_id: 'paused', branch_id: 'b1', api_key: k });
    expect(r.status).toBe(401);
    expect(r.body).toEqual(UNAUTHORIZED_BODY);
  });

  it('accepts the previous key during the rotation grace period and refuses it after', async () => {
    const old = await seedBranch(app.ctx.store, T, 'rotating');
    const { apiKey: fresh } = await app.ctx.store.rotateKey(T, 'rotating', 3600);
    expect((await requestToken(app.url, { tenant_id: T, branch_id: 'rotating', api_key: old })).status).toBe(200);
    expect((await requestToken(app.url, { tenant_id: T, branch_id: 'rotating', api_key: fresh })).status).toBe(200);
    // The grace period ends.
    await app.ctx.pool.query(`UPDATE hub.branches SET prev_key_expires_at = now() - interval '1 second' WHERE id = 'rotating'`);
    expect((await requestToken(app.url, { tenant_id: T, branch_id: 'rotating', api_key: old })).status).toBe(401);
    expect((await requestToken(app.url, { tenant_id: T, branch_id: 'rotating', api_key: fresh })).status).toBe(200);
  });

  it('refuses the upgrade without a token, with an expired one, one signed with another key, an unknown kid or alg none', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { tid: T, sub: 'store-1' };
    const expired = await sign(claims, { exp: now - 10 });
    const otherKey = await sign(claims, { secret: new Uint8Array(32).fill(9) });
    const unknownKid = await sign(claims, { kid: 'nope' });
    const header = Buffer.from(JSON.stringify({ alg: 'none', kid: 'k1' })).toString('base64url');
    const body = Buffer.from(JSON.stringify({ ...claims, iss: 'hub-broker', exp: now + 600 })).toString('base64url');
    const algNone = `${header}.${body}.`;
    expect(await upgradeStatus(app, undefined)).toBe(401);
    expect(await upgradeStatus(app, 'garbage')).toBe(401);
    for (const t of [expired, otherKey, unknownKid, algNone]) expect(await upgradeStatus(app, t)).toBe(401);
    // A correctly signed token is accepted.
    const good = await sign(claims);
    expect(await upgradeStatus(app, good)).toBe(101);
  });

  it('takes the token from the query string only when HUB_WS_QUERY_TOKEN allows it (query strings reach access logs)', async () => {
    const good = await sign({ tid: T, sub: 'store-1' });
    const query = `?access_token=${encodeURIComponent(good)}`;
    const missing = async () => (await app.ctx.metrics.authFailures.get()).values.find((v) => v.labels.reason === 'token_missing')?.value ?? 0;
    const before = await missing();
    expect(await upgradeStatus(app, undefined, query)).toBe(401);
    // Also with an empty Authorization header.
    expect(await upgradeStatus(app, '', query)).toBe(401);
    expect(await missing()).toBe(before + 2);
    const allowing = await startTestHub(db.url, { wsQueryToken: true });
    try {
      expect(await upgradeStatus(allowing, undefined, query)).toBe(101);
      // The header still wins when both are there.
      expect(await upgradeStatus(allowing, 'garbage', query)).toBe(401);
    } finally {
      await allowing.stop();
    }
  });

  it('accepts tokens signed by the second configured key (rotation of signing keys)', async () => {
    const t = await sign({ tid: T, sub: 'store-2' }, { kid: 'k0', secret: new Uint8Array(Buffer.alloc(32, 3)) });
    expect(await upgradeStatus(app, t)).toBe(101);
  });

  it('refuses a token of a suspended branch at upgrade with 403', async () => {
    const k = await seedBranch(app.ctx.store, T, 'to-suspend');
    const token = await tokenFor(app.url, T, 'to-suspend', k);
    await app.ctx.store.suspendBranch(T, 'to-suspend');
    await expect.poll(() => upgradeStatus(app, token)).toBe(403);
  });

  it('closes a socket whose token expires with 4001, and keeps one refreshed over auth.refresh', async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const expiring = await TestAgent.open(wsUrl(app), await sign({ tid: T, sub: 'store-2' }, { exp }));
    const refreshed = await TestAgent.open(wsUrl(app), await sign({ tid: T, sub: 'store-1' }, { exp }));
    refreshed.send({ type: 'auth.refresh', id: 'r1', token: await sign({ tid: T, sub: 'store-1' }, { exp: exp + 600 }) });
    const ok = await refreshed.next('auth.refreshed');
    expect(Date.parse(ok.expires_at)).toBe((exp + 600) * 1000);
    refreshed.send({ type: 'auth.refresh', id: 'r2', token: await sign({ tid: T, sub: 'store-2' }) });
    expect(await refreshed.next('error', (e) => e.ref === 'r2')).toMatchObject({ code: 'token_invalid' });
    // Both tokens expired together: the unrefreshed socket is closed, the refreshed one still answers.
    expect((await expiring.closed).code).toBe(CLOSE.tokenExpired);
    refreshed.send({ type: 'auth.refresh', id: 'r3', token: 'bad' });
    expect(await refreshed.next('error', (e) => e.ref === 'r3')).toMatchObject({ code: 'token_invalid' });
    expect(refreshed.closedWith).toBeUndefined();
    await refreshed.close();
  });
});

describe('authentication rate limit', () => {
  const db = useTestDatabase('authrate');
  let app: HubApp;

  beforeAll(async () => {
    app = await startTestHub(db.url, { authRate: { perSecond: 0.01, burst: 3 } });
  });
  afterAll(() => app.stop());

  it('answers 429 once a source address used up its attempts', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await requestToken(app.url, { tenant_id: T, branch_id: 'x', api_key: 'k' })).status);
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    expect(metrics).toMatch(/hub_broker_rate_limited_total\{scope="auth"[^}]*\} 2/);
  });
});
