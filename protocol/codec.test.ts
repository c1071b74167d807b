import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CODECS,
  codecForSubprotocol,
  decodeFrame,
  jsonCodec,
  msgpackCodec,
  SUBPROTOCOL_JSON,
  SUBPROTOCOL_MSGPACK,
  type Codec,
  type RawFrame,
} from './codec.js';
import type { Change, Message, SyncBatch } from './messages.js';
import { parseAgentFrame, parseHubFrame, type Result } from './validate.js';
import { agentToHubArbs, hubToAgentArbs } from './testing/arbitraries.js';
import { fcParams } from './testing/fc.js';

/** The shapes `ws` may hand a message listener, for the same bytes. */
function rawForms(encoded: string | Buffer): RawFrame[] {
  const buf = typeof encoded === 'string' ? Buffer.from(encoded, 'utf8') : encoded;
  const forms: RawFrame[] = [buf, [buf.subarray(0, 3), buf.subarray(3)], new Uint8Array(buf).buffer];
  if (typeof encoded === 'string') forms.push(encoded);
  return forms;
}

// Generated messages are compared with toEqual: toStrictEqual also compares each object's
// `constructor` property, which for a row with a column named "constructor" is that column.
function roundTrip<M extends Message>(codec: Codec, message: M, parse: (data: unknown) => Result<unknown>): unknown[] {
  return rawForms(codec.encode(message)).map((raw) => {
    const decoded = decodeFrame(codec, raw);
    if (!decoded.ok) throw decoded.error;
    const parsed = parse(decoded.value);
    if (!parsed.ok) throw parsed.error;
    return parsed.value;
  });
}

const change = (row: Change['row'], extra: Partial<Change> = {}): Change => ({
  table: 'public.customer',
  op: row === null ? 'delete' : 'update',
  pk: { id: '9223372036854775807' },
  row,
  hlc: '018c2a1b3c4d0001',
  vv: { 'store-1': 3, hq: 1 },
  origin: 'store-1',
  seq: 42,
  tx: '18446744073709551615',
  ...extra,
});

/** The values a real branch sends: PostgreSQL's text form of each type, or NULL. */
const tricky: SyncBatch = {
  type: 'sync.batch',
  id: 'm-1',
  batch_id: 'b-1',
  changes: [
    change({
      id: '9223372036854775807',
      nothing: null,
      name: 'Zoë 𝄞 😀 👩‍👩‍👧 e\u0301',
      arabic: 'مرحبا بالعالم',
      hebrew: 'שָׁלוֹם',
      rtl_override: '\u202Eevil\u202C',
      balance: '12345678901234567890.123456789',
      tiny: '-0.000000000000000000000000000001',
      not_a_number: 'NaN',
      created_at: '2024-02-29 23:59:59.999999+00',
      born: '0044-03-15 BC',
      during: '1 year 2 mons 3 days 04:05:06.789',
      photo: '\\x00ff',
      photo_b64: Buffer.from([0, 255, 1, 254]).toString('base64'),
      tags: '{"a b",c,NULL}',
      doc_text: '{"nested": {"deep": [1, 2, {"x": null}]}}',
      doc: { nested: { deep: [1, 2.5, { x: null, y: [true, false, 'é'] }] }, empty: {}, list: [] },
      number: 1.5,
      big_number: 1e300,
      'größe': 'x',
      constructor: 'a column named constructor',
    }),
    change(null, { op: 'delete', seq: 43, tx_end: true }),
  ],
  to: 'hq',
};

