import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../../cli/commands/admin.js';
import { useTestDatabase } from '../../../test/support/pg.js';
import { startHub, type HubApp } from '../../app.js';
import { REDACT_PATHS } from '../../logger.js';
import { requestToken, testConfig } from '../../testing/harness.js';

const ADMIN = 'cli-admin-token-7c4e0b2a9d';
const CLI = fileURLToPath(new URL('../../../cli/hub-broker.ts', import.meta.url));
const KEY = /[A-Za-z0-9_-]{43}/g;

/** A port nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Result {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

describe('hub-broker admin', () => {
  const db = useTestDatabase('admin-cli');
  let app: HubApp;
  const lines: string[] = [];
  const keys: string[] = [];

  /** Runs the command in-process, as `hub-broker admin …` with this environment. */
  const admin = async (args: string[], env: Record<string, string | undefined> = { HUB_URL: app.url, HUB_ADMIN_TOKEN: ADMIN }): Promise<Result> => {
    let out = '';
    let err = '';
    const code = await run(args, { out: (t) => (out += t), err: (t) => (err += t), env });
    return { code, out, err };
  };
  const works = async (tenant: string, branch: string, key: string) => (await requestToken(app.url, { tenant_id: tenant, branch_id: branch, api_key: key })).status === 200;

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

  it('creates and lists tenants, as a table or as the API’s JSON', async () => {
    const created = await admin(['tenants', 'create', 'acme', '--max-branches', '3', '--rate', '20:40', '--deletion-policy', 'delete']);
    expect(created).toMatchObject({ code: 0, err: '' });
    expect(created.out).toContain('created tenant acme');
    expect(created.out).toMatch(/max branches: +3/);
    expect(created.out).toMatch(/rate limit: +20\/s, burst 40/);

    const table = await admin(['tenants', 'list']);
    expect(table.code).toBe(0);
    expect(table.out.split('\n')[0]).toMatch(/^TENANT +STATUS +MAX BRANCHES +RATE LIMIT +STRATEGY +DELETION$/);
    expect(table.out).toMatch(/^acme +active +3 +20\/s, burst 40 +last-write-wins +delete$/m);

    const json = await admin(['tenants', 'list', '--json']);
    expect(JSON.parse(json.out)).toEqual({ tenants: [expect.objectContaining({ id: 'acme', maxBranches: 3, rateLimit: { messagesPerSecond: 20, burst: 40 } })] });

    const updated = await admin(['tenants', 'update', 'acme', '--max-branches', 'none', '--rate', 'default', '--json']);
    expect(JSON.parse(updated.out)).toMatchObject({ maxBranches: null, rateLimit: null });
    expect((await admin(['tenant', 'show', 'acme'])).out).toMatch(/branches: +0/);
  });

  it('publishes a schema change from a file once per name, and lists it', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'hub-broker-cli-')), 'add-points.sql');
    writeFileSync(file, 'ALTER TABLE public.customer ADD COLUMN points integer NOT NULL DEFAULT 0;\n');
    expect((await admin(['tenants', 'create', 'migrating'])).code).toBe(0);
    const first = await admin(['schema', 'apply', 'migrating', file, '--name', 'add-points', '--description', 'loyalty points']);
    expect(first).toMatchObject({ code: 0, err: '' });
    expect(first.out).toMatch(/^published schema version 1 of tenant migrating at log offset \d+: add_column public\.customer$/m);
    const again = await admin(['schema', 'apply', 'migrating', file, '--name', 'add-points']);
    expect(again.out).toMatch(/^already published as schema version 1 of tenant migrating/m);
    const list = await admin(['schema', 'list', 'migrating']);
    expect(list.out.split('\n')[0]).toMatch(/^VERSION +NAME +PUBLISHED +STATEMENTS +DESCRIPTION$/);
    expect(list.out).toMatch(/^1 +add-points +\S+ +add_column public\.customer +loyalty points$/m);
  });

  it('prints a new branch’s API key exactly once, with a note, and the key works', async () => {
    const r = await admin(['branches', 'create', 'acme', 'store-1']);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toContain('created branch acme/store-1 (active)');
    expect(r.out).toContain('shown only this once');
    const found = r.out.match(KEY) ?? [];
    expect(found).toHaveLength(1);
    const key = found[0] as string;
    keys.push(key);
    expect(await works('acme', 'store-1', key)).toBe(true);

    // Listing and showing never print it again.
    for (const args of [['branches', 'list', 'acme'], ['branches', 'show', 'acme', 'store-1'], ['branches', 'status', 'acme', 'store-1'], ['branches', 'list', 'acme', '--json']]) {
      const again = await admin(args);
      expect(again.code).toBe(0);
      expect(again.out).not.toContain(key);
    }
  });

  it('gives scripts the key in the JSON answer, with the note on stderr', async () => {
    const r = await admin(['branches', 'create', 'acme', 'store-2', '--json']);
    expect(r.code).toBe(0);
    const body = JSON.parse(r.out);
    expect(body).toMatchObject({ tenantId: 'acme', id: 'store-2', apiKey: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
    keys.push(body.apiKey);
    expect(r.err).toContain('shown only this once');
    expect(r.err).not.toContain(body.apiKey);
    expect(await works('acme', 'store-2', body.apiKey)).toBe(true);
  });

  it('rotates a key: prints the new one once; without grace the old one stops working', async () => {
    const before = keys[0] as string;
    const r = await admin(['branches', 'rotate-key', 'acme', 'store-1', '--grace-seconds', '0']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('the previous key no longer works');
    const found = r.out.match(KEY) ?? [];
    expect(found).toHaveLength(1);
    keys.push(found[0] as string);
    expect(await works('acme', 'store-1', found[0] as string)).toBe(true);
    expect(await works('acme', 'store-1', before)).toBe(false);

    const graced = await admin(['branches', 'rotate-key', 'acme', 'store-1', '--grace-seconds', '600', '--json']);
    keys.push(JSON.parse(graced.out).apiKey);
    expect(JSON.parse(graced.out)).toMatchObject({ graceSeconds: 600, previousKeyValidUntil: expect.any(String) });
    expect(await works('acme', 'store-1', found[0] as string)).toBe(true);
  });

  it('shows status, suspends, resumes and deletes branches and tenants', async () => {
    const status = await admin(['branches', 'status', 'acme', 'store-2']);
    expect(status.out).toMatch(/online: +no/);
    expect(status.out).toMatch(/lag: +0/);
    expect((await admin(['branches', 'suspend', 'acme', 'store-2'])).out).toBe('branch acme/store-2 is suspended\n');
    expect((await admin(['branches', 'resume', 'acme', 'store-2'])).out).toBe('branch acme/store-2 is active\n');
    expect((await admin(['tenants', 'suspend', 'acme'])).out).toBe('tenant acme is suspended\n');
    expect((await admin(['tenants', 'resume', 'acme'])).out).toBe('tenant acme is active\n');
    expect((await admin(['branches', 'delete', 'acme', 'store-2'])).out).toBe('deleted branch acme/store-2\n');
    expect((await admin(['connections'])).out).toContain('(none)');
    const audit = await admin(['audit', '--tenant', 'acme', '--limit', '3', '--json']);
    expect(JSON.parse(audit.out).entries.map((e: { event: string }) => e.event)).toEqual(['branch.deleted', 'tenant.resumed', 'tenant.suspended']);
    expect((await admin(['audit', '--tenant', 'acme'])).out).toMatch(/branch\.key_rotated +admin +\{"graceSeconds":600\}/);

    await admin(['tenants', 'create', 'brief']);
    expect((await admin(['tenants', 'delete', 'brief', '--policy', 'delete'])).out).toBe('deleted tenant brief; its schema was dropped\n');
  });

  it('fails with one line and exit 1 when the hub refuses', async () => {
    const missing = await admin(['tenants', 'show', 'nope']);
    expect(missing).toEqual({ code: 1, out: '', err: 'hub-broker admin: tenant nope does not exist (HTTP 404 not_found)\n' });
    const dup = await admin(['branches', 'create', 'acme', 'store-1']);
    expect(dup.code).toBe(1);
    expect(dup.err).toBe('hub-broker admin: branch acme/store-1 already exists (HTTP 409 conflict)\n');
    const bad = await admin(['tenants', 'create', 'Bad_Name']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/^hub-broker admin: tenant id "Bad_Name" must be a DNS-1123 label.*\(HTTP 400 invalid_request\)\n$/);
    const wrong = await admin(['tenants', 'list'], { HUB_URL: app.url, HUB_ADMIN_TOKEN: 'wrong' });
    expect(wrong).toEqual({ code: 1, out: '', err: 'hub-broker admin: admin token required (HTTP 401 unauthorized)\n' });
    const port = await closedPort();
    const away = await admin(['tenants', 'list'], { HUB_URL: `http://127.0.0.1:${port}`, HUB_ADMIN_TOKEN: ADMIN });
    expect(away).toEqual({ code: 1, out: '', err: `hub-broker admin: cannot reach the hub at http://127.0.0.1:${port}: ECONNREFUSED\n` });
  });

  it('refuses usage errors with one line and exit 2', async () => {
    const cases: [string[], string][] = [
      [['tenants'], 'tenants needs a verb'],
      [['tenants', 'create'], 'tenants create needs <tenant>'],
      [['tenants', 'show', 'a', 'b'], 'unexpected argument "b"'],
      [['planets', 'list'], 'unknown resource "planets"'],
      [['tenants', 'list', '--colour', 'red'], 'unknown option --colour'],
      [['tenants', 'list', '--max-branches', '3'], 'tenants list does not take --max-branches'],
      [['tenants', 'update', 'acme'], 'tenants update needs at least one of'],
      [['tenants', 'create', 'x', '--rate', 'fast'], '--rate must be'],
      [['branches', 'rotate-key', 'acme', 'store-1', '--grace-seconds', 'soon'], '--grace-seconds must be'],
    ];
    for (const [args, message] of cases) {
      const r = await admin(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.out).toBe('');
      expect(r.err).toContain(message);
      expect(r.err.trimEnd().split('\n')).toHaveLength(1);
    }
    expect((await admin(['tenants', 'list'], { HUB_ADMIN_TOKEN: ADMIN })).err).toContain('no hub URL');
    expect((await admin(['tenants', 'list'], { HUB_URL: app.url })).err).toContain('no admin token');
    expect((await admin(['tenants', 'list'], { HUB_URL: 'ftp://hub', HUB_ADMIN_TOKEN: ADMIN })).code).toBe(2);
  });

  it('takes the token from a flag (with a warning) or a file, and the URL from a flag', async () => {
    const flag = await admin(['tenants', 'list', '--hub-url', app.url, '--admin-token', ADMIN], {});
    expect(flag.code).toBe(0);
    expect(flag.err).toContain('visible to other users in the process list');
    const dir = mkdtempSync(join(tmpdir(), 'hbadmin-'));
    writeFileSync(join(dir, 'token'), `${ADMIN}\n`, { mode: 0o600 });
    const file = await admin(['tenants', 'list', `--hub-url=${app.url}`, '--admin-token-file', join(dir, 'token')], {});
    expect(file).toMatchObject({ code: 0, err: '' });
    expect((await admin(['tenants', 'list', '--admin-token-file', join(dir, 'nothing')])).code).toBe(2);
    // The agent's wss:// form of HUB_URL names the same hub.
    expect((await admin(['tenants', 'list'], { HUB_URL: app.url.replace(/^http/, 'ws'), HUB_ADMIN_TOKEN: ADMIN })).code).toBe(0);
  });

  it('documents every command in --help', async () => {
    const r = await admin(['--help']);
    expect(r.code).toBe(0);
    for (const s of [
      'tenants list',
      'tenants show <tenant>',
      'tenants create <tenant>',
      'tenants update <tenant>',
      'tenants suspend <tenant>',
      'tenants resume <tenant>',
      'tenants delete <tenant> [--policy <retain|delete>]',
      'branches list <tenant>',
      'branches create <tenant> <branch> [--suspended]',
      'branches rotate-key <tenant> <branch> [--grace-seconds <seconds>]',
      'branches status <tenant> <branch>',
      'connections [list] [--tenant <tenant>]',
      'audit [list] [--tenant <tenant>] [--event <event>] [--limit <n>]',
      'HUB_URL',
      'HUB_ADMIN_TOKEN',
      '--admin-token-file',
      '--json',
    ]) {
      expect(r.out).toContain(s);
    }
  });

  it('runs as a process: hub-broker admin … --json', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'admin', 'branches', 'create', 'acme', 'spawned', '--json'], {
      env: { PATH: process.env.PATH ?? '', HUB_URL: app.url, HUB_ADMIN_TOKEN: ADMIN },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += String(d)));
    child.stderr.on('data', (d) => (err += String(d)));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    const body = JSON.parse(out);
    keys.push(body.apiKey);
    expect(await works('acme', 'spawned', body.apiKey)).toBe(true);
    expect(err).toContain('shown only this once');
  });

  it('leaves no API key or admin token in the hub’s log', () => {
    const all = lines.join('');
    expect(all).toContain('"url":"/admin/tenants"');
    expect(keys.length).toBeGreaterThanOrEqual(5);
    for (const s of [ADMIN, ...keys]) expect(all).not.toContain(s);
  });
});
