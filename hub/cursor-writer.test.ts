import { describe, expect, it } from 'vitest';
import { CursorWriter } from './cursor-writer.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('CursorWriter', () => {
  function writer(intervalMs: number, lazyMs: number) {
    const writes: number[] = [];
    const w = new CursorWriter({ write: async (pos) => void writes.push(pos), failed: () => undefined }, intervalMs, 0, lazyMs);
    return { w, writes };
  }

  it('coalesces moves into the latest value, never moving back', async () => {
    const { w, writes } = writer(30, 30);
    w.move(1);
    w.move(5);
    w.move(3);
    await sleep(80);
    expect(writes).toEqual([1, 5]);
  });

  it('lets a lazy move wait for the long interval, and a delivery’s move cut it short', async () => {
    const { w, writes } = writer(20, 10_000);
    w.move(1);
    await sleep(30);
    w.move(2, true);
    await sleep(60);
    // Nothing was delivered: still waiting.
    expect(writes).toEqual([1]);
    w.move(3);
    await sleep(60);
    expect(writes).toEqual([1, 3]);
  });

  it('writes the latest at once when flushed (connection closing)', async () => {
    const { w, writes } = writer(20, 10_000);
    w.move(1);
    await sleep(10);
    w.move(9, true);
    await w.flush();
    expect(writes).toEqual([1, 9]);
    w.move(10);
    await sleep(40);
    expect(writes).toEqual([1, 9]);
  });
});
