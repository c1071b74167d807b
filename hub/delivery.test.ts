import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { LogEntry } from '../protocol/index.js';
import { fcParams } from '../protocol/testing/fc.js';
import { Delivery, type DeliveryPort } from './delivery.js';
import type { EntriesMessage } from './engine/types.js';
import type { Page, ReadRow } from './log.js';
import { receives } from './routing.js';
import { change } from './testing/harness.js';

const ME = 'me';

interface Batch {
  readonly origin: string;
  readonly target: string | null;
  readonly size: number;
}

type Action =
  | { readonly kind: 'append'; readonly batch: Batch; readonly notify: 'now' | 'later' | 'never' }
  | { readonly kind: 'deliver-late' }
  | { readonly kind: 'apply' }
  | { readonly kind: 'buffer'; readonly full: boolean }
  | { readonly kind: 'poll' };

const batchArb: fc.Arbitrary<Batch> = fc.record({
  origin: fc.constantFrom(ME, 'x', 'y'),
  target: fc.constantFrom(null, null, ME, 'z'),
  size: fc.integer({ min: 1, max: 4 }),
});

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('append' as const), batch: batchArb, notify: fc.constantFrom('now' as const, 'now' as const, 'later' as const, 'never' as const) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'deliver-late' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'apply' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('buffer' as const), full: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'poll' as const }) },
);

const settle = () => new Promise((r) => setImmediate(r));

/** A log in memory, a connection's delivery over it, and what the branch received. */
function harness(pageSize: number, maxUnapplied: number) {
  const log: { pos: number; origin: string; target: string | null; entry: LogEntry }[] = [];
  const received: LogEntry[] = [];
  const late: EntriesMessage[] = [];
  let bufferFull = false;
  let cursor = 0;
  let reads = 0;
  const port: DeliveryPort = {
    branchId: ME,
    buffered: () => (bufferFull ? 1000 : 0),
    deliver: (entries) => received.push(...entries),
    snapshotRequired: () => {
      throw new Error('nothing is pruned here');
    },
    readPage: async (from): Promise<Page> => {
      reads++;
      await settle();
      const mine = log.filter((r) => r.pos > from && receives(ME, r.origin, r.target));
      const rows: ReadRow[] = mine.slice(0, pageSize).map((r) => ({ pos: r.pos, change: r.entry[1], bytes: 10, at: 0 }));
      const head = log.length;
      const atHead = mine.length <= pageSize;
      return { kind: 'entries', rows, scanned: atHead ? head : (rows[rows.length - 1] as ReadRow).pos, head, atHead };
    },
    moveCursor: (pos) => {
      cursor = Math.max(cursor, pos);
    },
    closeSlow: () => {
      throw new Error('never over the cap here');
    },
    paused: () => undefined,
    error: (err) => {
      throw err;
    },
  };
  const delivery = new Delivery(port, { pauseBytes: 500, closeBytes: 10_000, maxUnapplied, retryMs: 1 });
  let seq = 0;
  return {
    delivery,
    received,
    late,
    get cursor() {
      return cursor;
    },
    get reads() {
      return reads;
    },
    setBuffer: (full: boolean) => (bufferFull = full),
    append(b: Batch): EntriesMessage {
      const first = log.length + 1;
      const entries: LogEntry[] = [];
      for (let i = 0; i < b.size; i++) {
        const e: LogEntry = [log.length + 1, change(b.origin, ++seq)];
        log.push({ pos: e[0], origin: b.origin, target: b.target, entry: e });
        entries.push(e);
      }
      return { kind: 'entries', tenant: 't', first, last: log.length, origin: b.origin, target: b.target, at: 0, entries };
    },
    expected: () => log.filter((r) => receives(ME, r.origin, r.target)).map((r) => r.pos),
    head: () => log.length,
  };
}

