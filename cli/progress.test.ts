import { describe, expect, it } from 'vitest';
import { ProgressLine } from './progress.js';

const sink = (isTTY: boolean) => {
  const out: string[] = [];
  return { out, stream: { isTTY, write: (t: string) => out.push(t) } };
};

describe('ProgressLine', () => {
  it('without a terminal, prints a line per tenth of the work: 200 updates of 200k rows give 11 lines', () => {
    const s = sink(false);
    const p = new ProgressLine(s.stream);
    for (let i = 1; i <= 200; i++) p.update('t', i * 1000, 200_000, `t: ${i * 1000} published`);
    p.end();
    expect(s.out).toHaveLength(11);
    expect(s.out[0]).toBe('t: 1000 published (0 %)\n');
    expect(s.out[10]).toBe('t: 200000 published (100 %)\n');
  });

  it('on a terminal, rewrites one line and ends it once', () => {
    const s = sink(true);
    const p = new ProgressLine(s.stream);
    p.update('t', 1, 2, 'half');
    p.update('t', 2, 2, 'all');
    p.end();
    expect(s.out).toEqual(['\r\x1b[2Khalf (50 %)', '\r\x1b[2Kall (100 %)', '\n']);
  });
});