describe('codecs', () => {
  it('are chosen by WebSocket subprotocol, JSON by default', () => {
    expect(codecForSubprotocol(undefined)).toBe(jsonCodec);
    expect(codecForSubprotocol('')).toBe(jsonCodec);
    expect(codecForSubprotocol(SUBPROTOCOL_JSON)).toBe(jsonCodec);
    expect(codecForSubprotocol(SUBPROTOCOL_MSGPACK)).toBe(msgpackCodec);
    expect(codecForSubprotocol('hubsync.v2')).toBeUndefined();
  });

  for (const codec of CODECS) {
    describe(codec.name, () => {
      it('round-trips NULL, unicode, big numbers as text, timestamps, bytea and nested JSON exactly', () => {
        for (const value of roundTrip(codec, tricky, parseAgentFrame)) expect(value).toStrictEqual(tricky);
      });

      for (const [type, arb] of Object.entries(agentToHubArbs)) {
        it(`round-trips every ${type} frame an agent sends`, () => {
          fc.assert(
            fc.property(arb as fc.Arbitrary<Message>, (m) => {
              for (const value of roundTrip(codec, m, parseAgentFrame)) expect(value).toEqual(m);
            }),
            fcParams(),
          );
        });
      }

      for (const [type, arb] of Object.entries(hubToAgentArbs)) {
        it(`round-trips every ${type} frame the hub sends`, () => {
          fc.assert(
            fc.property(arb as fc.Arbitrary<Message>, (m) => {
              for (const value of roundTrip(codec, m, parseHubFrame)) expect(value).toEqual(m);
            }),
            fcParams(),
          );
        });
      }

      it('answers bytes that are not its format with malformed_frame', () => {
        const bad: Buffer[] =
          codec === jsonCodec
            ? ['', '{', '{"type":"sync.applied",', 'not json', '{"a":1}x', "{'a':1}", '\xff\xfe'].map((s) =>
                Buffer.from(s, 'latin1'),
              )
            : [
                Buffer.alloc(0),
                Buffer.from([0x82]), // map of two entries, none present
                Buffer.from([0x81, 0xa4, 0x74, 0x79]), // truncated key
                Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff]), // str32 claiming 4 GiB
                Buffer.concat([
                  msgpackCodec.encode({ type: 'sync.applied', id: 'a', offset: 1 }) as Buffer,
                  Buffer.from([1]), // trailing byte
                ]),
              ];
        for (const bytes of bad) {
          const r = decodeFrame(codec, bytes);
          expect(r.ok, bytes.toString('hex')).toBe(false);
          if (!r.ok) expect(r.error.code).toBe('malformed_frame');
        }
      });

      it('answers a frame over the limit with frame_too_large, before decoding it', () => {
        const encoded = codec.encode(tricky);
        const size = Buffer.byteLength(encoded);
        const r = decodeFrame(codec, encoded, size - 1);
        expect(r.ok).toBe(false);
        if (!r.ok) expect(r.error.code).toBe('frame_too_large');
        expect(decodeFrame(codec, encoded, size).ok).toBe(true);
        // Size is checked first: garbage over the limit is too large, not malformed.
        const junk = decodeFrame(codec, Buffer.alloc(100, 0xc1), 99);
        expect(!junk.ok && junk.error.code).toBe('frame_too_large');
      });

      it('never throws on random bytes, and random bytes never validate', () => {
        fc.assert(
          fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
            const decoded = decodeFrame(codec, Buffer.from(bytes));
            if (!decoded.ok) {
              expect(decoded.error.code).toBe('malformed_frame');
              return;
            }
            expect(parseAgentFrame(decoded.value).ok).toBe(false);
            expect(parseHubFrame(decoded.value).ok).toBe(false);
          }),
          fcParams(),
        );
      });
    });
  }

  it('encode the same message to the same value with both codecs', () => {
    fc.assert(
      fc.property(fc.oneof(...Object.values(agentToHubArbs)) as fc.Arbitrary<Message>, (m) => {
        const viaJson = decodeFrame(jsonCodec, jsonCodec.encode(m));
        const viaMsgpack = decodeFrame(msgpackCodec, msgpackCodec.encode(m));
        expect(viaMsgpack).toEqual(viaJson);
      }),
      fcParams(),
    );
  });
});

describe('__proto__ in a frame', () => {
  const pristine = (): void => {
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  };
  const batchWithRow = (rowJson: string): string =>
    `{"type":"sync.batch","id":"1","batch_id":"b","changes":[{"table":"public.t","op":"insert","pk":{"id":"1"},` +
    `"row":${rowJson},"hlc":"0000000000000000","vv":{"a":1},"origin":"a","seq":1,"tx":"1"}]}`;

  it('is rejected by name in a JSON frame, at any depth, and pollutes nothing', () => {
    const cases: [string, string][] = [
      ['{"type":"sync.applied","id":"1","offset":1,"__proto__":{"polluted":true}}', '__proto__'],
      [batchWithRow('{"__proto__":{"polluted":true},"id":"1"}'), 'changes.0.row.__proto__'],
      [batchWithRow('{"id":"1","doc":{"a":[{"__proto__":{"polluted":true}}]}}'), 'changes.0.row.doc.a.0.__proto__'],
    ];
    for (const [text, field] of cases) {
      const decoded = decodeFrame(jsonCodec, text);
      expect(decoded.ok).toBe(true);
      const r = parseAgentFrame(decoded.ok ? decoded.value : null);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toMatchObject({ code: 'invalid_frame', field });
      pristine();
    }
  });

  it('is rejected by name in a MessagePack frame too, and pollutes nothing', () => {
    // An object with an own "__proto__" key, as JSON.parse builds it, packed as a map.
    const hostile = JSON.parse(batchWithRow('{"__proto__":{"polluted":true},"id":"1"}')) as Message;
    const decoded = decodeFrame(msgpackCodec, msgpackCodec.encode(hostile));
    expect(decoded.ok).toBe(true);
    pristine();
    expect(parseAgentFrame(decoded.ok ? decoded.value : null)).toMatchObject({ ok: false, error: { code: 'invalid_frame', field: 'changes.0.row.__proto__' } });
    pristine();
  });

  it('a key named constructor or prototype is just data', () => {
    const r = parseAgentFrame(JSON.parse(batchWithRow('{"id":"1","constructor":{"prototype":{"polluted":true}}}')));
    expect(r.ok).toBe(true);
    pristine();
  });
});
