import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Branch, Hub, Tenant } from '../api/v1alpha1.js';
import { connectingBranches, desiredReplicas, type ReplicaPolicy } from './replicas.js';

const policy = (p: Partial<ReplicaPolicy> = {}): ReplicaPolicy => ({ min: 1, max: 10, connectionsPerReplica: 10_000, headroom: 2, ...p });

describe('desiredReplicas', () => {
  it.each([
    // [branches, policy, replicas, needed, capped]
    [0, policy(), 1, 0, false],
    [1, policy(), 1, 1, false],
    [5_000, policy(), 1, 1, false],
    [5_001, policy(), 2, 2, false],
    [10_000, policy(), 2, 2, false],
    [49_999, policy(), 10, 10, false],
    [50_001, policy(), 10, 11, true],
    [0, policy({ min: 0 }), 0, 0, false],
    [1, policy({ min: 0 }), 1, 1, false],
    [3, policy({ min: 0, max: 5, connectionsPerReplica: 1, headroom: 1 }), 3, 3, false],
    [7, policy({ min: 0, max: 5, connectionsPerReplica: 1, headroom: 1 }), 5, 7, true],
    [2, policy({ min: 3, max: 5, connectionsPerReplica: 1, headroom: 1 }), 3, 2, false],
    [4, policy({ min: 1, max: 1, connectionsPerReplica: 1, headroom: 1 }), 1, 4, true],
    // Floating point: 30 × 1.1 is 33.000000000000004, which is still one replica of 33.
    [30, policy({ connectionsPerReplica: 33, headroom: 1.1 }), 1, 1, false],
    [31, policy({ connectionsPerReplica: 33, headroom: 1.1 }), 2, 2, false],
    [3, policy({ connectionsPerReplica: 2, headroom: 1.5 }), 3, 3, false],
  ])('%i branches with %o → %i replicas (needed %i, capped %s)', (branches, p, replicas, needed, capped) => {
    expect(desiredReplicas(p, branches)).toEqual({ replicas, needed, capped });
  });

  const policies = fc
    .record({
      min: fc.integer({ min: 0, max: 20 }),
      span: fc.integer({ min: 0, max: 20 }),
      connectionsPerReplica: fc.integer({ min: 1, max: 50_000 }),
      headroom: fc.double({ min: 1, max: 10, noNaN: true }),
    })
    .map(({ min, span, connectionsPerReplica, headroom }) => ({ min, max: Math.max(1, min + span), connectionsPerReplica, headroom }));

  it('always stays within [min, max]', () => {
    fc.assert(
      fc.property(policies, fc.nat(1_000_000), (p, n) => {
        const { replicas } = desiredReplicas(p, n);
        return replicas >= p.min && replicas <= p.max;
      }),
    );
  });

  it('never decreases when branches are added', () => {
    fc.assert(
      fc.property(policies, fc.nat(1_000_000), fc.nat(1_000), (p, n, more) => desiredReplicas(p, n + more).replicas >= desiredReplicas(p, n).replicas),
    );
  });

  it('has room for branches × headroom unless capped, with no replica to spare', () => {
    fc.assert(
      fc.property(policies, fc.nat(1_000_000), (p, n) => {
        const d = desiredReplicas(p, n);
        const load = n * p.headroom;
        const enough = d.capped || d.replicas * p.connectionsPerReplica >= load - 1e-6;
        const minimal = d.replicas === p.min || (d.replicas - 1) * p.connectionsPerReplica < load + 1e-6;
        return enough && minimal && d.capped === d.needed > p.max;
      }),
    );
  });
});

describe('connectingBranches', () => {
  const hub = { metadata: { name: 'h', namespace: 'ns' }, spec: {} } as unknown as Hub;
  const tenant = (name: string, extra: { hub?: string; ns?: string; suspended?: boolean; deleting?: boolean } = {}) =>
    ({
      metadata: { name, namespace: extra.ns ?? 'ns', ...(extra.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
      spec: { hubRef: { name: extra.hub ?? 'h' }, suspended: extra.suspended ?? false },
    }) as unknown as Tenant;
  const branch = (name: string, tenantName: string, extra: { ns?: string; suspended?: boolean; deleting?: boolean } = {}) =>
    ({
      metadata: { name, namespace: extra.ns ?? 'ns', ...(extra.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
      spec: { tenantRef: { name: tenantName }, suspended: extra.suspended ?? false },
    }) as unknown as Branch;

  it('counts the branches of the hub’s tenants that may connect', () => {
    const tenants = [
      tenant('a'),
      tenant('b', { suspended: true }),
      tenant('c', { hub: 'other' }),
      tenant('d', { deleting: true }),
      tenant('a', { ns: 'elsewhere' }),
    ];
    const branches = [
      branch('a1', 'a'),
      branch('a2', 'a'),
      branch('a3', 'a', { suspended: true }),
      branch('a4', 'a', { deleting: true }),
      branch('b1', 'b'),
      branch('c1', 'c'),
      branch('d1', 'd'),
      branch('x1', 'a', { ns: 'elsewhere' }),
      branch('z1', 'missing'),
    ];
    expect(connectingBranches(hub, tenants, branches)).toEqual({ tenants: 3, branches: 2 });
  });
});
