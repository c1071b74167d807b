import { describe, expect, it } from 'vitest';
import type { Branch } from '../api/v1alpha1.js';
import { renderCredentials, secretValue } from './credentials.js';

const branch: Branch = {
  metadata: { name: 'store-7', namespace: 'acme', uid: 'b-uid', labels: { region: 'north', 'app.kubernetes.io/instance': 'acme-app' } },
  spec: { tenantRef: { name: 'acme' }, suspended: false, credentials: { gracePeriodSeconds: 3600 } },
};

describe('renderCredentials', () => {
  const secret = renderCredentials(branch, { hubUrl: 'https://hub.example.com', apiKey: 'k3y', rotate: '' });

  it('holds exactly what a branch agent reads from its environment', () => {
    expect(Object.keys(secret.data).sort()).toEqual(['API_KEY', 'BRANCH_ID', 'HUB_URL', 'TENANT_ID']);
    expect(secretValue(secret, 'HUB_URL')).toBe('https://hub.example.com');
    expect(secretValue(secret, 'TENANT_ID')).toBe('acme');
    expect(secretValue(secret, 'BRANCH_ID')).toBe('store-7');
    expect(secretValue(secret, 'API_KEY')).toBe('k3y');
    expect(secretValue(secret, 'MISSING')).toBeUndefined();
  });

  it('is named <branch>-credentials, owned by the Branch, labelled, without tracking labels', () => {
    expect(secret.metadata.name).toBe('store-7-credentials');
    expect(secret.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'Branch', name: 'store-7', uid: 'b-uid', controller: true });
    expect(secret.metadata.labels).toMatchObject({
      region: 'north',
      'hubbroker.io/tenant': 'acme',
      'hubbroker.io/branch': 'store-7',
      'app.kubernetes.io/managed-by': 'hub-broker-operator',
    });
    expect(secret.metadata.labels).not.toHaveProperty('app.kubernetes.io/instance');
    expect(secret.metadata.annotations).toEqual({ 'hubbroker.io/rotate': '' });
  });
});
