import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { describeConfig, loadConfig } from './config.js';
import { createLogger } from './logger.js';

describe('logger', () => {
  it('never writes the API key or a token', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    const log = createLogger('info', sink);
    const config = loadConfig({
      env: { HUB_URL: 'https://h.example.com', TENANT_ID: 't', BRANCH_ID: 'b', API_KEY: 'SECRET-KEY', DATABASE_URL: 'postgres://u:PW@db/x', AGENT_TABLES: 'public.a' },
    });
    log.info({ config: describeConfig(config) }, 'starting');
    log.info({ apiKey: 'SECRET-KEY', token: 'SECRET-TOKEN', req: { headers: { authorization: 'Bearer SECRET-TOKEN' } } }, 'careless');
    log.warn({ auth: { token: 'SECRET-TOKEN' }, nested: { deeper: { apiKey: 'SECRET-KEY' } } }, 'deeper');
    const out = lines.join('');
    expect(out).toContain('starting');
    expect(out).not.toMatch(/SECRET-KEY|SECRET-TOKEN|:PW@/);
  });
});
