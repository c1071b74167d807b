import { describe, expect, it } from 'vitest';
import { StoreError } from '../../hub/store/index.js';
import { KubeError } from '../kube/client.js';
import { ReconcileFailure, toFailure } from './errors.js';

const sysError = (code: string, message = code) => Object.assign(new Error(message), { code });

describe('toFailure', () => {
  it.each([
    [new StoreError('limit_exceeded', 'tenant t already has its maximum of 2 branches'), 'MaxBranchesExceeded'],
    [new StoreError('invalid', 'maxBranches must be a non-negative integer'), 'InvalidSpec'],
    [new StoreError('conflict', 'schema exists'), 'ReconcileError'],
    [new KubeError(403, 'Forbidden', 'secrets is forbidden'), 'ApiError'],
    [sysError('ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.1:5432'), 'DatabaseUnavailable'],
    [sysError('57P01', 'terminating connection due to administrator command'), 'DatabaseUnavailable'],
    [sysError('28P01', 'password authentication failed'), 'DatabaseUnavailable'],
    [new Error('Connection terminated unexpectedly'), 'DatabaseUnavailable'],
    [new Error('something else'), 'ReconcileError'],
    ['a string', 'ReconcileError'],
  ])('%s → %s', (err, reason) => {
    expect(toFailure(err).reason).toBe(reason);
  });

  it('keeps a failure as it is', () => {
    const f = new ReconcileFailure('HubNotFound', 'Hub x not found');
    expect(toFailure(f)).toBe(f);
  });
});
