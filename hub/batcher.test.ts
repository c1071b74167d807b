import { describe, expect, it } from 'vitest';
import { Batcher } from './batcher.js';

describe('batcher (group commit of per-connection queries)', () => {
  it('runs an item alone at once, and items arriving meanwhile together in the next batch, per key', async () => {
    const runs: [string, number[]][] = [];
    let release: () => void = () => undefined;
    const b = new Batcher<number, number>(async (key, items) => {
      runs.push([key, [...items]]);
      if (runs.length === 1) await new Promise<void>((r) => (release = r));
      return items.map((i) => i * 10);
    });
    const first = b.add('a', 1);
    const later = [b.add('a', 2), b.add('a', 3), b.add('b', 4)];
    expect(runs).toEqual([
      ['a', [1]],
      ['b', [4]],
    ]);
    release();
    expect(await Promise.all([first, ...later])).toEqual([10, 20, 30, 40]);
    expect(runs).toEqual([
      ['a', [1]],
      ['b', [4]],
      ['a', [2, 3]],
    ]);
    await b.idle();
  });

  it('a failed batch rejects its own items only', async () => {
    let calls = 0;
    const b = new Batcher<number, number>(async (_key, items) => {
      if (++calls === 1) throw new Error('database away');
      return items.map((i) => i);
    });
    const failed = b.add('k', 1);
    const next = b.add('k', 2);
    await expect(failed).rejects.toThrow('database away');
    expect(await next).toBe(2);
  });

  it('splits a long queue into batches of at most maxBatch', async () => {
    const sizes: number[] = [];
    const b = new Batcher<number, number>(async (_key, items) => {
      sizes.push(items.length);
      return [...items];
    }, { maxBatch: 3 });
    await Promise.all(Array.from({ length: 8 }, (_, i) => b.add('k', i)));
    expect(sizes).toEqual([1, 3, 3, 1]);
  });

  it('with lingerMs, the first item waits for company, and idle() cuts the wait short', async () => {
    const runs: number[][] = [];
    const b = new Batcher<number, number>(async (_key, items) => {
      runs.push([...items]);
      return [...items];
    }, { lingerMs: 60_000 });
    const all = [b.add('k', 1), b.add('k', 2)];
    await new Promise((r) => setTimeout(r, 20));
    expect(runs).toEqual([]);
    all.push(b.add('k', 3));
    await b.idle();
    expect(await Promise.all(all)).toEqual([1, 2, 3]);
    expect(runs).toEqual([[1, 2, 3]]);
  });
});
