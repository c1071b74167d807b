/**
 * Leader election on a coordination.k8s.io Lease, as client-go does it: the holder renews the
 * lease; a candidate takes it over only after seeing no renewal for a whole lease duration,
 * measured on its own clock (so clock skew between pods does not matter), and every write is
 * a compare-and-set on the Lease's resourceVersion, so two candidates never both win.
 */
import type { Logger } from 'pino';
import { isConflict, isNotFound } from '../kube/client.js';
import { LEASES, type Api, type KubeObject } from '../kube/resources.js';
import { jsonEqual } from '../policy/conditions.js';
import { sleep } from './sleep.js';

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface Lease extends KubeObject {
  spec?: LeaseSpec;
}

export interface LeaderOptions {
  readonly api: Api;
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseDurationMs: number;
  /** A leader that could not renew for this long steps down (less than leaseDurationMs). */
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  readonly log: Logger;
  readonly onStartedLeading: () => void;
  readonly onStoppedLeading: () => void;
}

/** metav1.MicroTime: RFC 3339 with microseconds. */
const microTime = (ms: number): string => new Date(ms).toISOString().replace(/Z$/, '000Z');

export class LeaderElector {
  private leader = false;
  private observed: { spec: LeaseSpec | undefined; at: number } = { spec: undefined, at: 0 };
  private readonly stopper = new AbortController();
  private running: Promise<void> | undefined;

  constructor(private readonly options: LeaderOptions) {}

  isLeader(): boolean {
    return this.leader;
  }

  start(): void {
    this.running ??= this.loop();
  }

  /**
   * Stops campaigning; a leader releases the lease so a standby takes over at once. Without
   * `release` (a crash, in tests) the standby waits for the lease to expire.
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    this.stopper.abort();
    await this.running;
    if (this.leader) {
      this.setLeader(false);
      if (options.release === false) return;
      await this.release().catch((err: unknown) => this.options.log.warn({ err: (err as Error).message }, 'could not release the lease'));
    }
  }

  private setLeader(value: boolean): void {
    if (this.leader === value) return;
    this.leader = value;
    this.options.log.info({ identity: this.options.identity, lease: this.options.name }, value ? 'became leader' : 'stopped leading');
    if (value) this.options.onStartedLeading();
    else this.options.onStoppedLeading();
  }

  private async loop(): Promise<void> {
    const { retryPeriodMs, renewDeadlineMs } = this.options;
    let lastRenew = 0;
    while (!this.stopper.signal.aborted) {
      let ok = false;
      try {
        ok = await this.tryAcquireOrRenew();
      } catch (err) {
        this.options.log.warn({ err: (err as Error).message }, 'lease update failed');
      }
      if (this.stopper.signal.aborted) break;
      const now = Date.now();
      if (ok) {
        lastRenew = now;
        this.setLeader(true);
      } else if (this.leader && (this.observedOther() || now - lastRenew >= renewDeadlineMs)) {
        this.setLeader(false);
      }
      await sleep(retryPeriodMs, this.stopper.signal);
    }
  }

  private observedOther(): boolean {
    const holder = this.observed.spec?.holderIdentity;
    return holder !== undefined && holder !== '' && holder !== this.options.identity;
  }

  /** One attempt; true when this instance holds the lease afterwards. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, name, identity, leaseDurationMs } = this.options;
    const now = Date.now();
    const seconds = Math.max(1, Math.round(leaseDurationMs / 1000));
    const lease = await api.find<Lease>(LEASES, namespace, name);
    if (!lease) {
      const spec: LeaseSpec = { holderIdentity: identity, leaseDurationSeconds: seconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 };
      try {
        await api.create<Lease>(LEASES, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec });
      } catch (err) {
        if (isConflict(err)) return false; // another candidate created it first
        throw err;
      }
      this.observed = { spec, at: now };
      return true;
    }
    if (!jsonEqual(lease.spec, this.observed.spec)) this.observed = { spec: lease.spec, at: now };
    const holder = lease.spec?.holderIdentity ?? '';
    const duration = (lease.spec?.leaseDurationSeconds ?? seconds) * 1000;
    if (holder !== '' && holder !== identity && this.observed.at + duration > now) return false;
    const spec: LeaseSpec = {
      ...lease.spec,
      holderIdentity: identity,
      leaseDurationSeconds: seconds,
      renewTime: microTime(now),
      ...(holder === identity
        ? {}
        : { acquireTime: microTime(now), leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1 }),
    };
    try {
      await api.replace<Lease>(LEASES, { ...lease, spec });
    } catch (err) {
      if (isConflict(err) || isNotFound(err)) return false;
      throw err;
    }
    this.observed = { spec, at: now };
    return true;
  }

  private async release(): Promise<void> {
    const { api, namespace, name, identity } = this.options;
    const lease = await api.find<Lease>(LEASES, namespace, name);
    if (!lease || lease.spec?.holderIdentity !== identity) return;
    await api.replace<Lease>(LEASES, { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(Date.now()) } });
  }
}
