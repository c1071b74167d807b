/**
 * Group commit for small queries made once per connection (cursor and head at hello, last-seen
 * writes): at most one batch in flight per key; items arriving meanwhile wait and go into the
 * next batch together. Alone, an item runs at once (no added latency); in a reconnect storm,
 * thousands of connections cost a few queries instead of one each.
 */

interface Waiting<T, R> {
  readonly item: T;
  readonly resolve: (r: R) => void;
  readonly reject: (err: unknown) => void;
}

interface Queue<T, R> {
  waiting: Waiting<T, R>[];
  running: boolean;
}

export class Batcher<T, R> {
  private readonly queues = new Map<string, Queue<T, R>>();
  private idleWaiters: (() => void)[] = [];

  /** `run` answers one result per item, in order; a throw rejects every item of the batch. */
  constructor(
    private readonly run: (key: string, items: readonly T[]) => Promise<readonly R[]>,
    private readonly maxBatch = 2000,
  ) {}

  add(key: string, item: T): Promise<R> {
    let q = this.queues.get(key);
    if (!q) this.queues.set(key, (q = { waiting: [], running: false }));
    const queue = q;
    const p = new Promise<R>((resolve, reject) => queue.waiting.push({ item, resolve, reject }));
    if (!queue.running) void this.drain(key, queue);
    return p;
  }

  /** Resolves once nothing is waiting or running (graceful shutdown). */
  idle(): Promise<void> {
    return this.queues.size === 0 ? Promise.resolve() : new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async drain(key: string, q: Queue<T, R>): Promise<void> {
    q.running = true;
    while (q.waiting.length > 0) {
      const batch = q.waiting.splice(0, this.maxBatch);
      try {
        const results = await this.run(
          key,
          batch.map((w) => w.item),
        );
        batch.forEach((w, i) => w.resolve(results[i] as R));
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    q.running = false;
    this.queues.delete(key);
    if (this.queues.size === 0) for (const w of this.idleWaiters.splice(0)) w();
  }
}
