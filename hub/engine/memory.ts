/** The engine of a single hub instance: everything in this process's memory. */
import { fullAfterMs, takeAll, type BucketRequest, type BucketState, type TakeResult } from '../rate-limit.js';
import type { Engine, EngineHealth, InstanceMessage, Location } from './types.js';

export class MemoryEngine implements Engine {
  readonly kind = 'memory' as const;
  private onMessage: (m: InstanceMessage) => void = () => undefined;
  private readonly locations = new Map<string, Map<string, Location>>();
  private readonly generations = new Map<string, number>();
  private readonly buckets = new Map<string, { state: BucketState; idleAfter: number }>();
  private takes = 0;

  constructor(
    readonly instanceId: string,
    private readonly now: () => number = Date.now,
  ) {}

  async start(onMessage: (m: InstanceMessage) => void): Promise<void> {
    this.onMessage = onMessage;
  }

  async claim(tenant: string, branch: string): Promise<{ gen: number; previous: Location | null }> {
    const key = `${tenant}/${branch}`;
    const gen = (this.generations.get(key) ?? 0) + 1;
    this.generations.set(key, gen);
    let byBranch = this.locations.get(tenant);
    if (!byBranch) this.locations.set(tenant, (byBranch = new Map()));
    const previous = byBranch.get(branch) ?? null;
    byBranch.set(branch, { server: this.instanceId, gen, at: this.now() });
    return { gen, previous };
  }

  async release(tenant: string, branch: string, gen: number): Promise<void> {
    const byBranch = this.locations.get(tenant);
    if (byBranch?.get(branch)?.gen !== gen) return;
    byBranch.delete(branch);
    if (byBranch.size === 0) this.locations.delete(tenant);
  }

  async locate(tenant: string): Promise<ReadonlyMap<string, Location>> {
    return this.locations.get(tenant) ?? new Map();
  }

  async send(server: string, message: InstanceMessage): Promise<void> {
    if (server !== this.instanceId) return;
    // Asynchronous like a real channel, so callers never re-enter themselves.
    setImmediate(() => this.onMessage(message));
  }

  async take(requests: readonly BucketRequest[], cost = 1): Promise<TakeResult> {
    const now = this.now();
    const states = requests.map((r) => this.buckets.get(r.key)?.state);
    const { result, states: next } = takeAll(states, requests.map((r) => r.rate), now, cost);
    requests.forEach((r, i) => this.buckets.set(r.key, { state: next[i] as BucketState, idleAfter: now + fullAfterMs(r.rate) }));
    // A bucket left alone until it is full again is the same as no bucket: forget it.
    if (++this.takes % 1000 === 0) {
      for (const [k, b] of this.buckets) if (b.idleAfter < now) this.buckets.delete(k);
    }
    return result;
  }

  async health(): Promise<EngineHealth> {
    return { ok: true, detail: 'memory' };
  }

  async stop(): Promise<void> {
    this.locations.clear();
  }

  kill(): void {
    this.onMessage = () => undefined;
  }
}
