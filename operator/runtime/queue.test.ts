import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WorkQueue } from './queue.js';

const queue = (onDepth?: (n: number) => void) => new WorkQueue({ backoff: { baseMs: 100, capMs: 1_000 }, jitter: false, onDepth });

describe('WorkQueue', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('hands out each key once however often it was added', async () => {
    const q = queue();
    q.add('a');
    q.add('b');
    q.add('a');
    q.add('a');
    expect(q.length).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
    expect(q.length).toBe(0);
  });

  it('does not give a key being processed to another worker, and processes it again if re-added', async () => {
    const q = queue();
    q.add('a');
    const key = await q.get();
    q.add('a'); // an event arrives while a worker reconciles 'a'
    q.add('a');
    expect(q.length).toBe(0);
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await Promise.resolve();
    expect(second).toBeUndefined();
    q.done(key ?? '');
    await Promise.resolve();
    expect(second).toBe('a');
    q.done('a');
    expect(q.length).toBe(0);
  });

  it('wakes a waiting worker when a key arrives', async () => {
    const q = queue();
    const next = q.get();
    q.add('x');
    expect(await next).toBe('x');
  });

  it('delays adds; the earliest of several delays wins', async () => {
    const q = queue();
    q.addAfter('a', 500);
    q.addAfter('a', 200);
    q.addAfter('a', 900);
    vi.advanceTimersByTime(199);
    expect(q.length).toBe(0);
    vi.advanceTimersByTime(1);
    expect(q.length).toBe(1);
    vi.advanceTimersByTime(1_000);
    expect(q.length).toBe(1);
  });

  it('backs off exponentially per key, capped, until forgotten', () => {
    const q = queue();
    expect([1, 2, 3, 4, 5, 6].map(() => q.addRateLimited('a'))).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    expect(q.addRateLimited('b')).toBe(100);
    q.forget('a');
    expect(q.addRateLimited('a')).toBe(100);
    expect(q.retries('a')).toBe(1);
  });

  it('reports its depth', () => {
    const depths: number[] = [];
    const q = queue((n) => depths.push(n));
    q.add('a');
    q.add('b');
    void q.get();
    expect(depths).toEqual([1, 2, 1]);
  });

  it('lets a worker stop waiting without losing the next key', async () => {
    const q = queue();
    const stop = new AbortController();
    const waiting = q.get(stop.signal);
    stop.abort();
    expect(await waiting).toBeUndefined();
    q.add('a');
    expect(q.length).toBe(1);
    expect(await q.get()).toBe('a');
  });

  it('releases waiting workers on shutdown and ignores later adds', async () => {
    const q = queue();
    const waiting = q.get();
    q.addAfter('later', 100);
    q.shutDown();
    expect(await waiting).toBeUndefined();
    q.add('a');
    vi.advanceTimersByTime(200);
    expect(q.length).toBe(0);
    expect(await q.get()).toBeUndefined();
  });
});
