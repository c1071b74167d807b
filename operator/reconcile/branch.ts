/**
 * Branch: its row in the hub database, its API key and the Secret `<branch>-credentials`.
 * The decisions (when to issue a key) are in policy/credentials.ts; this is the I/O around them.
 */
import type { V1Secret } from '@kubernetes/client-node';
import { branchSchemaVersions, latestSchemaVersion } from '../../hub/schema/publish.js';
import { generateApiKey, type Branch as BranchRow, type HubStore, type Tenant as TenantRow } from '../../hub/store/index.js';
import { Reason } from '../api/reasons.js';
import { ANNOTATION, credentialsSecretName, type Branch, type BranchStatus, type Hub, type Tenant } from '../api/v1alpha1.js';
import { isNotFound } from '../kube/client.js';
import { BRANCHES, SECRETS, type KubeObject } from '../kube/resources.js';
import { rfc3339 } from '../policy/conditions.js';
import { decideKey } from '../policy/credentials.js';
import { storeBranchRouting } from '../policy/tenant-spec.js';
import { hubEndpoint } from '../policy/endpoint.js';
import { renderCredentials, secretValue, type CredentialsSecret } from '../render/credentials.js';
import type { Outcome, ReconcileContext } from './context.js';
import { ReconcileFailure, toFailure } from './errors.js';
import { addFinalizer, hasFinalizer, removeFinalizer } from './finalizer.js';
import { publishStatus } from './status.js';

type LiveSecret = V1Secret & KubeObject;

export async function reconcileBranch(ctx: ReconcileContext, namespace: string, name: string): Promise<Outcome | void> {
  let branch = ctx.caches.branches.get(namespace, name);
  if (!branch) return;
  if (branch.metadata.deletionTimestamp) return finalizeBranch(ctx, branch);
  try {
    branch = await addFinalizer(ctx.api, BRANCHES, branch);
  } catch (err) {
    if (isNotFound(err)) return;
    throw err;
  }
  try {
    return await ensureBranch(ctx, branch);
  } catch (err) {
    const failure = toFailure(err);
    await publishStatus<BranchStatus>(ctx, BRANCHES, branch, keptStatus(branch), { status: 'False', reason: failure.reason, message: failure.message });
    throw failure;
  }
}

/** Status fields that stay true while a reconcile fails. */
function keptStatus(branch: Branch): Omit<BranchStatus, 'conditions' | 'observedGeneration'> {
  const s = branch.status ?? {};
  return { secretName: s.secretName, keyRotatedAt: s.keyRotatedAt, previousKeyValidUntil: s.previousKeyValidUntil, schemaVersion: s.schemaVersion };
}

interface Resolved {
  readonly tenant: Tenant;
  readonly hub: Hub;
  readonly store: HubStore;
}

async function resolve(ctx: ReconcileContext, branch: Branch, forDeletion = false): Promise<Resolved | null> {
  const ns = branch.metadata.namespace ?? '';
  const tenant = ctx.caches.tenants.get(ns, branch.spec.tenantRef.name);
  if (!tenant) {
    if (forDeletion) return null;
    throw new ReconcileFailure(Reason.TenantNotFound, `Tenant ${branch.spec.tenantRef.name} not found in namespace ${ns}`);
  }
  const hub = ctx.caches.hubs.get(ns, tenant.spec.hubRef.name);
  if (!hub) {
    if (forDeletion) return null;
    throw new ReconcileFailure(Reason.HubNotFound, `Hub ${tenant.spec.hubRef.name} of Tenant ${tenant.metadata.name} not found in namespace ${ns}`);
  }
  return { tenant, hub, store: await ctx.stores.forHub(hub, { orLast: forDeletion }) };
}

