import { describe, expect, it } from 'vitest';
import { InFlight, nextBatchCap } from './in-flight.js';

describe('InFlight', () => {
  it('excludes rows in flight until their batch is acknowledged with one offset per change', () => {
    const f = new InFlight();
    f.add({ batchId: 'b1', messageId: 'm1', seqs: ['1', '2'], sentAt: 0 });
    f.add({ batchId: 'b2', messageId: 'm2', seqs: ['3'], sentAt: 0 });
    expect(f.seqs()).toEqual(['1', '2', '3']);
    expect(f.ack('b1', [10])).toEqual({ ok: false, reason: 'offsets_mismatch' });
    expect(f.ack('nope', [1])).toEqual({ ok: false, reason: 'unknown_batch' });
    expect(f.ack('b1', [10, 11])).toMatchObject({ ok: true, batch: { seqs: ['1', '2'] } });
    // Still excluded until its rows are deleted from the outbox.
    expect(f.seqs()).toEqual(['1', '2', '3']);
    f.settle('b1');
    expect(f.seqs()).toEqual(['3']);
    expect(f.size).toBe(1);
  });

  it('forgets a refused batch so its rows are sent again, and everything on reconnect', () => {
    const f = new InFlight();
    f.add({ batchId: 'b1', messageId: 'm1', seqs: ['1'], sentAt: 0 });
    f.add({ batchId: 'b2', messageId: 'm2', seqs: ['2'], sentAt: 0 });
    expect(f.refuse('m2')?.batchId).toBe('b2');
    expect(f.refuse('m2')).toBeUndefined();
    expect(f.seqs()).toEqual(['1']);
    f.clear();
    expect(f.size).toBe(0);
  });
});

describe('nextBatchCap', () => {
  it('halves down to one change while frames are too large and grows back to the configured size', () => {
    let cap = 100;
    const seen: number[] = [];
    for (let i = 0; i < 8; i++) seen.push((cap = nextBatchCap(cap, 100, 'too_large')));
    expect(seen).toEqual([50, 25, 12, 6, 3, 1, 1, 1]);
    const back: number[] = [];
    for (let i = 0; i < 8; i++) back.push((cap = nextBatchCap(cap, 100, 'fit')));
    expect(back).toEqual([2, 4, 8, 16, 32, 64, 100, 100]);
  });
});
