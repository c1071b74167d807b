import { describe, expect, it } from 'vitest';
import type { Hub } from '../api/v1alpha1.js';
import { hubEndpoint } from './endpoint.js';

const hub = (spec: Partial<Hub['spec']>): Hub =>
  ({ metadata: { name: 'main', namespace: 'hubs' }, spec: { service: { type: 'ClusterIP', port: 8080 }, ...spec } }) as unknown as Hub;

describe('hubEndpoint', () => {
  it('is the in-cluster Service URL by default', () => {
    expect(hubEndpoint(hub({}))).toBe('http://main.hubs.svc:8080');
  });
  it('uses https when the hub serves TLS', () => {
    expect(hubEndpoint(hub({ tls: { secretName: 't' } }))).toBe('https://main.hubs.svc:8080');
  });
  it('prefers publicURL, without a trailing slash', () => {
    expect(hubEndpoint(hub({ publicURL: 'https://hub.example.com/' }))).toBe('https://hub.example.com');
    expect(hubEndpoint(hub({ publicURL: 'https://example.com/hub' }))).toBe('https://example.com/hub');
  });
});
