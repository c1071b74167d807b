import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, SETTINGS, settingsTable } from './config.js';

const KEY = Buffer.alloc(32, 1).toString('base64url');
const BASE = { DATABASE_URL: 'postgres://u@db/hub', HUB_JWT_KEYS: `a:${KEY}` };

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('hub configuration', () => {
  it('has a default for every optional setting', () => {
    const c = loadConfig({ env: BASE });
    expect(c).toMatchObject({
      host: '0.0.0.0',
      port: 8080,
      redisUrl: undefined,
      redisPrefix: 'hb:',
      tokenTtlSeconds: 900,
      maxFrameBytes: 1024 * 1024,
      maxChangesPerBatch: 1000,
      logLevel: 'info',
      adminToken: undefined,
    });
    expect(c.jwtKeys).toHaveLength(1);
    expect(c.instanceId).toMatch(/^[a-z0-9-]+$/);
  });

  it('stops with one line naming a missing or bad setting', () => {
    expect(errorOf(() => loadConfig({ env: { HUB_JWT_KEYS: BASE.HUB_JWT_KEYS } })).message).toBe('DATABASE_URL: is required');
    expect(errorOf(() => loadConfig({ env: { DATABASE_URL: BASE.DATABASE_URL } })).setting).toBe('HUB_JWT_KEYS');
    expect(errorOf(() => loadConfig({ env: { ...BASE, HUB_PORT: 'eighty' } })).message).toMatch(/^HUB_PORT: must be an integer/);
    expect(errorOf(() => loadConfig({ env: { ...BASE, HUB_JWT_KEYS: 'a:c2hvcnQ' } })).message).toMatch(/at least 32 bytes/);
    expect(errorOf(() => loadConfig({ env: { ...BASE, HUB_TENANT_RATE: '5' } })).setting).toBe('HUB_TENANT_RATE');
    expect(errorOf(() => loadConfig({ env: { ...BASE, REDIS_URL: 'http://x' } })).setting).toBe('REDIS_URL');
    expect(errorOf(() => loadConfig({ env: { ...BASE, HUB_TLS_CERT_FILE: '/c.pem' } })).setting).toBe('HUB_TLS_KEY_FILE');
    for (const e of [errorOf(() => loadConfig({ env: { ...BASE, HUB_PORT: '-1' } }))]) expect(e.message).not.toContain('\n');
  });

  it('reads the file, then the environment, then flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hubcfg-'));
    const file = join(dir, 'hub.yaml');
    writeFileSync(file, 'port: 9000\nredisPrefix: "file:"\nmaxChangesPerBatch: 50\ntenantRate: "10:20"\njwtKeys:\n  - "b:' + KEY + '"\n  - "a:' + KEY + '"\n');
    const c = loadConfig({
      env: { DATABASE_URL: BASE.DATABASE_URL, REDIS_PREFIX: 'env:', HUB_MAX_CHANGES_PER_BATCH: '60' },
      argv: ['--config', file, '--max-changes-per-batch', '70', '--host=127.0.0.1'],
    });
    expect(c).toMatchObject({ port: 9000, redisPrefix: 'env:', maxChangesPerBatch: 70, host: '127.0.0.1', tenantRate: { perSecond: 10, burst: 20 } });
    expect(c.jwtKeys.map((k) => k.kid)).toEqual(['b', 'a']);
    writeFileSync(file, 'prot: 9000\n');
    expect(errorOf(() => loadConfig({ env: BASE, argv: ['--config', file] })).message).toMatch(/prot: unknown setting/);
    expect(errorOf(() => loadConfig({ env: BASE, argv: ['--bogus', '1'] })).setting).toBe('--bogus');
  });

  it('takes Redis Sentinel instead of a Redis URL, and refuses half or both', () => {
    const c = loadConfig({ env: { ...BASE, REDIS_SENTINELS: 's0:26379, [::1]:26380', REDIS_SENTINEL_NAME: 'mymaster', REDIS_PASSWORD: 'pw' } });
    expect(c).toMatchObject({
      redisUrl: undefined,
      redisSentinels: [
        { host: 's0', port: 26379 },
        { host: '::1', port: 26380 },
      ],
      redisSentinelName: 'mymaster',
      redisPassword: 'pw',
    });
    expect(errorOf(() => loadConfig({ env: { ...BASE, REDIS_SENTINELS: 's0' } })).message).toBe('REDIS_SENTINELS: "s0" is not host:port');
    expect(errorOf(() => loadConfig({ env: { ...BASE, REDIS_SENTINELS: 's0:26379' } })).message).toBe('REDIS_SENTINEL_NAME: is required with REDIS_SENTINELS');
    expect(errorOf(() => loadConfig({ env: { ...BASE, REDIS_SENTINELS: 's0:26379', REDIS_SENTINEL_NAME: 'm', REDIS_URL: 'redis://r' } })).message).toBe(
      'REDIS_SENTINELS: set REDIS_URL or REDIS_SENTINELS, not both',
    );
    expect(errorOf(() => loadConfig({ env: { ...BASE, REDIS_PASSWORD: 'pw' } })).setting).toBe('REDIS_SENTINELS');
  });

  it('turns a rate limit off with "off"', () => {
    expect(loadConfig({ env: { ...BASE, HUB_BRANCH_RATE: 'off' } }).branchRate).toBeUndefined();
  });

  it('documents every setting with the environment names the operator sets', () => {
    const envs = SETTINGS.map((s) => s.env);
    for (const name of ['DATABASE_URL', 'REDIS_URL', 'REDIS_PREFIX', 'HUB_HOST', 'HUB_PORT', 'HUB_ADMIN_TOKEN', 'HUB_JWT_KEYS', 'HUB_INSTANCE_ID', 'HUB_TLS_CERT_FILE', 'HUB_TLS_KEY_FILE', 'HUB_LOG_LEVEL', 'HUB_TOKEN_TTL_SECONDS', 'HUB_MAX_FRAME_BYTES', 'HUB_MAX_CHANGES_PER_BATCH', 'HUB_MAX_CONNECTIONS', 'HUB_TENANT_RATE', 'HUB_BRANCH_RATE', 'HUB_AUTH_RATE', 'HUB_RETENTION_MAX_AGE_SECONDS', 'HUB_RETENTION_MAX_ENTRIES', 'HUB_SEND_PAUSE_BYTES', 'HUB_SEND_CLOSE_BYTES', 'HUB_HEARTBEAT_MS', 'HUB_CORS_ORIGINS', 'HUB_ARGON2_MEMORY_KIB', 'HUB_ARGON2_TIME_COST', 'HUB_KEY_GRACE_SECONDS']) {
      expect(envs).toContain(name);
    }
    expect(settingsTable().split('\n')).toHaveLength(SETTINGS.length + 2);
  });
});

describe('config/hub.example.yaml', () => {
  it('is a valid configuration file', () => {
    const c = loadConfig({ env: BASE, argv: ['--config', new URL('../config/hub.example.yaml', import.meta.url).pathname] });
    expect(c.port).toBe(8080);
  });
});
