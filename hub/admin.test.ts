import { request } from 'node:http';
import { Writable } from 'node:stream';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../test/support/pg.js';
import { testRedisUrl, useRedisPrefix } from '../test/support/redis.js';
import { startHub, type HubApp } from './app.js';
import { CLOSE } from './errors.js';
import { REDACT_PATHS } from './logger.js';
import { requestToken, startTestHub, TestAgent, testConfig, tokenFor, wsUrl } from './testing/harness.js';

const ADMIN = 'admin-token-for-tests-9f2c1d7e5b';

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  // Bodies are whatever the API answers; tests look into them.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly body: any;
}

/** One admin API call as a client would make it. `raw` sends a body as it is. */
async function call(
  baseUrl: string,
  method: string,
  path: string,
  body?: unknown,
  options: { raw?: string; headers?: Record<string, string>; token?: string | null } = {},
): Promise<Answer> {
  const token = options.token === undefined ? ADMIN : options.token;
  const sendsBody = body !== undefined || options.raw !== undefined;
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
      ...(sendsBody ? { 'content-type': 'application/json' } : {}),
      ...options.headers,
    },
    ...(sendsBody ? { body: options.raw ?? JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === '' ? undefined : JSON.parse(text) };
}

describe('admin API', () => {
  const db = useTestDatabase('admin');
  let app: HubApp;
  const lines: string[] = [];
  /** Every API key the tests were given, to check none reaches the log. */
  const secrets: string[] = [ADMIN];
  const api = (method: string, path: string, body?: unknown, options?: Parameters<typeof call>[4]) => call(app.url, method, path, body, options);

  const createBranch = async (tenant: string, branch: string, body: Record<string, unknown> = {}): Promise<string> => {
    const r = await api('POST', `/admin/tenants/${tenant}/branches`, { id: branch, ...body });
    expect(r.status).toBe(201);
    secrets.push(r.body.apiKey);
    return r.body.apiKey as string;
  };

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const logger = pino({ level: 'debug', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
    app = await startHub(testConfig(db.url, { adminToken: ADMIN, logLevel: 'debug' }), { logger });
  });
  afterAll(() => app.stop());

  describe('access', () => {
    it('does not exist (404) when the hub has no admin token', async () => {
      const plain = await startTestHub(db.url);
      try {
        const r = await call(plain.url, 'GET', '/admin/tenants');
        expect(r.status).toBe(404);
        expect(r.body.error.code).toBe('not_found');
      } finally {
        await plain.stop();
      }
    });

    it('refuses a missing or wrong token with 401 and one error shape', async () => {
      for (const token of [null, 'wrong', `${ADMIN}x`]) {
        const r = await api('GET', '/admin/tenants', undefined, { token });
        expect(r.status).toBe(401);
        expect(r.headers.get('www-authenticate')).toBe('Bearer');
        expect(r.body).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
      }
    });

    it('answers unknown paths with 404 and methods a path does not take with 405 and Allow', async () => {
      expect((await api('GET', '/admin/nothing')).status).toBe(404);
      expect((await api('GET', '/admin/tenants/a/b/c/d/e')).status).toBe(404);
      const put = await api('PUT', '/admin/tenants', {});
      expect(put.status).toBe(405);
      expect(put.body.error.code).toBe('method_not_allowed');
      expect(put.headers.get('allow')).toBe('GET, POST, HEAD');
      const get = await api('GET', '/admin/tenants/acme/suspend');
      expect(get.status).toBe(405);
      expect(get.headers.get('allow')).toBe('POST');
      expect((await api('POST', '/admin/tenants/acme/branches/a/status')).headers.get('allow')).toBe('GET, HEAD');
      expect((await api('DELETE', '/admin/audit')).status).toBe(405);
    });
  });

  describe('tenants', () => {
    it('creates, lists, shows, updates, suspends and resumes a tenant', async () => {
      const created = await api('POST', '/admin/tenants', {
        id: 'acme',
        maxBranches: 5,
        rateLimit: { messagesPerSecond: 50, burst: 100 },
        conflictStrategy: 'branch-priority',
        branchPriority: ['hq', 'store-1'],
      });
      expect(created.status).toBe(201);
      expect(created.headers.get('location')).toBe('/admin/tenants/acme');
      expect(created.body).toMatchObject({
        id: 'acme',
        status: 'active',
        maxBranches: 5,
        rateLimit: { messagesPerSecond: 50, burst: 100 },
        conflictStrategy: 'branch-priority',
        branchPriority: ['hq', 'store-1'],
        deletionPolicy: 'retain',
        schemaName: 'tenant_acme',
      });

      const list = await api('GET', '/admin/tenants');
      expect(list.status).toBe(200);
      expect(list.body.tenants.map((t: { id: string }) => t.id)).toContain('acme');

      const shown = await api('GET', '/admin/tenants/acme');
      expect(shown.body).toMatchObject({ id: 'acme', branchCount: 0, log: { head: 0, prunedUpto: 0, compactedUpto: 0 } });

      const patched = await api('PATCH', '/admin/tenants/acme', { maxBranches: null, rateLimit: null, conflictStrategy: 'last-write-wins' });
      expect(patched.status).toBe(200);
      expect(patched.body).toMatchObject({ maxBranches: null, rateLimit: null, conflictStrategy: 'last-write-wins', branchPriority: ['hq', 'store-1'] });

      expect((await api('POST', '/admin/tenants/acme/suspend')).body.status).toBe('suspended');
      expect((await api('GET', '/admin/tenants/acme')).body.status).toBe('suspended');
      expect((await api('POST', '/admin/tenants/acme/resume', {})).body.status).toBe('active');
      expect((await api('PATCH', '/admin/tenants/acme', { suspended: true })).body.status).toBe('suspended');
      expect((await api('PATCH', '/admin/tenants/acme', { suspended: false })).body.status).toBe('active');
    });

    it('refuses a duplicate tenant with 409', async () => {
      await api('POST', '/admin/tenants', { id: 'dup' });
      const again = await api('POST', '/admin/tenants', { id: 'dup' });
      expect(again.status).toBe(409);
      expect(again.body.error).toEqual({ code: 'conflict', message: 'tenant dup already exists' });
    });

    it('answers 404 for a tenant that does not exist', async () => {
      for (const [method, path, body] of [
        ['GET', '/admin/tenants/nope'],
        ['PATCH', '/admin/tenants/nope', { maxBranches: 1 }],
        ['DELETE', '/admin/tenants/nope'],
        ['POST', '/admin/tenants/nope/suspend'],
        ['POST', '/admin/tenants/nope/resume'],
        ['GET', '/admin/tenants/nope/branches'],
        ['POST', '/admin/tenants/nope/branches', { id: 'a' }],
        ['GET', '/admin/tenants/nope/branches/a/status'],
        ['GET', '/admin/connections?tenant=nope'],
      ] as const) {
        const r = await api(method, path, body);
        expect(r.status, `${method} ${path}`).toBe(404);
        expect(r.body.error.code).toBe('not_found');
        expect(r.body.error.message).toContain('tenant nope does not exist');
      }
    });

    it('refuses bad bodies with 400 naming the field, and wrong media types and sizes', async () => {
      const bad = async (body: unknown, expected: string, path = '/admin/tenants', method = 'POST') => {
        const r = await api(method, path, body);
        expect(r.status, JSON.stringify(body)).toBe(400);
        expect(r.body.error.code).toBe('invalid_request');
        expect(r.body.error.message).toContain(expected);
      };
      await bad({ id: 'x1', colour: 'red' }, 'unknown field "colour"');
      await bad({ id: 'x1', colour: 'red', size: 1 }, 'unknown fields "colour", "size"');
      await bad({ id: 'x1', rateLimit: { messagesPerSecond: 1, burst: 1, window: 3 } }, 'unknown field "rateLimit.window"');
      await bad({ id: 'x1', maxBranches: 'ten' }, 'field "maxBranches"');
      await bad({ id: 'x1', maxBranches: -1 }, 'field "maxBranches"');
      await bad({ id: 'x1', rateLimit: { messagesPerSecond: 0, burst: 1 } }, 'field "rateLimit.messagesPerSecond"');
      await bad({ id: 'x1', conflictStrategy: 'coin-toss' }, 'field "conflictStrategy"');
      await bad({ id: 'x1', deletionPolicy: 'shred' }, 'field "deletionPolicy"');
      await bad({ id: 'Not_A_Label' }, 'must be a DNS-1123 label');
      await bad({ id: 'x'.repeat(57) }, 'at most 56');
      await bad({ id: 'x1', branchPriority: ['UPPER'] }, 'DNS-1123');
      await bad({ maxBranches: 3 }, 'field "id"');
      await bad([], 'body: ');
      await bad({ id: 'acme' }, 'unknown field "id"', '/admin/tenants/acme', 'PATCH');
      await bad({ now: true }, 'unknown field "now"', '/admin/tenants/acme/suspend');
      await bad({ suspended: 'yes' }, 'field "suspended"', '/admin/tenants/acme', 'PATCH');

      const notJson = await api('POST', '/admin/tenants', undefined, { raw: '{"id": "x1",' });
      expect(notJson.status).toBe(400);
      expect(notJson.body.error.code).toBe('invalid_request');
      const text = await api('POST', '/admin/tenants', undefined, { raw: 'id=x1', headers: { 'content-type': 'text/plain' } });
      expect(text.status).toBe(415);
      expect(text.body.error.code).toBe('unsupported_media_type');
      const huge = await api('POST', '/admin/tenants', { id: 'x1', branchPriority: Array.from({ length: 8000 }, (_, i) => `branch-${i}`) });
      expect(huge.status).toBe(413);
      expect(huge.body.error.code).toBe('payload_too_large');
      expect((await api('GET', '/admin/tenants/x1')).status).toBe(404);
    });

    it('refuses a body over the limit sent in chunks (no content-length) with 413, and keeps serving', async () => {
      const u = new URL(app.url);
      const answer = await new Promise<string>((resolve) => {
        const req = request(
          { host: u.hostname, port: u.port, path: '/admin/tenants', method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' } },
          (res) => {
            res.resume();
            resolve(String(res.statusCode));
          },
        );
        // The hub may close the connection while this is still sending: that is an answer too.
        req.on('error', (e) => resolve(`closed: ${e.message}`));
        req.write(`{"id": "x1", "pad": "${'x'.repeat(100 * 1024)}`);
        req.end('"}');
      });
      expect(answer).toMatch(/^(413|closed)/);
      expect((await fetch(`${app.url}/health`)).status).toBe(200);
    });

    it('refuses ids that are not DNS labels and dot segments with 400, resolving nothing and logging no error', async () => {
      // Sent as written: fetch() would resolve the dot segments before sending.
      const u = new URL(app.url);
      const raw = (path: string) =>
        new Promise<{ status: number; body: { error?: { code: string; message: string } } }>((resolve, reject) => {
          const req = request({ host: u.hostname, port: u.port, path, method: 'GET', headers: { authorization: `Bearer ${ADMIN}` } }, (res) => {
            let text = '';
            res.on('data', (d: Buffer) => (text += d.toString('utf8')));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { error?: { code: string; message: string } } }));
          });
          req.on('error', reject);
          req.end();
        });
      const errorsBefore = lines.filter((l) => l.includes('"level":50')).length;
      const nul = await raw('/admin/tenants/a%00b');
      expect(nul.status).toBe(400);
      expect(nul.body.error).toEqual({ code: 'invalid_request', message: 'tenant "a\\u0000b": must be a DNS-1123 label (lowercase letters, digits and "-", at most 63)' });
      expect((await raw('/admin/tenants/acme/branches/UPPER')).body.error?.message).toMatch(/^branch "UPPER": must be a DNS-1123 label/);
      expect((await raw('/admin/tenants/acme/branches/a/dead-letters/x1')).body.error?.message).toBe('id "x1": must be a number');
      for (const path of ['/admin/%2e%2e/metrics', '/admin/tenants/%2E%2e', '/admin/./tenants', '/admin/tenants/..%2f..', '/admin/tenants/a%2fb', '/admin\\..\\metrics', '/%2e%2e/health']) {
        const r = await raw(path);
        expect([path, r.status, r.body.error?.code]).toEqual([path, 400, 'invalid_request']);
      }
      expect(lines.filter((l) => l.includes('"level":50')).length).toBe(errorsBefore);
    });

    it('refuses unknown and malformed query parameters with 400', async () => {
      const unknown = await api('GET', '/admin/tenants?colour=red');
      expect(unknown.status).toBe(400);
      expect(unknown.body.error.message).toBe('unknown query parameter "colour"');
      expect((await api('DELETE', '/admin/tenants/acme?policy=shred')).status).toBe(400);
      expect((await api('GET', '/admin/audit?limit=0')).status).toBe(400);
      expect((await api('GET', '/admin/audit?limit=ten')).status).toBe(400);
      expect((await api('GET', '/admin/audit?limit=1&limit=2')).status).toBe(400);
    });

    it('deletes a tenant by its deletion policy, or by ?policy=', async () => {
      const schemaExists = async (schema: string) => {
        const c = new pg.Client({ connectionString: db.url });
        await c.connect();
        try {
          return (await c.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rowCount === 1;
        } finally {
          await c.end();
        }
      };
      await api('POST', '/admin/tenants', { id: 'gone', deletionPolicy: 'delete' });
      const dropped = await api('DELETE', '/admin/tenants/gone');
      expect(dropped.body).toEqual({ id: 'gone', deleted: true, policy: 'delete', schemaDropped: true });
      expect(await schemaExists('tenant_gone')).toBe(false);

      await api('POST', '/admin/tenants', { id: 'kept', deletionPolicy: 'delete' });
      const kept = await api('DELETE', '/admin/tenants/kept?policy=retain');
      expect(kept.body).toEqual({ id: 'kept', deleted: true, policy: 'retain', schemaDropped: false });
      expect(await schemaExists('tenant_kept')).toBe(true);
      expect((await api('GET', '/admin/tenants/kept')).status).toBe(404);

      await api('POST', '/admin/tenants', { id: 'kept-too' });
      expect((await api('DELETE', '/admin/tenants/kept-too?policy=delete')).body.schemaDropped).toBe(true);
      expect(await schemaExists('tenant_kept_too')).toBe(false);
    });
  });

  describe('branches', () => {
    beforeAll(async () => {
      await api('POST', '/admin/tenants', { id: 'shop', maxBranches: 6 });
    });

    it('creates a branch with its API key once (no-store), and the key gets a token', async () => {
      const r = await api('POST', '/admin/tenants/shop/branches', { id: 'store-1' });
      expect(r.status).toBe(201);
      expect(r.headers.get('cache-control')).toBe('no-store');
      expect(r.headers.get('location')).toBe('/admin/tenants/shop/branches/store-1');
      expect(r.body).toMatchObject({ tenantId: 'shop', id: 'store-1', status: 'active', hasKey: true, previousKeyValidUntil: null });
      expect(r.body.apiKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
      secrets.push(r.body.apiKey);
      expect((await requestToken(app.url, { tenant_id: 'shop', branch_id: 'store-1', api_key: r.body.apiKey })).status).toBe(200);

      // Never again: not when shown, listed or in its status.
      for (const path of ['/admin/tenants/shop/branches/store-1', '/admin/tenants/shop/branches', '/admin/tenants/shop/branches/store-1/status']) {
        const again = await api('GET', path);
        expect(again.status).toBe(200);
        expect(JSON.stringify(again.body)).not.toContain(r.body.apiKey);
        expect(JSON.stringify(again.body)).not.toContain('apiKey');
      }
    });

    it('creates a suspended branch whose key is refused until it is resumed', async () => {
      const key = await createBranch('shop', 'later', { suspended: true });
      expect((await api('GET', '/admin/tenants/shop/branches/later')).body.status).toBe('suspended');
      expect((await requestToken(app.url, { tenant_id: 'shop', branch_id: 'later', api_key: key })).status).toBe(401);
      expect((await api('POST', '/admin/tenants/shop/branches/later/resume')).body.status).toBe('active');
      expect((await requestToken(app.url, { tenant_id: 'shop', branch_id: 'later', api_key: key })).status).toBe(200);
    });

    it('refuses a duplicate branch with 409 and one past maxBranches with 409 limit_exceeded', async () => {
      await api('POST', '/admin/tenants', { id: 'small', maxBranches: 1 });
      await createBranch('small', 'one');
      const dup = await api('POST', '/admin/tenants/small/branches', { id: 'one' });
      expect(dup.status).toBe(409);
      expect(dup.body.error.code).toBe('conflict');
      const over = await api('POST', '/admin/tenants/small/branches', { id: 'two' });
      expect(over.status).toBe(409);
      expect(over.body.error).toEqual({ code: 'limit_exceeded', message: 'tenant small already has its maximum of 1 branches' });
      expect(JSON.stringify(over.body)).not.toContain('apiKey');
      // Raising the limit lets it through.
      await api('PATCH', '/admin/tenants/small', { maxBranches: 2 });
      await createBranch('small', 'two');
    });

    it('refuses bad branch bodies with 400', async () => {
      for (const [body, expected] of [
        [{ id: 'ok', key: 'mine' }, 'unknown field "key"'],
        [{ id: 'Bad Id' }, 'DNS-1123'],
        [{}, 'field "id"'],
        [{ id: 'ok', suspended: 1 }, 'field "suspended"'],
      ] as const) {
        const r = await api('POST', '/admin/tenants/shop/branches', body);
        expect(r.status).toBe(400);
        expect(r.body.error.message).toContain(expected);
      }
      const grace = await api('POST', '/admin/tenants/shop/branches/store-1/rotate-key', { graceSeconds: -5 });
      expect(grace.status).toBe(400);
      expect(grace.body.error.message).toContain('graceSeconds');
    });

    it('answers 404 for a branch that does not exist', async () => {
      for (const [method, path] of [
        ['GET', '/admin/tenants/shop/branches/nope'],
        ['DELETE', '/admin/tenants/shop/branches/nope'],
        ['POST', '/admin/tenants/shop/branches/nope/suspend'],
        ['POST', '/admin/tenants/shop/branches/nope/resume'],
        ['POST', '/admin/tenants/shop/branches/nope/rotate-key'],
        ['GET', '/admin/tenants/shop/branches/nope/status'],
      ] as const) {
        const r = await api(method, path);
        expect(r.status, `${method} ${path}`).toBe(404);
        expect(r.body.error).toEqual({ code: 'not_found', message: 'branch shop/nope does not exist' });
      }
    });

    it('rotates a key: the new one is shown once, the old one works during the grace period only', async () => {
      const first = await createBranch('shop', 'rotating');
      const r = await api('POST', '/admin/tenants/shop/branches/rotating/rotate-key', { graceSeconds: 300 });
      expect(r.status).toBe(200);
      expect(r.headers.get('cache-control')).toBe('no-store');
      expect(r.body).toMatchObject({ graceSeconds: 300, hasKey: true });
      expect(Date.parse(r.body.previousKeyValidUntil) - Date.now()).toBeGreaterThan(290_000);
      const second = r.body.apiKey as string;
      secrets.push(second);
      expect(second).not.toBe(first);
      for (const key of [first, second]) expect((await requestToken(app.url, { tenant_id: 'shop', branch_id: 'rotating', api_key: key })).status).toBe(200);

      // Without a body the hub's default grace applies (HUB_KEY_GRACE_SECONDS).
      const byDefault = await api('POST', '/admin/tenants/shop/branches/rotating/rotate-key');
      expect(byDefault.body.graceSeconds).toBe(app.ctx.config.keyGraceSeconds);
      secrets.push(byDefault.body.apiKey);

      const now = await api('POST', '/admin/tenants/shop/branches/rotating/rotate-key', { graceSeconds: 0 });
      secrets.push(now.body.apiKey);
      expect(now.body.previousKeyValidUntil).toBeNull();
      for (const key of [first, second, byDefault.body.apiKey]) {
        expect((await requestToken(app.url, { tenant_id: 'shop', branch_id: 'rotating', api_key: key })).status).toBe(401);
      }
      expect((await requestToken(app.url, { tenant_id: 'shop', branch_id: 'rotating', api_key: now.body.apiKey })).status).toBe(200);
    });

    it('suspending a branch closes its live socket with 4003 and its status shows it offline', async () => {
      const key = await createBranch('shop', 'live');
      const agent = await TestAgent.open(wsUrl(app), await tokenFor(app.url, 'shop', 'live', key));
      const online = await api('GET', '/admin/tenants/shop/branches/live/status');
      expect(online.body).toMatchObject({ online: true, instance: app.ctx.instanceId, status: 'active' });
      expect(online.body.connection).toMatchObject({ codec: 'json', mode: expect.any(String) });

      const r = await api('POST', '/admin/tenants/shop/branches/live/suspend');
      expect(r.body.status).toBe('suspended');
      expect((await agent.closed).code).toBe(CLOSE.suspended);
      await expect.poll(async () => (await api('GET', '/admin/tenants/shop/branches/live/status')).body.online).toBe(false);
      const offline = await api('GET', '/admin/tenants/shop/branches/live/status');
      expect(offline.body).toMatchObject({ status: 'suspended', instance: null, connectedAt: null, connection: null });
      // Last-seen times are written within a second (batched), not at once.
      await expect.poll(async () => (await api('GET', '/admin/tenants/shop/branches/live/status')).body.lastSeenAt).not.toBeNull();
      expect((await requestToken(app.url, { tenant_id: 'shop', branch_id: 'live', api_key: key })).status).toBe(401);

      await api('POST', '/admin/tenants/shop/branches/live/resume');
      const back = await TestAgent.open(wsUrl(app), await tokenFor(app.url, 'shop', 'live', key));
      await back.close();
    });

    it('suspending a tenant closes the sockets of its branches', async () => {
      await api('POST', '/admin/tenants', { id: 'paused' });
      const key = await createBranch('paused', 'a');
      const agent = await TestAgent.open(wsUrl(app), await tokenFor(app.url, 'paused', 'a', key));
      await api('POST', '/admin/tenants/paused/suspend');
      expect((await agent.closed).code).toBe(CLOSE.suspended);
      const status = await api('GET', '/admin/tenants/paused/branches/a/status');
      expect(status.body).toMatchObject({ status: 'active', tenantStatus: 'suspended' });
    });

    it('shows cursor, log head and lag: an offline branch lags by what others appended', async () => {
      await api('POST', '/admin/tenants', { id: 'lagging' });
      const ka = await createBranch('lagging', 'writer');
      await createBranch('lagging', 'reader');
      const writer = await TestAgent.open(wsUrl(app), await tokenFor(app.url, 'lagging', 'writer', ka));
      const { offsets } = await writer.append('writer', 5);
      const head = Math.max(...offsets);

      const reader = await api('GET', '/admin/tenants/lagging/branches/reader/status');
      expect(reader.body).toMatchObject({ online: false, cursor: 0, logHead: head, lag: head, log: { head }, needsSnapshot: true, connection: null });
      const w = await api('GET', '/admin/tenants/lagging/branches/writer/status');
      expect(w.body).toMatchObject({ online: true, logHead: head });
      expect(w.body.lag).toBe(head - w.body.cursor);

      const list = await api('GET', '/admin/tenants/lagging/branches');
      expect(list.body.logHead).toBe(head);
      const byId = Object.fromEntries(list.body.branches.map((b: { id: string }) => [b.id, b]));
      expect(byId.reader).toMatchObject({ online: false, instance: null, cursor: 0, lag: head, lastSeenAt: null });
      expect(byId.writer).toMatchObject({ online: true, instance: app.ctx.instanceId });
      expect((await api('GET', '/admin/tenants/lagging')).body).toMatchObject({ branchCount: 2, log: { head } });
      await writer.close();
    });

    it('lists live connections with their details', async () => {
      await api('POST', '/admin/tenants', { id: 'wired' });
      const key = await createBranch('wired', 'a');
      const agent = await TestAgent.open(wsUrl(app), await tokenFor(app.url, 'wired', 'a', key), { msgpack: true });
      const r = await api('GET', '/admin/connections?tenant=wired');
      expect(r.body.answeredBy).toBe(app.ctx.instanceId);
      expect(r.body.connections).toEqual([
        {
          tenantId: 'wired',
          branchId: 'a',
          instance: app.ctx.instanceId,
          connectedAt: expect.any(String),
          local: true,
          details: expect.objectContaining({ codec: 'msgpack', remoteAddress: expect.any(String), bufferedBytes: expect.any(Number) }),
        },
      ]);
      const all = await api('GET', '/admin/connections');
      expect(all.body.connections.some((c: { tenantId: string }) => c.tenantId === 'wired')).toBe(true);
      await agent.close();
      await expect.poll(async () => (await api('GET', '/admin/connections?tenant=wired')).body.connections).toEqual([]);
    });

    it('deletes a branch: its key stops working', async () => {
      const key = await createBranch('shop', 'closing');
      const r = await api('DELETE', '/admin/tenants/shop/branches/closing');
      expect(r.body).toEqual({ tenantId: 'shop', id: 'closing', deleted: true });
      expect((await api('GET', '/admin/tenants/shop/branches/closing')).status).toBe(404);
      expect((await requestToken(app.url, { tenant_id: 'shop', branch_id: 'closing', api_key: key })).status).toBe(401);
    });
  });

  describe('audit', () => {
    it('records every admin change with source admin, newest first, filtered by tenant and event', async () => {
      await api('POST', '/admin/tenants', { id: 'audited' });
      await createBranch('audited', 'a');
      await api('POST', '/admin/tenants/audited/branches/a/suspend');
      await api('POST', '/admin/tenants/audited/branches/a/resume');
      await api('POST', '/admin/tenants/audited/branches/a/rotate-key', { graceSeconds: 0 }).then((r) => secrets.push(r.body.apiKey));
      await api('PATCH', '/admin/tenants/audited', { maxBranches: 3 });
      await api('POST', '/admin/tenants/audited/suspend');
      await api('DELETE', '/admin/tenants/audited/branches/a');
      await api('DELETE', '/admin/tenants/audited');

      const r = await api('GET', '/admin/audit?tenant=audited');
      expect(r.status).toBe(200);
      expect(r.body.entries.map((e: { event: string }) => e.event)).toEqual([
        'tenant.deleted',
        'branch.deleted',
        'tenant.suspended',
        'tenant.updated',
        'branch.key_rotated',
        'branch.resumed',
        'branch.suspended',
        'branch.created',
        'tenant.created',
      ]);
      for (const e of r.body.entries) expect(e).toMatchObject({ source: 'admin', tenantId: 'audited', id: expect.any(String), at: expect.any(String) });

      const rotated = await api('GET', '/admin/audit?tenant=audited&event=branch.key_rotated&limit=5');
      expect(rotated.body.entries).toEqual([expect.objectContaining({ branchId: 'a', detail: { graceSeconds: 0 } })]);
      expect((await api('GET', '/admin/audit?limit=1')).body.entries).toHaveLength(1);
    });

    it('shows failed authentications with their reason', async () => {
      await api('POST', '/admin/tenants', { id: 'probed' });
      await createBranch('probed', 'a');
      await requestToken(app.url, { tenant_id: 'probed', branch_id: 'a', api_key: 'guessing-a-key' });
      const r = await api('GET', '/admin/audit?tenant=probed&event=auth.failed');
      expect(r.body.entries[0]).toMatchObject({ branchId: 'a', detail: { reason: 'wrong_key' } });
    });
  });

  it('never writes an API key or the admin token to its log', () => {
    const all = lines.join('');
    expect(all).toContain('"url":"/admin/tenants"');
    expect(secrets.length).toBeGreaterThan(10);
    for (const s of secrets) expect(all).not.toContain(s);
  });
});

