import { describe, expect, it } from 'vitest';
import { ConfigError, describeConfig, hubEndpoints, isLoopbackHost, loadConfig, SETTINGS, settingsMarkdown, type AgentConfig } from './config.js';

const ENV = {
  HUB_URL: 'https://hub.example.com',
  TENANT_ID: 'acme',
  BRANCH_ID: 'store-1',
  API_KEY: 'k'.repeat(43),
  DATABASE_URL: 'postgres://agent@db/shop',
  AGENT_TABLES: 'public.customer,public.orders:branch-priority',
};

function files(map: Record<string, string>): (p: string) => string {
  return (p) => {
    const f = map[p];
    if (f === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
    return f;
  };
}

function fails(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('reads the environment the operator writes into a Branch secret, with documented defaults', () => {
    const c = loadConfig({ env: ENV, argv: [] });
    expect(c).toMatchObject({
      hubUrl: 'https://hub.example.com',
      tenantId: 'acme',
      branchId: 'store-1',
      databaseUrl: 'postgres://agent@db/shop',
      tables: [{ name: 'public.customer' }, { name: 'public.orders', conflictStrategy: 'branch-priority' }],
      batchSize: 100,
      pollMs: 2000,
      codec: 'msgpack',
      compression: 'off',
      allowInsecure: false,
      metricsPort: undefined,
      caFile: undefined,
    });
  });

  it('layers file, then environment, then flags', () => {
    const yaml = `
hubUrl: https://from-file.example.com
tenantId: acme
branchId: store-1
databaseUrl: postgres://file@db/shop
batchSize: 10
pollMs: 500
tables:
  - public.customer
  - name: public.orders
    conflictStrategy: branch-priority
`;
    const c = loadConfig({
      env: { API_KEY: 'x'.repeat(40), AGENT_BATCH_SIZE: '20', AGENT_CONFIG: '/etc/agent.yaml' },
      argv: ['--batch-size', '30', '--codec=json'],
      readFile: files({ '/etc/agent.yaml': yaml }),
    });
    expect(c).toMatchObject({
      configFile: '/etc/agent.yaml',
      hubUrl: 'https://from-file.example.com',
      batchSize: 30,
      pollMs: 500,
      codec: 'json',
      tables: [{ name: 'public.customer' }, { name: 'public.orders', conflictStrategy: 'branch-priority' }],
    });
  });

  it('reads the API key from API_KEY_FILE (a mounted secret), trimmed', () => {
    const { API_KEY: _omit, ...env } = ENV;
    const c = loadConfig({ env: { ...env, API_KEY_FILE: '/run/secrets/key' }, readFile: files({ '/run/secrets/key': 'secret-key\n' }) });
    expect(c.apiKey).toBe('secret-key');
  });

  it('never takes the API key from the command line or the config file', () => {
    expect(fails(() => loadConfig({ env: ENV, argv: ['--api-key', 'abc'] })).message).toMatch(/never taken from the command line/);
    expect(
      fails(() => loadConfig({ env: { AGENT_CONFIG: 'a.yaml' }, readFile: files({ 'a.yaml': 'apiKey: abc' }) })).message,
    ).toMatch(/does not belong in the config file/);
  });

  it('keeps the API key out of what it logs', () => {
    const shown = JSON.stringify(describeConfig(loadConfig({ env: { ...ENV, DATABASE_URL: 'postgres://u:pw@db/x' } })));
    expect(shown).not.toContain(ENV.API_KEY);
    expect(shown).not.toContain(':pw@');
  });

  it.each<[Record<string, string>, string[], RegExp]>([
    [{ ...ENV, HUB_URL: '' }, [], /^HUB_URL: required/],
    [{ ...ENV, API_KEY: '' }, [], /^API_KEY: required .*API_KEY or API_KEY_FILE/],
    [{ ...ENV, TENANT_ID: 'Acme!' }, [], /^TENANT_ID: must be a DNS-1123 label/],
    [{ ...ENV, AGENT_BATCH_SIZE: 'lots' }, [], /^AGENT_BATCH_SIZE: must be an integer from 1 to 10000/],
    [{ ...ENV, AGENT_POLL_MS: '0' }, [], /^AGENT_POLL_MS: must be an integer/],
    [{ ...ENV, AGENT_CODEC: 'xml' }, [], /^AGENT_CODEC: must be json or msgpack/],
    [{ ...ENV, AGENT_COMPRESSION: 'gzip' }, [], /^AGENT_COMPRESSION: must be off or permessage-deflate/],
    [{ ...ENV, AGENT_TABLES: 'customer' }, [], /^AGENT_TABLES: table "customer" must be schema-qualified/],
    [{ ...ENV, AGENT_TABLES: 'public.a:newest' }, [], /^AGENT_TABLES: conflict strategy must be/],
    [{ ...ENV, AGENT_TABLES: 'public.a,public.a' }, [], /listed twice/],
    [{ ...ENV, AGENT_METRICS_PORT: '70000' }, [], /^AGENT_METRICS_PORT: must be an integer from 1 to 65535/],
    [{ ...ENV, DATABASE_URL: 'mysql://x' }, [], /^DATABASE_URL: must be a postgres/],
    [{ ...ENV, AGENT_ALLOW_INSECURE: 'maybe' }, [], /^AGENT_ALLOW_INSECURE: must be true or false/],
    [ENV, ['--batch-size', '0'], /^--batch-size: must be an integer/],
    [ENV, ['--nope'], /unknown option --nope/],
    [ENV, ['--batch-size'], /--batch-size: needs a value/],
    [{ ...ENV, HUB_URL: 'http://hub.example.com' }, [], /^HUB_URL: plain http:\/\/ to hub.example.com would send the API key unencrypted/],
    [{ ...ENV, HUB_URL: 'ftp://hub' }, [], /^HUB_URL: scheme must be/],
  ])('refuses a bad setting with one line naming it (%#)', (env, argv, message) => {
    const err = fails(() => loadConfig({ env, argv }));
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('\n');
  });

  it('names the config file key when the bad value came from the file', () => {
    const err = fails(() => loadConfig({ env: { ...ENV, AGENT_CONFIG: 'c.yaml' }, readFile: files({ 'c.yaml': 'batchSize: -1' }) }));
    expect(err.message).toMatch(/^batchSize \(config file\): must be an integer/);
    expect(fails(() => loadConfig({ env: { AGENT_CONFIG: 'missing.yaml' }, readFile: files({}) })).message).toMatch(/^config file missing.yaml: ENOENT/);
    expect(fails(() => loadConfig({ env: { AGENT_CONFIG: 'c.yaml' }, readFile: files({ 'c.yaml': 'typo: 1' }) })).message).toMatch(/unknown setting "typo"/);
  });

  it('asks only for what a command needs', () => {
    const c = loadConfig({ env: { DATABASE_URL: 'postgres://x@y/z' } }, ['database']);
    expect(c.databaseUrl).toBe('postgres://x@y/z');
    expect(fails(() => loadConfig({ env: { DATABASE_URL: 'postgres://x@y/z' } }, ['database', 'tables'])).message).toMatch(/^AGENT_TABLES: required/);
  });

  it('allows plain ws:// to loopback, and elsewhere only when explicitly allowed', () => {
    expect(loadConfig({ env: { ...ENV, HUB_URL: 'http://127.0.0.1:8080' } }).hubUrl).toBe('http://127.0.0.1:8080');
    expect(loadConfig({ env: { ...ENV, HUB_URL: 'ws://hub.lan', AGENT_ALLOW_INSECURE: 'true' } }).allowInsecure).toBe(true);
    expect(loadConfig({ env: { ...ENV, HUB_URL: 'ws://hub.lan' }, argv: ['--allow-insecure'] }).allowInsecure).toBe(true);
  });
});

