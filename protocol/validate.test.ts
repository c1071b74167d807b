import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CODECS, decodeFrame, jsonCodec, msgpackCodec } from './codec.js';
import { ProtocolError } from './errors.js';
import type { Change, Message } from './messages.js';
import { MAX_FRAME_DEPTH, parseAgentFrame, parseHubFrame, type Result } from './validate.js';
import { agentToHubArb, hubToAgentArb } from './testing/arbitraries.js';
import { fcParams } from './testing/fc.js';

const change: Change = {
  table: 'public.customer',
  op: 'update',
  pk: { id: '1' },
  row: { id: '1', email: 'a@example.com' },
  hlc: '018c2a1b3c4d0001',
  vv: { 'store-1': 2 },
  origin: 'store-1',
  seq: 7,
  tx: '1234',
};
const batch = { type: 'sync.batch', id: 'm1', batch_id: 'b1', changes: [change] };
const hello = {
  type: 'hello',
  id: 'h1',
  protocol: 1,
  server_id: 'hub-0',
  tenant_id: 'acme',
  branch_id: 'store-1',
  heartbeat_ms: 15000,
  limits: { max_frame_bytes: 1048576, max_changes_per_batch: 100 },
  cursor: 0,
  log_head: 10,
  bootstrap: false,
  policy: { conflict_strategy: 'last-write-wins', branch_priority: [] },
  token_expires_at: '2025-01-01T00:00:00.000Z',
};

/** A copy of `base` with the value at `path` replaced (or removed when `value` is undefined). */
function edit(base: object, path: (string | number)[], value: unknown): Record<string, unknown> {
  const copy = structuredClone(base) as Record<string, unknown>;
  let node: Record<string | number, unknown> = copy;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  const last = path[path.length - 1] as string | number;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return copy;
}

function failure(r: Result<unknown>): ProtocolError {
  if (r.ok) throw new Error(`expected a validation failure, got ${JSON.stringify(r.value)}`);
  expect(r.error).toBeInstanceOf(ProtocolError);
  return r.error;
}

