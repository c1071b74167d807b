import { describe, expect, it } from 'vitest';
import type { TenantSpec } from '../api/v1alpha1.js';
import { storeBranchRouting, storeTenantSpec } from './tenant-spec.js';

const spec = (over: Partial<TenantSpec> = {}): TenantSpec => ({
  hubRef: { name: 'h' },
  suspended: false,
  conflictStrategy: 'LastWriteWins',
  deletionPolicy: 'Retain',
  ...over,
});

describe('storeTenantSpec', () => {
  it('maps the defaults', () => {
    expect(storeTenantSpec(spec())).toEqual({
      status: 'active',
      maxBranches: null,
      rateLimit: null,
      conflictStrategy: 'last-write-wins',
      branchPriority: [],
      deletionPolicy: 'retain',
      routes: [],
      tables: [],
    });
  });

  it('maps every field', () => {
    expect(
      storeTenantSpec(
        spec({
          suspended: true,
          maxBranches: 3,
          rateLimit: { messagesPerSecond: 12.5, burst: 40 },
          conflictStrategy: 'BranchPriority',
          branchPriority: ['hq', 'b2'],
          deletionPolicy: 'Delete',
          routes: [
            { name: 'up', tables: ['sales.*'], from: ['store'], to: ['hq'] },
            { name: 'down', tables: ['public.price'], from: ['hq'], to: ['store'], filter: 'region = branch.region' },
          ],
          tables: [{ name: 'public.product', additive: ['stock'] }, { name: 'public.customer', merge: 'Column' }, { name: 'public.sale', merge: 'Row' }],
        }),
      ),
    ).toEqual({
      status: 'suspended',
      maxBranches: 3,
      rateLimit: { messagesPerSecond: 12.5, burst: 40 },
      conflictStrategy: 'branch-priority',
      branchPriority: ['hq', 'b2'],
      deletionPolicy: 'delete',
      routes: [
        { name: 'up', tables: ['sales.*'], from: ['store'], to: ['hq'] },
        { name: 'down', tables: ['public.price'], from: ['hq'], to: ['store'], filter: 'region = branch.region' },
      ],
      tables: [
        { name: 'public.product', additive: ['stock'] },
        { name: 'public.customer', merge: 'column', additive: [] },
        { name: 'public.sale', merge: 'row', additive: [] },
      ],
    });
  });

  it('clears a removed limit (absent in spec → null, not "unchanged")', () => {
    expect(storeTenantSpec(spec()).maxBranches).toBeNull();
    expect(storeTenantSpec(spec()).rateLimit).toBeNull();
  });
});

describe('storeBranchRouting', () => {
  it('gives absent groups and attributes as empty, so removing them from the spec clears them', () => {
    expect(storeBranchRouting({})).toEqual({ groups: [], attributes: {} });
    expect(storeBranchRouting({ groups: ['store'], attributes: { store_id: '17' } })).toEqual({ groups: ['store'], attributes: { store_id: '17' } });
  });
});