describe('delivery to one connection', () => {
  it('delivers every entry meant for the branch, in log order, exactly once, whatever happens to notifications', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(actionArb, { maxLength: 60 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 12 }), async (actions, pageSize, maxUnapplied) => {
        const h = harness(pageSize, maxUnapplied);
        h.delivery.start(0, false);
        await settle();
        for (const a of actions) {
          if (a.kind === 'append') {
            const msg = h.append(a.batch);
            if (a.notify === 'now') h.delivery.onEntries(msg, { entries: msg.entries as LogEntry[], encoded: new Map() });
            else if (a.notify === 'later') h.late.push(msg);
          } else if (a.kind === 'deliver-late') {
            const msg = h.late.shift();
            if (msg) h.delivery.onEntries(msg, null);
          } else if (a.kind === 'apply') {
            const last = h.received.at(-1);
            if (last) h.delivery.onApplied(last[0]);
          } else if (a.kind === 'buffer') {
            h.setBuffer(a.full);
          } else {
            h.delivery.onHead(h.head());
          }
          await settle();
        }
        // Then the socket drains, the branch applies as it goes, and the head is polled.
        h.setBuffer(false);
        for (let i = 0; i < 500 && !(h.delivery.mode === 'live' && h.delivery.scanned === h.head()); i++) {
          const last = h.received.at(-1);
          if (last) h.delivery.onApplied(last[0]);
          h.delivery.onHead(h.head());
          await new Promise((r) => setTimeout(r, 1));
        }
        expect(h.received.map((e) => e[0])).toEqual(h.expected());
        // Everything delivered was applied: the cursor reaches the head, own entries included.
        const last = h.received.at(-1);
        if (last) h.delivery.onApplied(last[0]);
        expect(h.cursor).toBe(h.head());
      }),
      fcParams({ numRuns: 200 }),
    );
  });

  it('a branch catching up while appends keep coming goes live once it reaches them, instead of reading on', async () => {
    const h = harness(10, 100_000);
    for (let i = 0; i < 10; i++) h.append({ origin: 'x', target: null, size: 5 });
    h.delivery.start(0, false, h.head());
    // A notification arrives during every page read, as at full load.
    for (let i = 0; i < 100 && h.delivery.mode !== 'live'; i++) {
      const msg = h.append({ origin: 'x', target: null, size: 5 });
      h.delivery.onEntries(msg, { entries: msg.entries as LogEntry[], encoded: new Map() });
      await settle();
    }
    expect(h.delivery.mode).toBe('live');
    // The backlog of 50 takes five pages of 10; then the notifications held meanwhile continue it.
    expect(h.reads).toBeLessThanOrEqual(6);
    const msg = h.append({ origin: 'x', target: null, size: 5 });
    h.delivery.onEntries(msg, { entries: msg.entries as LogEntry[], encoded: new Map() });
    expect(h.received.map((e) => e[0])).toEqual(h.expected());
  });

  it('a branch already at the head goes live at once, without reading the log', async () => {
    const h = harness(10, 100);
    h.append({ origin: 'x', target: null, size: 2 });
    h.delivery.start(2, false, 2);
    expect(h.delivery.mode).toBe('live');
    const msg = h.append({ origin: 'x', target: null, size: 1 });
    h.delivery.onEntries(msg, null);
    expect(h.received.map((e) => e[0])).toEqual([3]);
  });

  it('entries notified while the connection was starting are read from the log, even when hello said it was at the head', async () => {
    const h = harness(10, 100);
    // The cursor and head were read (0, 0); then an append committed and notified before start.
    const msg = h.append({ origin: 'x', target: null, size: 2 });
    h.delivery.onEntries(msg, null);
    h.delivery.start(0, false, 0);
    expect(h.delivery.mode).toBe('catching-up');
    for (let i = 0; i < 10 && h.delivery.mode !== 'live'; i++) await settle();
    expect(h.received.map((e) => e[0])).toEqual([1, 2]);
  });
});