describe('frame validation', () => {
  it('accepts valid frames and returns them typed', () => {
    expect(parseAgentFrame(batch)).toEqual({ ok: true, value: batch });
    expect(parseHubFrame(hello)).toEqual({ ok: true, value: hello });
  });

  it('answers a frame that is not an object with invalid_frame', () => {
    for (const data of [null, undefined, 42, 'sync.batch', true, [], [batch]]) {
      expect(failure(parseAgentFrame(data))).toMatchObject({ code: 'invalid_frame', field: '' });
      expect(failure(parseHubFrame(data))).toMatchObject({ code: 'invalid_frame', field: '' });
    }
  });

  it('answers a missing or non-string type with invalid_frame on "type"', () => {
    for (const type of [undefined, 1, null, ['sync.batch']]) {
      expect(failure(parseAgentFrame(edit(batch, ['type'], type)))).toMatchObject({ code: 'invalid_frame', field: 'type' });
    }
  });

  it('answers a type this side does not accept with unknown_type', () => {
    expect(failure(parseAgentFrame({ ...batch, type: 'sync.bogus' }))).toMatchObject({ code: 'unknown_type', field: 'type' });
    // Each direction has its own set: an agent never sends hello, the hub never sends a batch.
    expect(failure(parseAgentFrame(hello))).toMatchObject({ code: 'unknown_type', field: 'type' });
    expect(failure(parseHubFrame(batch))).toMatchObject({ code: 'unknown_type', field: 'type' });
    expect(failure(parseAgentFrame({ ...batch, type: 'toString' })).code).toBe('unknown_type');
    expect(failure(parseAgentFrame({ ...batch, type: '__proto__' })).code).toBe('unknown_type');
  });

  // [what is wrong, frame, the field the error must name]
  const mistakes: [string, unknown, string, typeof parseAgentFrame | typeof parseHubFrame][] = [
    ['a required field is missing', edit(batch, ['batch_id'], undefined), 'batch_id', parseAgentFrame],
    ['a required change field is missing', edit(batch, ['changes', 0, 'hlc'], undefined), 'changes.0.hlc', parseAgentFrame],
    ['a field has the wrong type', { type: 'sync.applied', id: 'a', offset: '12' }, 'offset', parseAgentFrame],
    ['a number is negative', { type: 'sync.applied', id: 'a', offset: -1 }, 'offset', parseAgentFrame],
    ['a number is fractional', { type: 'sync.applied', id: 'a', offset: 1.5 }, 'offset', parseAgentFrame],
    ['a number is past 2^53', { type: 'sync.applied', id: 'a', offset: 2 ** 53 }, 'offset', parseAgentFrame],
    ['an enum value is unknown', edit(batch, ['changes', 0, 'op'], 'upsert'), 'changes.0.op', parseAgentFrame],
    ['an HLC is malformed', edit(batch, ['changes', 0, 'hlc'], '018C2A1B3C4D0001'), 'changes.0.hlc', parseAgentFrame],
    ['a branch id is not a DNS label', edit(batch, ['changes', 0, 'origin'], 'Store_1'), 'changes.0.origin', parseAgentFrame],
    ['a vector counter is zero', edit(batch, ['changes', 0, 'vv', 'store-1'], 0), 'changes.0.vv.store-1', parseAgentFrame],
    ['a vector key is not a branch id', edit(batch, ['changes', 0, 'vv'], { 'Not An Id': 1 }), 'changes.0.vv.Not An Id', parseAgentFrame],
    ['a sequence number is zero', edit(batch, ['changes', 0, 'seq'], 0), 'changes.0.seq', parseAgentFrame],
    ['a batch is empty', edit(batch, ['changes'], []), 'changes', parseAgentFrame],
    ['a change has an extra field', edit(batch, ['changes', 0, 'extra'], 1), 'changes.0.extra', parseAgentFrame],
    ['the envelope has an extra field', edit(batch, ['extra'], 1), 'extra', parseAgentFrame],
    ['a row is not an object', edit(batch, ['changes', 0, 'row'], 'id=1'), 'changes.0.row', parseAgentFrame],
    ['a column name is empty', edit(batch, ['changes', 0, 'row'], { '': 1 }), 'changes.0.row.', parseAgentFrame],
    ['a string is too long', edit(batch, ['id'], 'x'.repeat(65)), 'id', parseAgentFrame],
    ['a string is empty', edit(batch, ['changes', 0, 'tx'], ''), 'changes.0.tx', parseAgentFrame],
    ['an error code has capitals', { type: 'error', id: 'e', code: 'Bad', message: '' }, 'code', parseAgentFrame],
    ['a target is not a branch id', edit(batch, ['to'], 'HQ'), 'to', parseAgentFrame],
    ['a nested limit is zero', edit(hello, ['limits', 'max_frame_bytes'], 0), 'limits.max_frame_bytes', parseHubFrame],
    ['a priority entry is invalid', edit(hello, ['policy', 'branch_priority'], ['hq', '-x']), 'policy.branch_priority.1', parseHubFrame],
    ['a strategy is unknown', edit(hello, ['policy', 'conflict_strategy'], 'first-wins'), 'policy.conflict_strategy', parseHubFrame],
    [
      'a delivered entry holds a bad change',
      { type: 'sync.deliver', id: 'd', entries: [[5, { ...change, op: 'merge' }]] },
      'entries.0.1.op',
      parseHubFrame,
    ],
    ['a log entry is not a pair', { type: 'sync.deliver', id: 'd', entries: [[5]] }, 'entries.0', parseHubFrame],
    // What PostgreSQL cannot store, and what is not JSON at all.
    ['a value contains NUL', edit(batch, ['changes', 0, 'row', 'email'], 'a\u0000b'), 'changes.0.row.email', parseAgentFrame],
    ['a value has a lone surrogate', edit(batch, ['changes', 0, 'row', 'email'], 'a\ud800'), 'changes.0.row.email', parseAgentFrame],
    ['a column name contains NUL', edit(batch, ['changes', 0, 'row', 'a\u0000'], 1), 'changes.0.row.a\u0000', parseAgentFrame],
    ['a value is a date object', edit(batch, ['changes', 0, 'row', 'at'], new Date(0)), 'changes.0.row.at', parseAgentFrame],
    ['a value is binary', edit(batch, ['changes', 0, 'row', 'b'], Buffer.from([1])), 'changes.0.row.b', parseAgentFrame],
    ['a value is a bigint', edit(batch, ['changes', 0, 'row', 'n'], 1n), 'changes.0.row.n', parseAgentFrame],
    ['a value is not finite', edit(batch, ['changes', 0, 'row', 'n'], Infinity), 'changes.0.row.n', parseAgentFrame],
  ];

  for (const [what, frame, field, parse] of mistakes) {
    it(`names the field when ${what}: ${JSON.stringify(field)}`, () => {
      const error = failure(parse(frame));
      expect(error.code).toBe('invalid_frame');
      expect(error.field).toBe(field);
      expect(error.message.startsWith(`${field}:`)).toBe(true);
    });
  }

  it('rejects a frame nested deeper than MAX_FRAME_DEPTH without overflowing the stack', () => {
    const deep = (levels: number): unknown => {
      let v: unknown = 1;
      for (let i = 0; i < levels; i++) v = [v];
      return v;
    };
    const ok = parseAgentFrame(edit(batch, ['changes', 0, 'row', 'doc'], deep(MAX_FRAME_DEPTH - 6)));
    expect(ok.ok).toBe(true);
    const tooDeep = failure(parseAgentFrame(edit(batch, ['changes', 0, 'row', 'doc'], deep(MAX_FRAME_DEPTH))));
    expect(tooDeep.code).toBe('invalid_frame');
    expect(tooDeep.field.startsWith('changes.0.row.doc.0.0')).toBe(true);
    // A megabyte of brackets decodes fine with JSON.parse; validating it must not throw.
    const text = JSON.stringify(batch).replace('"email":"a@example.com"', `"doc":${'['.repeat(500_000)}${']'.repeat(500_000)}`);
    for (const codec of [jsonCodec]) {
      const decoded = decodeFrame(codec, text);
      expect(decoded.ok).toBe(true);
      expect(failure(parseAgentFrame(decoded.ok ? decoded.value : null)).code).toBe('invalid_frame');
    }
    const packed = Buffer.concat([Buffer.alloc(100_000, 0x91), Buffer.from([0xc0])]); // 100k nested one-element arrays
    const r = decodeFrame(msgpackCodec, packed);
    if (r.ok) expect(parseAgentFrame(r.value).ok).toBe(false);
    else expect(r.error.code).toBe('malformed_frame');
  });

  it('rejects what a MessagePack frame can carry but JSON cannot', () => {
    const framesWith = (bytes: number[]): Buffer =>
      // {"type":"sync.applied","id":"a","offset": <bytes>}
      Buffer.concat([
        (msgpackCodec.encode({ type: 'sync.applied', id: 'a', offset: 0 }) as Buffer).subarray(0, -1),
        Buffer.from(bytes),
      ]);
    const cases = [
      [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // uint64 → bigint
      [0xd6, 0xff, 0, 0, 0, 1], // timestamp extension → Date
      [0xc4, 1, 0], // bin → Buffer
      [0xc1], // the never-used byte
      [0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0], // NaN
    ];
    for (const bytes of cases) {
      const decoded = decodeFrame(msgpackCodec, framesWith(bytes));
      if (!decoded.ok) continue;
      expect(failure(parseAgentFrame(decoded.value))).toMatchObject({ code: 'invalid_frame', field: 'offset' });
    }
  });
});

describe('frame validation never throws, and never accepts a broken frame', () => {
  it('on random JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(parseAgentFrame(v).ok).toBe(false);
        expect(parseHubFrame(v).ok).toBe(false);
      }),
      fcParams(),
    );
  });

  it('on random JavaScript values with a known type', () => {
    const types = ['sync.batch', 'sync.applied', 'hello', 'sync.deliver', 'conflict.report', 'snapshot.chunk', 'error'];
    fc.assert(
      fc.property(
        fc.constantFrom(...types),
        fc.object({ withBigInt: true, withDate: true, withTypedArray: true, withNullPrototype: true }),
        (type, body) => {
          const frame = { ...body, type };
          for (const parse of [parseAgentFrame, parseHubFrame]) {
            const r = parse(frame);
            expect(r.ok === true || r.error instanceof ProtocolError).toBe(true);
          }
        },
      ),
      fcParams(),
    );
  });

  it('on valid messages with one mistake, through both codecs, naming the mistake', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          agentToHubArb.map((m) => ({ m: m as Message, parse: parseAgentFrame as (d: unknown) => Result<unknown> })),
          hubToAgentArb.map((m) => ({ m: m as Message, parse: parseHubFrame as (d: unknown) => Result<unknown> })),
        ),
        fc.constantFrom('drop', 'retype', 'extra' as const),
        fc.nat(),
        ({ m, parse }, kind, pick) => {
          const { frame, field } = mutate(m, kind, pick);
          for (const codec of CODECS) {
            const decoded = decodeFrame(codec, codec.encode(frame as Message));
            expect(decoded.ok).toBe(true);
            const error = failure(parse(decoded.ok ? decoded.value : null));
            expect(error).toMatchObject({ code: 'invalid_frame', field });
          }
        },
      ),
      fcParams(),
    );
  });
});