describe('hubEndpoints', () => {
  it('derives the token and socket URLs from an https or wss base, keeping a path prefix', () => {
    const e = hubEndpoints('https://hub.example.com/sync/', false);
    expect([e.tokenUrl.href, e.wsUrl.href, e.secure]).toEqual(['https://hub.example.com/sync/auth/token', 'wss://hub.example.com/sync/ws', true]);
    const w = hubEndpoints('wss://hub.example.com:8443', false);
    expect([w.tokenUrl.href, w.wsUrl.href]).toEqual(['https://hub.example.com:8443/auth/token', 'wss://hub.example.com:8443/ws']);
    const l = hubEndpoints('http://localhost:8080', false);
    expect([l.tokenUrl.href, l.wsUrl.href, l.loopback]).toEqual(['http://localhost:8080/auth/token', 'ws://localhost:8080/ws', true]);
  });

  it('knows loopback hosts', () => {
    for (const h of ['localhost', '127.0.0.1', '127.8.9.10', '[::1]', 'a.localhost']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['10.0.0.1', 'localhost.example.com', '127.0.0.1.nip.io', '::2', '128.0.0.1']) expect(isLoopbackHost(h), h).toBe(false);
  });

  it('refuses credentials in the URL', () => {
    expect(() => hubEndpoints('https://user:pw@hub.example.com', false)).toThrow(/must not carry credentials/);
  });
});

describe('SETTINGS', () => {
  it('documents every setting of the config object, with an environment variable or file key', () => {
    const documented = new Set(SETTINGS.map((s) => s.key));
    const c = loadConfig({ env: ENV });
    for (const k of Object.keys(c) as (keyof AgentConfig)[]) expect(documented.has(k), k).toBe(true);
    for (const s of SETTINGS) {
      expect(s.description.length).toBeGreaterThan(10);
      expect(s.env ?? s.file).toBeDefined();
    }
  });
});

describe('settingsMarkdown', () => {
  it('renders one README row per setting, API key without a flag', () => {
    const md = settingsMarkdown().split('\n');
    expect(md).toHaveLength(SETTINGS.length + 2);
    expect(md.find((l) => l.startsWith('| `API_KEY` |'))).toBe('| `API_KEY` |  |  | required | the branch API key; never accepted on the command line or in the config file, never logged |');
    expect(md.find((l) => l.startsWith('| `AGENT_BATCH_SIZE`'))).toContain('| `--batch-size` | `batchSize` | `100` |');
  });
});

describe('config/agent.example.yaml', () => {
  it('is a valid configuration with every documented key', async () => {
    const { readFileSync } = await import('node:fs');
    const path = new URL('../config/agent.example.yaml', import.meta.url);
    const c = loadConfig({
      env: { AGENT_CONFIG: 'agent.yaml' },
      readFile: (p) => (p === 'agent.yaml' ? readFileSync(path, 'utf8') : 'the-key\n'),
    });
    expect(c).toMatchObject({ tenantId: 'retail', branchId: 'store-1', apiKey: 'the-key', batchSize: 100, compression: 'off' });
    expect(c.tables.map((t) => t.name)).toEqual(['public.customer', 'public.orders', 'public.price_list']);
  });
});
