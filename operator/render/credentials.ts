/** A Branch's credentials Secret: what a branch agent needs in its environment (`envFrom`). */
import type { V1Secret } from '@kubernetes/client-node';
import { ANNOTATION, LABEL, MANAGED_BY, credentialsSecretName, type Branch } from '../api/v1alpha1.js';
import type { KubeObject } from '../kube/resources.js';
import { childLabels } from '../policy/labels.js';
import { controllerRef } from './owner.js';

export interface CredentialsInput {
  readonly hubUrl: string;
  readonly apiKey: string;
  /** The spec.credentials.rotate value this key answers. */
  readonly rotate: string;
  /** The hub database does not know this key yet (first half of a rotation). */
  readonly pending?: boolean;
}

export type CredentialsSecret = V1Secret & KubeObject & { stringData?: undefined; data: Record<string, string> };

export function renderCredentials(branch: Branch, input: CredentialsInput): CredentialsSecret {
  const name = branch.metadata.name ?? '';
  const tenant = branch.spec.tenantRef.name;
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: {
      name: credentialsSecretName(name),
      namespace: branch.metadata.namespace,
      labels: childLabels(branch.metadata.labels, {
        [LABEL.name]: 'hub-broker',
        [LABEL.component]: 'branch-credentials',
        [LABEL.managedBy]: MANAGED_BY,
        [LABEL.tenant]: tenant,
        [LABEL.branch]: name,
      }),
      annotations: { [ANNOTATION.rotate]: input.rotate, ...(input.pending ? { [ANNOTATION.pendingKey]: 'true' } : {}) },
      ownerReferences: [controllerRef(branch, 'Branch')],
    },
    // `data` (base64), not stringData: the API server returns `data`, so desired and live compare directly.
    data: {
      HUB_URL: b64(input.hubUrl),
      TENANT_ID: b64(tenant),
      BRANCH_ID: b64(name),
      API_KEY: b64(input.apiKey),
    },
  };
}

/** The value of `key` in a Secret's data, decoded; undefined when absent. */
export function secretValue(secret: Pick<V1Secret, 'data'> | null, key: string): string | undefined {
  const v = secret?.data?.[key];
  return v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8');
}
