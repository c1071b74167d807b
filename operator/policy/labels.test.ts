import { describe, expect, it } from 'vitest';
import { childLabels, isInheritable } from './labels.js';

describe('labels children inherit', () => {
  it('never copies Argo CD tracking labels', () => {
    expect(isInheritable('app.kubernetes.io/instance')).toBe(false);
    expect(isInheritable('argocd.argoproj.io/instance')).toBe(false);
    expect(isInheritable('argocd.argoproj.io/secret-type')).toBe(false);
  });

  it('copies ordinary labels, under the operator’s own', () => {
    const parent = {
      team: 'payments',
      'app.kubernetes.io/part-of': 'retail',
      'app.kubernetes.io/instance': 'tenants-app',
      'argocd.argoproj.io/instance': 'tenants-app',
      'hubbroker.io/hub': 'spoofed',
    };
    expect(childLabels(parent, { 'hubbroker.io/hub': 'main', 'app.kubernetes.io/managed-by': 'hub-broker-operator' })).toEqual({
      team: 'payments',
      'app.kubernetes.io/part-of': 'retail',
      'hubbroker.io/hub': 'main',
      'app.kubernetes.io/managed-by': 'hub-broker-operator',
    });
  });

  it('handles a parent without labels', () => {
    expect(childLabels(undefined, { a: 'b' })).toEqual({ a: 'b' });
  });
});
