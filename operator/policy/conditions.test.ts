import { describe, expect, it } from 'vitest';
import type { Condition } from '../api/v1alpha1.js';
import { findCondition, jsonEqual, rfc3339, setCondition } from './conditions.js';

const t0 = new Date('2026-03-01T10:00:00.123Z');
const t1 = new Date('2026-03-01T10:05:00.000Z');

describe('setCondition', () => {
  it('adds a condition stamped now, to the second', () => {
    const list = setCondition(undefined, 'Ready', { status: 'True', reason: 'Ready', message: 'ok' }, 3, t0);
    expect(list).toEqual([
      { type: 'Ready', status: 'True', reason: 'Ready', message: 'ok', lastTransitionTime: '2026-03-01T10:00:00Z', observedGeneration: 3 },
    ]);
  });

  it('keeps lastTransitionTime when only the reason or message changes', () => {
    const a = setCondition(undefined, 'Ready', { status: 'False', reason: 'HubNotFound', message: 'x' }, 1, t0);
    const b = setCondition(a, 'Ready', { status: 'False', reason: 'DatabaseUnavailable', message: 'y' }, 2, t1);
    expect(findCondition(b, 'Ready')).toMatchObject({ reason: 'DatabaseUnavailable', lastTransitionTime: rfc3339(t0), observedGeneration: 2 });
  });

  it('moves lastTransitionTime when the status flips', () => {
    const a = setCondition(undefined, 'Ready', { status: 'False', reason: 'HubNotFound', message: 'x' }, 1, t0);
    const b = setCondition(a, 'Ready', { status: 'True', reason: 'Ready', message: 'ok' }, 1, t1);
    expect(findCondition(b, 'Ready')?.lastTransitionTime).toBe('2026-03-01T10:05:00Z');
  });

  it('leaves other condition types alone, in a stable order', () => {
    const other: Condition = { type: 'Migrated', status: 'True', reason: 'Done', message: '', lastTransitionTime: 'x' };
    const list = setCondition([other], 'Ready', { status: 'True', reason: 'Ready', message: '' }, 1, t0);
    expect(list.map((c) => c.type)).toEqual(['Migrated', 'Ready']);
    expect(list[0]).toBe(other);
  });

  it('is idempotent: the same input twice gives an equal list', () => {
    const a = setCondition(undefined, 'Ready', { status: 'True', reason: 'Ready', message: 'ok' }, 1, t0);
    expect(jsonEqual(setCondition(a, 'Ready', { status: 'True', reason: 'Ready', message: 'ok' }, 1, t1), a)).toBe(true);
  });
});

describe('jsonEqual', () => {
  it.each([
    [{ a: 1, b: [1, { c: 'x' }] }, { b: [1, { c: 'x' }], a: 1 }, true],
    [{ a: 1, b: undefined }, { a: 1 }, true],
    [{ a: 1 }, { a: '1' }, false],
    [[1, 2], [2, 1], false],
    [{ a: [] }, { a: {} }, false],
    [null, {}, false],
    [{ a: null }, {}, false],
  ])('%j vs %j → %s', (a, b, equal) => {
    expect(jsonEqual(a, b)).toBe(equal);
  });
});
