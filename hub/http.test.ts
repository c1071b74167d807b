import { connect } from 'node:net';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../test/support/pg.js';
import { startHub, type HubApp } from './app.js';
import { EXIT_CONFIG } from './config.js';
import { REDACT_PATHS } from './logger.js';
import { requestToken, seedBranch, startTestHub, testConfig, TestAgent, TEST_JWT_KEYS, tokenFor, wsUrl } from './testing/harness.js';

function selfSigned(dir: string, name: string, cn: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key };
}

function peerCertificateCN(url: string, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${url}/health`, { ca, agent: false }, (res) => {
      const cn = (res.socket as TLSSocket).getPeerCertificate().subject.CN;
      res.resume();
      resolve(Array.isArray(cn) ? cn.join() : (cn ?? ''));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HTTP server', () => {
  const db = useTestDatabase('http');
  let app: HubApp;
  const lines: string[] = [];

  beforeAll(async () => {
    // Capture the hub's log lines to check that no secret reaches them.
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    // The query-string token is allowed here, to show that even then the hub does not log it.
    const config = testConfig(db.url, { corsOrigins: ['https://console.example.com'], logLevel: 'debug', wsQueryToken: true });
    const logger = pino({ level: 'debug', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
    app = await startHub(config, { logger });
  });
  afterAll(() => app.stop());

  it('answers CORS preflights for allowed origins only', async () => {
    const ok = await fetch(`${app.url}/auth/token`, { method: 'OPTIONS', headers: { origin: 'https://console.example.com', 'access-control-request-method': 'POST' } });
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://console.example.com');
    expect(ok.headers.get('access-control-allow-headers')).toContain('authorization');
    const other = await fetch(`${app.url}/health`, { headers: { origin: 'https://evil.example.com' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('compresses larger responses with br or gzip as accepted', async () => {
    const br = await fetch(`${app.url}/metrics`, { headers: { 'accept-encoding': 'br' } });
    expect(br.headers.get('content-encoding')).toBe('br');
    expect(await br.text()).toContain('hub_broker_');
    const plain = await fetch(`${app.url}/metrics`, { headers: { 'accept-encoding': 'identity' } });
    expect(plain.headers.get('content-encoding')).toBeNull();
  });

  it('never writes an API key, a token or an authorization header to its log', async () => {
    const key = await seedBranch(app.ctx.store, 'acme', 'a');
    await requestToken(app.url, { tenant_id: 'acme', branch_id: 'a', api_key: 'wrong-but-secret' });
    const token = await tokenFor(app.url, 'acme', 'a', key);
    const agent = await TestAgent.open(`${wsUrl(app)}?access_token=${token}`, token);
    await agent.close();
    await fetch(`${app.url}/admin/tenants`, { headers: { authorization: 'Bearer admin-secret' } });
    const all = lines.join('');
    expect(all).toContain('"url":"/auth/token"');
    for (const secret of [key, token, 'wrong-but-secret', 'admin-secret']) expect(all).not.toContain(secret);
  });

  it('answers unknown paths with 404 and /ws without an upgrade with 426', async () => {
    expect((await fetch(`${app.url}/nope`)).status).toBe(404);
    expect((await fetch(`${app.url}/ws`)).status).toBe(426);
    expect((await fetch(`${app.url}/auth/token`)).status).toBe(405);
    // No admin token configured: the admin API does not exist.
    expect((await fetch(`${app.url}/admin/tenants`)).status).toBe(404);
  });

  it('answers what the HTTP parser refuses with a status, not a reset: 414, 431, 400', async () => {
    const u = new URL(app.url);
    const rawAnswer = (bytes: string) =>
      new Promise<string>((resolve) => {
        let text = '';
        const sock = connect(Number(u.port), u.hostname, () => sock.write(bytes));
        sock.on('data', (d: Buffer) => (text += d.toString('latin1')));
        sock.on('error', (e) => resolve(`error: ${e.message}`));
        sock.on('close', () => resolve(text));
      });
    expect(await rawAnswer(`GET /${'a'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`)).toMatch(/^HTTP\/1\.1 414 URI Too Long\r\n/);
    expect(await rawAnswer(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(100_000)}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 431 /);
    expect(await rawAnswer('NOT HTTP AT ALL\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    const counted = (await app.ctx.metrics.httpRefused.get()).values.map((v) => [v.labels.status, v.value]);
    expect(counted).toEqual(expect.arrayContaining([['414', 1], ['431', 1], ['400', 1]]));
  });

  it('answers /auth/token bodies it refuses with 413 and 415, and a body cut off without an error log', async () => {
    const big = await fetch(`${app.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pad: 'x'.repeat(8000) }) });
    expect([big.status, ((await big.json()) as { error: { code: string } }).error.code]).toEqual([413, 'payload_too_large']);
    const text = await fetch(`${app.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' });
    expect([text.status, ((await text.json()) as { error: { code: string } }).error.code]).toEqual([415, 'unsupported_media_type']);
    const u = new URL(app.url);
    const errorsBefore = lines.filter((l) => l.includes('"level":50')).length;
    await new Promise<void>((resolve) => {
      const sock = connect(Number(u.port), u.hostname, () => {
        sock.write('POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"tenant_id":');
        setTimeout(() => sock.destroy(), 100);
      });
      sock.on('close', () => resolve());
      sock.on('error', () => undefined);
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(lines.filter((l) => l.includes('"level":50')).length).toBe(errorsBefore);
    expect((await fetch(`${app.url}/health`)).status).toBe(200);
  });

  it('requires the admin token under /admin/ when one is configured', async () => {
    const withAdmin = await startTestHub(db.url, { adminToken: 'a-long-admin-token' });
    expect((await fetch(`${withAdmin.url}/admin/tenants`)).status).toBe(401);
    expect((await fetch(`${withAdmin.url}/admin/tenants`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect((await fetch(`${withAdmin.url}/admin/nothing-here`, { headers: { authorization: 'Bearer a-long-admin-token' } })).status).toBe(404);
    await withAdmin.stop();
  });
});

describe('TLS', () => {
  const db = useTestDatabase('tls');

  it('serves https and wss with the configured certificate and reloads it when the files change', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hubtls-'));
    const first = selfSigned(dir, 'first', 'first.test');
    const second = selfSigned(dir, 'second', 'second.test');
    const cert = join(dir, 'tls.crt');
    const key = join(dir, 'tls.key');
    execFileSync('cp', [first.cert, cert]);
    execFileSync('cp', [first.key, key]);
    const app = await startTestHub(db.url, { tlsCertFile: cert, tlsKeyFile: key });
    expect(app.url).toMatch(/^https:/);
    expect(await peerCertificateCN(app.url, readFileSync(first.cert))).toBe('first.test');

    const apiKey = await seedBranch(app.ctx.store, 'acme', 'secure');
    const res = await new Promise<{ token: string }>((resolve, reject) => {
      const req = httpsRequest(`${app.url}/auth/token`, { method: 'POST', ca: readFileSync(first.cert), headers: { 'content-type': 'application/json' } }, (r) => {
        let body = '';
        r.on('data', (c) => (body += c));
        r.on('end', () => resolve(JSON.parse(body) as { token: string }));
      });
      req.on('error', reject);
      req.end(JSON.stringify({ tenant_id: 'acme', branch_id: 'secure', api_key: apiKey }));
    });
    const ws = new WebSocket(`${app.url.replace('https', 'wss')}/ws`, ['hubsync.v1'], { ca: readFileSync(first.cert), headers: { authorization: `Bearer ${res.token}` } });
    const hello = await new Promise<string>((resolve, reject) => {
      ws.once('message', (d) => resolve(String(d)));
      ws.once('error', reject);
    });
    expect(JSON.parse(hello)).toMatchObject({ type: 'hello', branch_id: 'secure' });
    ws.close();

    // A renewal replaces both files (as cert-manager does through a Secret).
    execFileSync('cp', [second.key, `${key}.new`]);
    execFileSync('cp', [second.cert, `${cert}.new`]);
    renameSync(`${key}.new`, key);
    renameSync(`${cert}.new`, cert);
    await expect.poll(() => peerCertificateCN(app.url, readFileSync(second.cert)).catch(() => ''), { timeout: 10_000 }).toBe('second.test');
    await app.stop();
  });
});

describe('hub-broker hub', () => {
  const db = useTestDatabase('cli');
  const cli = fileURLToPath(new URL('../cli/hub-broker.ts', import.meta.url));
  const run = (args: string[], env: Record<string, string>) =>
    spawnSync(process.execPath, ['--import', 'tsx', cli, 'hub', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8', timeout: 20_000 });

  it('prints its options with --help', () => {
    const r = run(['--help'], {});
    expect(r.status).toBe(0);
    for (const s of ['--config', '--port', 'DATABASE_URL', 'HUB_JWT_KEYS', 'REDIS_URL', 'HUB_MAX_FRAME_BYTES']) expect(r.stdout).toContain(s);
  });

  it('stops with one line naming a bad or missing setting and exit code 78', () => {
    const missing = run([], { HUB_JWT_KEYS: TEST_JWT_KEYS });
    expect(missing.status).toBe(EXIT_CONFIG);
    expect(missing.stderr.trim()).toBe('hub-broker hub: invalid setting DATABASE_URL: is required');
    const bad = run(['--port', 'x'], { DATABASE_URL: 'postgres://u@127.0.0.1:1/db', HUB_JWT_KEYS: TEST_JWT_KEYS });
    expect(bad.status).toBe(EXIT_CONFIG);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain('--port');
  });

  it('runs until SIGTERM, then shuts down gracefully with exit code 0', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', cli, 'hub', '--host', '127.0.0.1', '--port', '0'], {
      env: { PATH: process.env.PATH ?? '', DATABASE_URL: db.url, HUB_JWT_KEYS: TEST_JWT_KEYS, HUB_ARGON2_MEMORY_KIB: '256', HUB_ARGON2_TIME_COST: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += String(d)));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await expect.poll(() => /"url":"(http:[^"]+)"/.exec(out)?.[1], { timeout: 15_000 }).toBeTruthy();
    const url = /"url":"(http:[^"]+)"/.exec(out)?.[1] as string;
    expect((await fetch(`${url}/health`)).status).toBe(200);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toContain('hub stopped');
  });
});
