/**
 * TypeScript shapes of the `hubbroker.io/v1alpha1` resources. crds/*.yaml is the source of
 * truth; the API server validates and defaults every object against it, so the operator takes
 * these shapes as given (fields with a CRD default are not optional here).
 */
import type { KubeObject } from '../kube/resources.js';

export interface SecretKeyRef {
  readonly name: string;
  readonly key: string;
}

export interface TokenBucket {
  readonly perSecond: number;
  readonly burst: number;
}

export interface HubSpec {
  readonly image?: string;
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  readonly imagePullSecrets?: readonly { name: string }[];
  readonly replicas: {
    readonly min: number;
    readonly max: number;
    readonly connectionsPerReplica: number;
    readonly headroom: number;
  };
  readonly database: { readonly secretRef: SecretKeyRef };
  /** Exactly one of secretRef (a Redis URL) and sentinel (the CRD checks). */
  readonly redis?: {
    readonly secretRef?: SecretKeyRef;
    readonly sentinel?: {
      readonly name: string;
      readonly sentinels: readonly string[];
      readonly passwordSecretRef?: SecretKeyRef;
      readonly sentinelPasswordSecretRef?: SecretKeyRef;
    };
    readonly prefix?: string;
  };
  readonly jwt: { readonly secretRef: SecretKeyRef };
  readonly adminToken?: { readonly secretRef: SecretKeyRef };
  readonly publicURL?: string;
  readonly service: {
    readonly type: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
    readonly port: number;
    readonly annotations?: Readonly<Record<string, string>>;
  };
  readonly tls?: { readonly secretName: string };
  readonly limits?: {
    readonly maxConnections?: number;
    readonly tenantRate?: TokenBucket;
    readonly branchRate?: TokenBucket;
  };
  readonly logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  /** Further `hub-broker hub` settings; the CRD refuses the ones derived from other fields. */
  readonly env?: readonly { readonly name: string; readonly value: string }[];
  readonly resources?: {
    readonly requests?: Readonly<Record<string, string | number>>;
    readonly limits?: Readonly<Record<string, string | number>>;
  };
  readonly nodeSelector?: Readonly<Record<string, string>>;
  readonly tolerations?: readonly Readonly<Record<string, unknown>>[];
  readonly affinity?: Readonly<Record<string, unknown>>;
  readonly podAnnotations?: Readonly<Record<string, string>>;
  readonly disruption: { readonly maxUnavailable: number | string };
}

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  readonly type: string;
  readonly status: ConditionStatus;
  readonly reason: string;
  readonly message: string;
  readonly lastTransitionTime: string;
  readonly observedGeneration?: number;
}

export interface CommonStatus {
  readonly observedGeneration?: number;
  readonly conditions?: readonly Condition[];
}

export interface HubStatus extends CommonStatus {
  readonly replicas?: number;
  readonly readyReplicas?: number;
  readonly selector?: string;
  readonly branches?: number;
  readonly tenants?: number;
  readonly endpoint?: string;
}

export interface Hub extends KubeObject {
  readonly spec: HubSpec;
  readonly status?: HubStatus;
}

export interface TenantSpec {
  readonly hubRef: { readonly name: string };
  readonly maxBranches?: number;
  readonly rateLimit?: { readonly messagesPerSecond: number; readonly burst: number };
  readonly suspended: boolean;
  readonly conflictStrategy: 'LastWriteWins' | 'BranchPriority';
  readonly branchPriority?: readonly string[];
  readonly deletionPolicy: 'Retain' | 'Delete';
  /** docs/sync-semantics.md "Routing"; absent or empty: full mesh. */
  readonly routes?: readonly RouteSpec[];
  /** Tables merged by column, with their counter columns; absent: every table by row. */
  readonly tables?: readonly { readonly name: string; readonly merge?: 'Row' | 'Column'; readonly additive?: readonly string[] }[];
  /** Migrations published through the tenant's log, in this order, once each (matched by name). */
  readonly schemaChanges?: readonly { readonly name: string; readonly sql: string; readonly description?: string }[];
}

export interface RouteSpec {
  readonly name: string;
  readonly tables: readonly string[];
  readonly from: readonly string[];
  readonly to: readonly string[];
  readonly filter?: string;
}

export interface TenantStatus extends CommonStatus {
  readonly schema?: string;
  readonly branches?: number;
  /** The latest schema change published to the tenant's branches. */
  readonly schemaVersion?: number;
}

export interface Tenant extends KubeObject {
  readonly spec: TenantSpec;
  readonly status?: TenantStatus;
}

export interface BranchSpec {
  readonly tenantRef: { readonly name: string };
  readonly suspended: boolean;
  readonly credentials: { readonly rotate?: string; readonly gracePeriodSeconds: number };
  /** Routing groups and attributes (docs/sync-semantics.md "Routing"). */
  readonly groups?: readonly string[];
  readonly attributes?: Readonly<Record<string, string>>;
}

export interface BranchStatus extends CommonStatus {
  readonly secretName?: string;
  readonly keyRotatedAt?: string;
  readonly previousKeyValidUntil?: string;
  /** The schema version the branch applied, as far as the hub knows (its acknowledged position). */
  readonly schemaVersion?: number;
}

export interface Branch extends KubeObject {
  readonly spec: BranchSpec;
  readonly status?: BranchStatus;
}

/** On Hubs, Tenants and Branches: external state (or, for a Hub, its Tenants) to clean up first. */
export const FINALIZER = 'hubbroker.io/finalizer';

export const LABEL = {
  name: 'app.kubernetes.io/name',
  component: 'app.kubernetes.io/component',
  managedBy: 'app.kubernetes.io/managed-by',
  hub: 'hubbroker.io/hub',
  tenant: 'hubbroker.io/tenant',
  branch: 'hubbroker.io/branch',
} as const;

export const ANNOTATION = {
  /** On a credentials Secret: the `spec.credentials.rotate` value its key was issued for. */
  rotate: 'hubbroker.io/rotate',
  /**
   * On a credentials Secret: its key was written before the hub database accepted it (a rotation in
   * progress). An operator that finds it finishes the rotation with that key instead of a new one.
   */
  pendingKey: 'hubbroker.io/key-pending',
  /** On hub pods: a digest of the ConfigMap, so a configuration change rolls them. */
  configHash: 'hubbroker.io/config-hash',
} as const;

export const MANAGED_BY = 'hub-broker-operator';

/** The name of a Branch's credentials Secret. */
export const credentialsSecretName = (branch: string): string => `${branch}-credentials`;

/** Keys of the credentials Secret; a branch agent reads exactly these from its environment. */
export const CREDENTIAL_KEYS = ['HUB_URL', 'TENANT_ID', 'BRANCH_ID', 'API_KEY'] as const;
