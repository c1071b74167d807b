import { describe, expect, it } from 'vitest';
import type { TenantView } from './directory.js';
import { admitBatch, conflictRecipient, receives, serversToNotify } from './routing.js';
import { encodeHlc } from '../protocol/index.js';
import { change } from './testing/harness.js';

const tenant: TenantView = {
  id: 'acme',
  active: true,
  schema: 'tenant_acme',
  rate: null,
  policy: { conflict_strategy: 'last-write-wins', branch_priority: [] },
  routing: null,
  routes: [],
  branches: new Map([
    ['a', { active: true }],
    ['b', { active: true }],
  ]),
};
const sender = { tenantId: 'acme', branchId: 'a' };
const batch = (over: object = {}) => ({ type: 'sync.batch' as const, id: '1', batch_id: 'b', changes: [change('a', 1)], ...over });

describe('routing', () => {
  it('admits a batch from the sender to its tenant, or to one other branch of it', () => {
    expect(admitBatch(sender, batch(), tenant, 10)).toEqual({ ok: true, target: null });
    expect(admitBatch(sender, batch({ to: 'b' }), tenant, 10)).toEqual({ ok: true, target: 'b' });
  });

  it('refuses forged origins, too many changes, unknown or own targets', () => {
    const reason = (b: object, max = 10) => {
      const r = admitBatch(sender, batch(b), tenant, max);
      return r.ok ? 'ok' : `${r.reason}/${r.error.code}`;
    };
    expect(reason({ changes: [change('b', 1)] })).toBe('forged_origin/forged_origin');
    expect(reason({ changes: [change('a', 1), change('a', 2)] }, 1)).toBe('batch_too_large/batch_too_large');
    expect(reason({ to: 'elsewhere' })).toBe('unknown_target/unknown_target');
    expect(reason({ to: 'a' })).toBe('self_target/forbidden_target');
    // An HLC further ahead than the limit, up to the largest one a bigint holds.
    const ahead = (hlc: string) => {
      const r = admitBatch(sender, batch({ changes: [{ ...change('a', 1), hlc }] }), tenant, 10, Date.UTC(2030, 0, 1));
      return r.ok ? 'ok' : `${r.reason}/${r.error.code}: ${r.error.message}`;
    };
    expect(ahead('7fffffffffffffff')).toMatch(/^clock_ahead\/clock_ahead: changes\.0\.hlc: 7fffffffffffffff is \d+ s beyond the hub's clock/);
    expect(ahead(encodeHlc({ wall: Date.UTC(2030, 0, 1) + 1, logical: 0 }))).toMatch(/^clock_ahead/);
    expect(ahead(encodeHlc({ wall: Date.UTC(2030, 0, 1), logical: 65535 }))).toBe('ok');
    // Schema changes come through the admin API only.
    expect(reason({ changes: [{ ...change('a', 1), table: 'hubsync.schema' }] })).toBe('forbidden_table/forbidden_table');
  });

  it('sends entries to every other branch, or to the target only', () => {
    expect(receives('b', 'a', null)).toBe(true);
    expect(receives('a', 'a', null)).toBe(false);
    expect(receives('b', 'a', 'c')).toBe(false);
    expect(receives('c', 'a', 'c')).toBe(true);
  });

  it('notifies each other instance holding a receiving branch once', () => {
    const loc = (server: string) => ({ server, gen: 1, at: 0 });
    const locations = new Map([
      ['a', loc('s1')],
      ['b', loc('s2')],
      ['c', loc('s2')],
      ['d', loc('s3')],
    ]);
    expect(serversToNotify(locations, 'a', null, 's1').sort()).toEqual(['s2', 's3']);
    expect(serversToNotify(locations, 'd', null, 's1')).toEqual(['s2']);
    expect(serversToNotify(locations, 'a', 'd', 's1')).toEqual(['s3']);
    expect(serversToNotify(locations, 'a', 'b', 's2')).toEqual([]);
  });

  it('forwards a conflict to the losing writer when it is another branch of the tenant', () => {
    expect(conflictRecipient('a', 'b', tenant)).toBe('b');
    expect(conflictRecipient('a', 'a', tenant)).toBeNull();
    expect(conflictRecipient('a', 'gone', tenant)).toBeNull();
  });
});
