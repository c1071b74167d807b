/**
 * Group commit for small queries made once per connection (cursor and head at hello, last-seen
 * writes): at most one batch in flight per key; items arriving meanwhile wait and go into the
 * next batch together. Alone, an item runs at once (no added latency); in a reconnect storm,
 * thousands of connections cost a few queries instead of one each.
 *
 * With `lingerMs`, an item that finds nothing running waits that long for company first: for
 * writes nobody waits on (last-seen times), where a storm spread over seconds would otherwise
 * still cost a query every few connections. `idle()` cuts the wait short.
 */

interface Waiting<T, R> {
  readonly item: T;
  readonly resolve: (r: R) => void;
  readonly reject: (err: unknown) => void;
}

interface Queue<T, R> {
  waiting: Waiting<T, R>[];
  running: boolean;
  /** Set while the first item lingers. */
  linger?: NodeJS.Timeout | undefined;
}

export interface BatcherOptions {
  readonly maxBatch?: number;
  readonly lingerMs?: number;
}

export class Batcher<T, R> {
  private readonly queues = new Map<string, Queue<T, R>>();
  private idleWaiters: (() => void)[] = [];

  private readonly maxBatch: number;
  private readonly lingerMs: number;

  /** `run` answers one result per item, in order; a throw rejects every item of the batch. */
  constructor(
    private readonly run: (key: string, items: readonly T[]) => Promise<readonly R[]>,
    options: BatcherOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 2000;
    this.lingerMs = options.lingerMs ?? 0;
  }

  add(key: string, item: T): Promise<R> {
    let q = this.queues.get(key);
    if (!q) this.queues.set(key, (q = { waiting: [], running: false }));
    const queue = q;
    const p = new Promise<R>((resolve, reject) => queue.waiting.push({ item, resolve, reject }));
    if (!queue.running) {
      queue.running = true;
      if (this.lingerMs > 0) {
        queue.linger = setTimeout(() => this.startDrain(key, queue), this.lingerMs);
        queue.linger.unref();
      } else void this.drain(key, queue);
    }
    return p;
  }

  /** Resolves once nothing is waiting or running (graceful shutdown); lingering items run at once. */
  idle(): Promise<void> {
    if (this.queues.size === 0) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    for (const [key, q] of this.queues) {
      if (q.linger) {
        clearTimeout(q.linger);
        this.startDrain(key, q);
      }
    }
    return done;
  }

  private startDrain(key: string, q: Queue<T, R>): void {
    q.linger = undefined;
    void this.drain(key, q);
  }

  private async drain(key: string, q: Queue<T, R>): Promise<void> {
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