// ---------------------------------------------------------------- mutations

type Path = (string | number)[];

/** Keys whose value is any JSON (row contents): nothing inside them can be "wrong". */
const FREE = new Set(['row', 'pk', 'winner_row', 'loser_row', 'body']);

function isOptional(path: Path, key: string): boolean {
  if (path.length === 0) return key === 'to' || key === 'ref' || key === 'target' || key === 'body';
  if (key === 'tx_end') return true;
  return path[path.length - 1] === 'conflict' && (key === 'kind' || key === 'reason');
}

/** Every node of a message outside free JSON, with whether it is a strict object (a fixed set of keys). */
function nodes(value: unknown, path: Path = [], out: { path: Path; value: unknown; strict: boolean }[] = []) {
  const parent = path[path.length - 1];
  const free = typeof parent === 'string' && FREE.has(parent);
  const strict = typeof value === 'object' && value !== null && !Array.isArray(value) && !free && parent !== 'vv';
  out.push({ path, value, strict });
  if (free || typeof value !== 'object' || value === null) return out;
  for (const [k, v] of Object.entries(value)) nodes(v, [...path, Array.isArray(value) ? Number(k) : k], out);
  return out;
}

/** A value of another JSON type than `v`, never null (which a nullable field would accept). */
function otherType(v: unknown): unknown {
  if (typeof v === 'string') return 12345;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return String(v);
  if (v === null) return 7;
  if (Array.isArray(v)) return { not: 'an array' };
  return 'an object';
}

function mutate(m: Message, kind: 'drop' | 'retype' | 'extra', pick: number): { frame: unknown; field: string } {
  const all = nodes(m);
  if (kind === 'drop') {
    const targets = all.flatMap((n) =>
      n.strict ? Object.keys(n.value as object).filter((k) => !isOptional(n.path, k)).map((k) => [...n.path, k]) : [],
    );
    const path = targets[pick % targets.length] as Path;
    return { frame: edit(m, path, undefined), field: path.join('.') };
  }
  if (kind === 'extra') {
    const targets = all.filter((n) => n.strict);
    const path = [...(targets[pick % targets.length] as { path: Path }).path, 'extra_field'];
    return { frame: edit(m, path, 1), field: path.join('.') };
  }
  // `body` may be any JSON value: no type of it is wrong.
  const targets = all.filter((n) => n.path.length > 0 && n.path[n.path.length - 1] !== 'body');
  const target = targets[pick % targets.length] as { path: Path; value: unknown };
  return { frame: edit(m, target.path, otherType(target.value)), field: target.path.join('.') };
}
