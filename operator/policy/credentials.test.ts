import { describe, expect, it } from 'vitest';
import { decideKey, type KeyInput } from './credentials.js';

const input = (over: Partial<KeyInput>): KeyInput => ({
  row: { hasKey: true },
  secret: { apiKey: 'k', rotate: '' },
  rotate: '',
  graceSeconds: 60,
  ...over,
});

describe('decideKey', () => {
  it('creates the branch (and its key) when the hub database has none, whatever the Secret holds', () => {
    expect(decideKey(input({ row: null, secret: null }))).toEqual({ kind: 'create' });
    expect(decideKey(input({ row: null }))).toEqual({ kind: 'create' });
  });

  it('keeps the key in the Secret when nothing asks for a new one', () => {
    expect(decideKey(input({}))).toEqual({ kind: 'keep', apiKey: 'k' });
    expect(decideKey(input({ rotate: 'r1', secret: { apiKey: 'k', rotate: 'r1' } }))).toEqual({ kind: 'keep', apiKey: 'k' });
  });

  it('rotates with grace when spec.credentials.rotate changes', () => {
    expect(decideKey(input({ rotate: 'r2', secret: { apiKey: 'k', rotate: 'r1' } }))).toEqual({ kind: 'rotate', graceSeconds: 60, why: 'requested' });
    expect(decideKey(input({ rotate: 'r1', secret: { apiKey: 'k', rotate: undefined } }))).toEqual({
      kind: 'rotate',
      graceSeconds: 60,
      why: 'requested',
    });
  });

  it('issues a new key only when a live read found the Secret (or its key) gone', () => {
    expect(decideKey(input({ secret: null }))).toEqual({ kind: 'rotate', graceSeconds: 60, why: 'secret-lost' });
    expect(decideKey(input({ secret: { apiKey: undefined, rotate: '' } }))).toEqual({ kind: 'rotate', graceSeconds: 60, why: 'secret-lost' });
    expect(decideKey(input({ secret: { apiKey: '', rotate: '' } }))).toEqual({ kind: 'rotate', graceSeconds: 60, why: 'secret-lost' });
  });

  it('finishes a rotation that stopped after the Secret was written, with the key in the Secret', () => {
    expect(decideKey(input({ secret: { apiKey: 'new', rotate: 'r2', pending: true }, rotate: 'r2' }))).toEqual({
      kind: 'finish-rotation',
      apiKey: 'new',
      graceSeconds: 60,
    });
    // A user changing rotate again meanwhile still finishes first; the next reconcile rotates again.
    expect(decideKey(input({ secret: { apiKey: 'new', rotate: 'r2', pending: true }, rotate: 'r3' }))).toMatchObject({ kind: 'finish-rotation' });
  });

  it('respects a revocation made outside the operator until a rotation is asked for', () => {
    expect(decideKey(input({ row: { hasKey: false } }))).toEqual({ kind: 'revoked' });
    expect(decideKey(input({ row: { hasKey: false }, rotate: 'again' }))).toMatchObject({ kind: 'rotate', why: 'requested' });
  });
});