async function ensureBranch(ctx: ReconcileContext, branch: Branch): Promise<Outcome> {
  const { tenant, hub, store } = (await resolve(ctx, branch)) as Resolved;
  const tenantId = tenant.metadata.name ?? '';
  const id = branch.metadata.name ?? '';
  const ns = branch.metadata.namespace ?? '';
  const tenantRow = await store.getTenant(tenantId);
  if (!tenantRow) throw new ReconcileFailure(Reason.TenantNotReady, `Tenant ${tenantId} is not in the hub database yet`);
  const wantStatus = branch.spec.suspended ? 'suspended' : 'active';
  const rotate = branch.spec.credentials.rotate ?? '';
  const grace = branch.spec.credentials.gracePeriodSeconds;
  let row = await store.getBranch(tenantId, id);
  // A live read, never the cache: a Secret the cache has not seen yet must not cost the branch its key.
  const secret = await ctx.api.find<LiveSecret>(SECRETS, ns, credentialsSecretName(id));
  const action = decideKey({
    row,
    secret: secret
      ? {
          apiKey: secretValue(secret, 'API_KEY'),
          rotate: secret.metadata.annotations?.[ANNOTATION.rotate],
          pending: secret.metadata.annotations?.[ANNOTATION.pendingKey] === 'true',
        }
      : null,
    rotate,
    graceSeconds: grace,
  });

  let apiKey: string;
  switch (action.kind) {
    case 'create': {
      const created = await store.createBranch(tenantId, id, { status: wantStatus });
      row = created.branch;
      apiKey = created.apiKey ?? '';
      ctx.enqueue('Tenant', ns, tenantId); // its branch count
      ctx.events.record(branch, 'Normal', 'BranchRegistered', `branch ${tenantId}/${id} registered in the hub database; API key issued`);
      break;
    }
    case 'rotate': {
      // The Secret gets the new key first, marked pending: a crash before the hub database accepts
      // it leaves the key where the next reconcile finds it, instead of a key nobody holds.
      apiKey = generateApiKey();
      await ctx.api.apply(SECRETS, renderCredentials(branch, { hubUrl: hubEndpoint(hub), apiKey, rotate, pending: true }));
      const rotated = await store.rotateKey(tenantId, id, action.graceSeconds, apiKey);
      row = rotated.branch;
      if (action.why === 'requested') {
        ctx.events.record(branch, 'Normal', 'KeyRotated', `new API key issued; the previous one works for ${action.graceSeconds} s more`);
      } else {
        ctx.events.record(branch, 'Warning', 'CredentialsReissued', `Secret ${credentialsSecretName(id)} was missing its key: issued a new one (the lost one works for ${action.graceSeconds} s more)`);
      }
      break;
    }
    case 'revoked':
      throw new ReconcileFailure(Reason.KeyRevoked, 'the branch’s keys were revoked outside the operator; change spec.credentials.rotate to issue a new one');
    case 'finish-rotation': {
      apiKey = action.apiKey;
      // The hub database may have accepted the key just before the crash: rotating again would
      // end the grace of the key agents still use.
      const check = await store.verifyBranchKey(tenantId, id, apiKey);
      const accepted = check.ok || check.reason === 'suspended';
      if (!accepted) row = (await store.rotateKey(tenantId, id, action.graceSeconds, apiKey)).branch;
      ctx.events.record(branch, 'Normal', 'KeyRotated', 'finished an interrupted key rotation with the key already in the Secret');
      break;
    }
    case 'keep':
      apiKey = action.apiKey;
      break;
  }
  if (!row) throw new Error(`branch ${tenantId}/${id} vanished`);
  if (row.status !== wantStatus) row = await store.setBranchStatus(tenantId, id, wantStatus);
  // Level-triggered: a no-op (and no notification) when the hub database already agrees.
  const routing = await store.setBranchRouting(tenantId, id, storeBranchRouting(branch.spec));
  row = routing.branch;
  if (routing.changed) ctx.events.record(branch, 'Normal', 'RoutingChanged', `groups [${row.groups.join(', ')}], attributes ${JSON.stringify(row.attributes)}; the branch's rows are resynced`);

  const desired = renderCredentials(branch, { hubUrl: hubEndpoint(hub), apiKey, rotate });
  if (!secretUpToDate(secret, desired)) await ctx.api.apply(SECRETS, desired);

  const schema = await schemaProgress(store, tenantRow, id);
  await publishStatus<BranchStatus>(ctx, BRANCHES, branch, { ...statusFields(row, desired), schemaVersion: schema.version }, {
    status: 'True',
    reason: branch.spec.suspended ? Reason.Suspended : Reason.Ready,
    message: branch.spec.suspended
      ? 'suspended: the branch cannot sign in'
      : `registered with tenant ${tenantId}; credentials in Secret ${desired.metadata.name}${schema.behind > 0 ? `; ${schema.behind} schema change(s) not applied yet` : ''}`,
  });
  // Come back when the previous key expires, so the status stops showing it; and, while the
  // branch has schema changes to apply, to show its progress.
  const until = row.previousKeyValidUntil?.getTime();
  const waits = [until !== undefined ? Math.max(1000, until - ctx.now().getTime() + 1000) : Infinity, schema.behind > 0 ? SCHEMA_PROGRESS_MS : Infinity];
  const next = Math.min(...waits);
  return Number.isFinite(next) ? { requeueAfterMs: next } : {};
}

