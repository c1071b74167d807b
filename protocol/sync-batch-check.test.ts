import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SyncBatchSchema } from './messages.js';
import { certainlySyncBatch } from './sync-batch-check.js';
import { columnArb, counterArb, hlcStringArb, idArb, syncBatchArb, valueArb } from './testing/arbitraries.js';
import { fcParams } from './testing/fc.js';
import { parseAgentFrame } from './validate.js';

const JUNK: unknown[] = [
  null,
  0,
  -1,
  1.5,
  2 ** 53,
  true,
  '',
  'x',
  'UPPER',
  '-a',
  'a'.repeat(64),
  'a'.repeat(200),
  '0123456789abcdef',
  '0123456789ABCDEF',
  [],
  ['insert'],
  {},
  { a: 1 },
  { '': 1 },
  { ['k'.repeat(64)]: 1 },
  { b1: 0 },
  { B1: 1 },
  'insert',
  'delete',
];

// Batches of column-level tables: every change carries a column state (protocol/merge.ts).
const branchishArb = fc.oneof(idArb, fc.constant(''));
const cellArb = fc.tuple(valueArb, hlcStringArb, branchishArb, fc.nat({ max: Number.MAX_SAFE_INTEGER }), branchishArb);
const contributionArb = fc.tuple(fc.oneof(fc.integer({ min: -1e9, max: 1e9 }).map(String), fc.constant('-12.50')), counterArb, hlcStringArb, branchishArb);
const counterStateArb = fc.record({ b: cellArb, d: fc.dictionary(idArb, contributionArb, { maxKeys: 3, noNullPrototype: true }) }, { noNullPrototype: true });
const colsArb = fc.dictionary(columnArb, fc.oneof(cellArb, counterStateArb), { maxKeys: 4, noNullPrototype: true });
const columnBatchArb = fc
  .tuple(syncBatchArb, fc.array(colsArb, { minLength: 5, maxLength: 5 }))
  .map(([b, cols]) => ({ ...b, changes: b.changes.map((c, i) => ({ ...c, cols: cols[i] as NonNullable<(typeof c)['cols']> })) }));
const anyBatchArb = fc.oneof(syncBatchArb, columnBatchArb);

/** A copy of `batch` with one field, at any depth the check looks at, removed, replaced by junk, or joined by an extra key. */
const mutatedBatchArb = fc
  .tuple(anyBatchArb, fc.nat(), fc.nat(), fc.nat(), fc.constantFrom(...JUNK), fc.constantFrom('delete', 'replace', 'add'))
  .map(([batch, a, b, c, junk, how]) => {
    const frame = structuredClone(batch) as unknown as Record<string, unknown>;
    const changes = frame.changes as Record<string, unknown>[];
    const change = changes[a % changes.length] as Record<string, unknown>;
    // Where: the envelope, a change, or an object inside a change (pk, row, vv, and the column
    // state: its cells, counters and their contributions).
    const targets: Record<string, unknown>[] = [frame, change];
    for (const k of ['pk', 'row', 'vv', 'cols']) {
      const v = change[k];
      if (typeof v === 'object' && v !== null) targets.push(v as Record<string, unknown>);
    }
    for (const v of Object.values((change.cols ?? {}) as Record<string, unknown>)) {
      targets.push(v as Record<string, unknown>);
      const d = (v as { d?: Record<string, unknown> }).d;
      if (d && typeof d === 'object') targets.push(d, ...(Object.values(d) as Record<string, unknown>[]));
      const b = (v as { b?: unknown }).b;
      if (Array.isArray(b)) targets.push(b as unknown as Record<string, unknown>);
    }
    const target = targets[b % targets.length] as Record<string, unknown>;
    const keys = Object.keys(target);
    const added = ['extra', 'to', 'tx_end', 'b-2', 'Bad', '', 'k'.repeat(64)];
    const key = how === 'add' || keys.length === 0 ? added[c % added.length]! : keys[c % keys.length]!;
    if (how === 'delete') delete target[key];
    else target[key] = junk;
    return frame;
  });

describe('the quick check of sync.batch frames', () => {
  it('says yes to the valid batches', () => {
    fc.assert(
      fc.property(anyBatchArb, (batch) => {
        const frame = batch as unknown as Record<string, unknown>;
        expect(SyncBatchSchema.safeParse(frame).success).toBe(true);
        expect(certainlySyncBatch(frame)).toBe(true);
      }),
      fcParams({ numRuns: 500 }),
    );
  });

  it('never says yes to a batch the schema refuses', () => {
    let refused = 0;
    let runs = 0;
    fc.assert(
      fc.property(mutatedBatchArb, (frame) => {
        runs++;
        const schemaSays = SyncBatchSchema.safeParse(frame).success;
        if (!schemaSays) refused++;
        if (certainlySyncBatch(frame)) expect(schemaSays).toBe(true);
      }),
      fcParams({ numRuns: 3000 }),
    );
    // The mutations reach what the schema refuses, or the property above would say nothing.
    expect(refused).toBeGreaterThan(runs / 3);
  });

  it('leaves the error to the schema: a refused batch is named the same way as before', () => {
    const frame = { type: 'sync.batch', id: 'x', batch_id: 'b', changes: [{ table: 'public.t' }] };
    const r = parseAgentFrame(frame);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.field).toBe('changes.0.op');
  });

  it('refuses a number JSON cannot hold (MessagePack carries NaN and infinities), though the quick check looks at no values', () => {
    const frame = structuredClone(fc.sample(syncBatchArb, { numRuns: 1, seed: 7 })[0]) as unknown as { changes: Record<string, unknown>[] };
    const change = frame.changes[0] as Record<string, unknown>;
    change.op = 'update';
    change.row = { amount: Number.NaN };
    const r = parseAgentFrame(frame);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.field).toBe('changes.0.row.amount');
  });

  it('hands back the decoded frame itself (no copy)', () => {
    const frame = fc.sample(syncBatchArb, { numRuns: 1, seed: 7 })[0] as unknown as Record<string, unknown>;
    const r = parseAgentFrame(frame);
    expect(r.ok && r.value).toBe(frame);
  });
});