describe('admin API with two hub instances on one Redis', () => {
  const db = useTestDatabase('admin-cluster');
  const prefix = useRedisPrefix('admin-cluster');
  let a: HubApp;
  let b: HubApp;

  beforeAll(async () => {
    const over = { adminToken: ADMIN, redisUrl: testRedisUrl, redisPrefix: prefix, probeIntervalMs: 200 };
    a = await startTestHub(db.url, over);
    b = await startTestHub(db.url, over);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
  });

  it('reports a branch connected to another instance as online there, without that instance’s details, and suspends it there', async () => {
    await call(a.url, 'POST', '/admin/tenants', { id: 'acme' });
    const created = await call(a.url, 'POST', '/admin/tenants/acme/branches', { id: 'far' });
    const agent = await TestAgent.open(wsUrl(b), await tokenFor(b.url, 'acme', 'far', created.body.apiKey));

    const status = await call(a.url, 'GET', '/admin/tenants/acme/branches/far/status');
    expect(status.body).toMatchObject({ online: true, instance: b.ctx.instanceId, connection: null, answeredBy: a.ctx.instanceId });
    const fromA = await call(a.url, 'GET', '/admin/connections?tenant=acme');
    expect(fromA.body.connections).toEqual([expect.objectContaining({ branchId: 'far', instance: b.ctx.instanceId, local: false, details: null })]);
    const fromB = await call(b.url, 'GET', '/admin/connections?tenant=acme');
    expect(fromB.body.connections).toEqual([expect.objectContaining({ branchId: 'far', instance: b.ctx.instanceId, local: true, details: expect.any(Object) })]);
    const listed = await call(a.url, 'GET', '/admin/tenants/acme/branches');
    expect(listed.body.branches[0]).toMatchObject({ id: 'far', online: true, instance: b.ctx.instanceId });

    // Suspended through instance a, closed by instance b.
    await call(a.url, 'POST', '/admin/tenants/acme/branches/far/suspend');
    expect((await agent.closed).code).toBe(CLOSE.suspended);
    await expect.poll(async () => (await call(a.url, 'GET', '/admin/tenants/acme/branches/far/status')).body.online).toBe(false);
  });
});
