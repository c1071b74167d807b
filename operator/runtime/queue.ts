/**
 * A work queue of keys with client-go's guarantees: a key is queued at most once however often
 * it is added; a key being processed is not handed to a second worker, and if it is added
 * meanwhile it is processed once more afterwards; failures delay the next try exponentially.
 */
import { backoffDelay, withJitter, type BackoffPolicy } from '../policy/backoff.js';

export interface QueueOptions {
  readonly backoff: BackoffPolicy;
  /** Called whenever the number of queued keys changes (a metric). */
  readonly onDepth?: (depth: number) => void;
  readonly jitter?: boolean;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  /** Keys waiting to be processed (queued, or re-added while processing). */
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private shuttingDown = false;

  constructor(private readonly options: QueueOptions) {}

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return; // done() queues it again
    const waiter = this.waiters.shift();
    if (waiter) {
      this.take(key);
      waiter(key);
      return;
    }
    this.queue.push(key);
    this.options.onDepth?.(this.queue.length);
  }

  /** Adds `key` after `ms`; of several pending delays for one key the earliest wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) return this.add(key);
    const at = Date.now() + ms;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** After a failure: retry later, each consecutive failure of the key doubling the delay. Returns the delay. */
  addRateLimited(key: string): number {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const base = backoffDelay(this.options.backoff, n);
    const delay = this.options.jitter === false ? base : withJitter(base);
    this.addAfter(key, delay);
    return delay;
  }

  /** After a success: the next failure starts from the base delay again. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key to process; undefined once the queue is shut down or `signal` aborts. */
  get(signal?: AbortSignal): Promise<string | undefined> {
    if (this.shuttingDown || signal?.aborted) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) {
      this.options.onDepth?.(this.queue.length);
      this.take(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => {
      const waiter = (k: string | undefined) => {
        signal?.removeEventListener('abort', cancel);
        resolve(k);
      };
      // A worker that stops waiting must not be handed a key it would never finish.
      const cancel = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(undefined);
      };
      signal?.addEventListener('abort', cancel, { once: true });
      this.waiters.push(waiter);
    });
  }

  private take(key: string): void {
    this.dirty.delete(key);
    this.processing.add(key);
  }

  /** Must follow every get(): releases the key, and queues it again if it was added meanwhile. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
  }

  get length(): number {
    return this.queue.length;
  }

  get busy(): number {
    return this.processing.size;
  }

  /** Wakes every waiting worker with undefined; later adds are ignored. */
  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }
}