/** How often the status of a branch behind its tenant's schema is refreshed. */
const SCHEMA_PROGRESS_MS = 10_000;

async function schemaProgress(store: HubStore, tenant: TenantRow, branch: string): Promise<{ version: number | undefined; behind: number }> {
  const [latest, versions] = await Promise.all([latestSchemaVersion(store.pool, tenant), branchSchemaVersions(store.pool, tenant, branch)]);
  // A branch that never connected has no position yet: it starts from a snapshot at the latest.
  const version = versions.get(branch);
  return { version, behind: version === undefined ? 0 : latest - version };
}

function statusFields(row: BranchRow, secret: CredentialsSecret): Omit<BranchStatus, 'conditions' | 'observedGeneration'> {
  return {
    secretName: secret.metadata.name,
    keyRotatedAt: row.keyRotatedAt ? rfc3339(row.keyRotatedAt) : undefined,
    previousKeyValidUntil: row.previousKeyValidUntil ? rfc3339(row.previousKeyValidUntil) : undefined,
  };
}

/** Whether the live Secret already has everything the operator sets (others may add more). */
function secretUpToDate(live: LiveSecret | null, desired: CredentialsSecret): boolean {
  if (!live) return false;
  const sub = (want: Record<string, string> | undefined, have: Record<string, string> | undefined) =>
    Object.entries(want ?? {}).every(([k, v]) => have?.[k] === v);
  const owner = desired.metadata.ownerReferences?.[0];
  return (
    live.type === desired.type &&
    sub(desired.data, live.data) &&
    sub(desired.metadata.labels, live.metadata.labels) &&
    sub(desired.metadata.annotations, live.metadata.annotations) &&
    live.metadata.annotations?.[ANNOTATION.pendingKey] === desired.metadata.annotations?.[ANNOTATION.pendingKey] &&
    (live.metadata.ownerReferences ?? []).some((r) => r.uid === owner?.uid && r.controller === true)
  );
}

async function finalizeBranch(ctx: ReconcileContext, branch: Branch): Promise<Outcome | void> {
  if (!hasFinalizer(branch)) return;
  try {
    const resolved = await resolve(ctx, branch, true);
    // Without its Tenant (or Hub) the branch's rows went with the tenant's: nothing to revoke.
    if (resolved) {
      const tenantId = resolved.tenant.metadata.name ?? '';
      const id = branch.metadata.name ?? '';
      await resolved.store.revokeKeys(tenantId, id);
      const deleted = await resolved.store.deleteBranch(tenantId, id);
      if (deleted) {
        ctx.events.record(branch, 'Normal', 'BranchDeleted', `keys revoked and branch ${tenantId}/${id} removed from the hub database`);
        ctx.enqueue('Tenant', branch.metadata.namespace ?? '', tenantId);
      }
    }
    await removeFinalizer(ctx.api, BRANCHES, branch);
  } catch (err) {
    if (isNotFound(err)) return;
    const failure = toFailure(err);
    await publishStatus<BranchStatus>(ctx, BRANCHES, branch, keptStatus(branch), {
      status: 'False',
      reason: Reason.Deleting,
      message: `cannot revoke the branch's key yet (${failure.reason}): ${failure.message}`,
    }).catch(() => undefined);
    throw failure;
  }
}
