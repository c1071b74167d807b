/**
 * The pacer's budget, with its three inputs (send, mark, load) as plain functions over an array
 * standing for the branch's report records; agent/bootstrap.test.ts and the e2e tests send real
 * reports through it.
 */
import { describe, expect, it } from 'vitest';
import type { PendingReport } from './reports.js';
import { ReportPacer } from './report-pacer.js';

const report = (id: number): PendingReport => ({ kind: 'conflict', id: String(id), conflict: {} as PendingReport['conflict'] });

function setUp(perSecond: number, burst: number) {
  let now = 0;
  const records = new Map<string, { r: PendingReport; sent: boolean }>();
  const sent: string[] = [];
  let open = true;
  const pacer = new ReportPacer({
    perSecond,
    burst,
    now: () => now,
    send: (r) => {
      if (!open) return false;
      sent.push(r.id);
      return true;
    },
    mark: async (rs) => rs.forEach((r) => ((records.get(r.id) as { sent: boolean }).sent = true)),
    load: async (limit) => [...records.values()].filter((x) => !x.sent).slice(0, limit).map((x) => x.r),
  });
  const record = (ids: number[]): PendingReport[] => ids.map((i) => {
    const r = report(i);
    records.set(r.id, { r, sent: false });
    return r;
  });
  return { pacer, record, sent, tick: (ms: number) => (now += ms), close: () => (open = false), unsent: () => [...records.values()].filter((x) => !x.sent).length };
}

describe('ReportPacer', () => {
  it('sends a burst at once, keeps the rest recorded, and sends them as the budget refills, oldest first, each once', async () => {
    const s = setUp(10, 5);
    await s.pacer.offer(s.record([1, 2, 3, 4, 5, 6, 7, 8]));
    expect(s.sent).toEqual(['1', '2', '3', '4', '5']);
    expect(s.unsent()).toBe(3);
    s.tick(200);
    await s.pacer.drain();
    expect(s.sent).toEqual(['1', '2', '3', '4', '5', '6', '7']);
    s.tick(1000);
    await s.pacer.drain();
    expect(s.sent).toEqual(['1', '2', '3', '4', '5', '6', '7', '8']);
    expect(s.unsent()).toBe(0);
    s.pacer.stop();
  });

  it('a closed socket stops sending; nothing is marked that did not go out', async () => {
    const s = setUp(100, 100);
    s.close();
    await s.pacer.offer(s.record([1, 2]));
    expect(s.sent).toEqual([]);
    expect(s.unsent()).toBe(2);
    s.pacer.stop();
  });
});
