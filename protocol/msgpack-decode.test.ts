import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { decodeFrame, jsonCodec, msgpackCodec } from './codec.js';
import { decodeMsgpack, MsgpackDecodeError } from './msgpack-decode.js';
import { agentToHubArb, hubToAgentArb } from './testing/arbitraries.js';
import { fcParams } from './testing/fc.js';
import { parseAgentFrame } from './validate.js';

const plain = new Packr({ useRecords: false, mapsAsObjects: true });
const refusal = (bytes: Buffer | number[]): string => {
  try {
    decodeMsgpack(Buffer.from(bytes));
  } catch (err) {
    if (err instanceof MsgpackDecodeError) return err.message;
    throw err;
  }
  return 'accepted';
};

describe('decodeMsgpack', () => {
  it('decodes every protocol message to what JSON would carry', () => {
    fc.assert(
      fc.property(fc.oneof(agentToHubArb, hubToAgentArb), (m) => {
        expect(decodeMsgpack(plain.pack(m))).toEqual(JSON.parse(JSON.stringify(m)));
      }),
      fcParams({ numRuns: 300 }),
    );
  });

  it('decodes any JSON value as JSON.parse does, at every width of every type', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(decodeMsgpack(plain.pack(v))).toEqual(JSON.parse(JSON.stringify(v)));
      }),
      fcParams({ numRuns: 500 }),
    );
    for (const n of [0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, 0.5, -1e300]) {
      expect(decodeMsgpack(plain.pack(n))).toBe(n);
    }
    for (const len of [0, 31, 32, 255, 256, 65535, 65536]) expect(decodeMsgpack(plain.pack('x'.repeat(len)))).toBe('x'.repeat(len));
    expect(decodeMsgpack(plain.pack('ünïcödé ✓ 𝄞'))).toBe('ünïcödé ✓ 𝄞');
    const big = Array.from({ length: 70_000 }, (_, i) => i);
    expect(decodeMsgpack(plain.pack(big))).toEqual(big);
    const wide = Object.fromEntries(Array.from({ length: 70_000 }, (_, i) => [`k${i}`, i]));
    expect(decodeMsgpack(new Packr({ useRecords: false, variableMapSize: true }).pack(wide))).toEqual(wide);
  });

  it('refuses every extension type, fixed and variable length', () => {
    for (let type = 0; type < 256; type++) {
      const t = type > 127 ? type - 256 : type;
      const byte = t & 0xff;
      for (const bytes of [[0xd4, byte, 0], [0xd5, byte, 0, 0], [0xd6, byte, 0, 0, 0, 0], [0xd7, byte, ...Array(8).fill(0)], [0xd8, byte, ...Array(16).fill(0)], [0xc7, 1, byte, 0], [0xc8, 0, 1, byte, 0], [0xc9, 0, 0, 0, 1, byte, 0]]) {
        expect(refusal(bytes)).toBe(`extension type 0x${byte.toString(16).padStart(2, '0')} is not accepted (a frame holds JSON data)`);
      }
    }
  });

  it('refuses bin, non-string keys, the unused byte, bytes after the value and truncated data', () => {
    expect(refusal([0xc4, 1, 0x41])).toMatch(/bin values are not accepted/);
    expect(refusal([0x81, 0x01, 0x02])).toMatch(/a map key is not a string/);
    expect(refusal([0xc1])).toBe('byte 0xc1 is not a MessagePack type');
    expect(refusal([0xc0, 0xc0])).toBe('1 bytes after the value');
    expect(refusal([0xa5, 0x61])).toBe('unexpected end of data');
    expect(refusal([0xdd, 0xff, 0xff, 0xff, 0xff])).toBe('unexpected end of data');
    expect(refusal(Array(200).fill(0x91).concat([0xc0]))).toMatch(/nested deeper than/);
  });

  it('refuses invalid UTF-8 where it would have become U+FFFD, as JSON frames do', () => {
    for (const bad of [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0x61, 0x80, 0x62]]) {
      expect(refusal([0xa0 | bad.length, ...bad])).toBe('a string is not valid UTF-8');
      const long = [...Array(40).fill(0x61), ...bad];
      expect(refusal([0xd9, long.length, ...long])).toBe('a string is not valid UTF-8');
      const text = Buffer.from([...Buffer.from('{"type":"sync.applied","id":"'), ...bad, ...Buffer.from('","offset":1}')]);
      expect(decodeFrame(jsonCodec, text)).toMatchObject({ ok: false, error: { code: 'malformed_frame' } });
    }
  });
});

describe('MessagePack frames built with msgpackr extensions', () => {
  afterEach(() => vi.restoreAllMocks());

  const extended = new Packr({ moreTypes: true, structuredClone: true });
  // msgpackr with moreTypes packs these as extensions (records, RegExp, Error, Date, Set, Map, typed arrays, bundled strings).
  const hostile: [string, unknown][] = [
    ['RegExp', /a+/gi],
    ['Error', new Error('boom')],
    ['Date', new Date(0)],
    ['Set', new Set([1])],
    ['Map', new Map([[1, 2]])],
    ['typed array', new Uint16Array([1, 2])],
  ];

  it('get malformed_frame in a row value, and no constructor runs', () => {
    const frames = hostile.map(([what, value]): [string, Buffer] => [
      what,
      extended.pack({ type: 'sync.batch', id: '1', batch_id: 'b', changes: [{ table: 'public.t', op: 'insert', pk: { id: '1' }, row: { id: '1', v: value }, hlc: '0000000000000000', vv: { a: 1 }, origin: 'a', seq: 1, tx: '1' }] }),
    ]);
    frames.push(['bigint', new Packr({ useBigIntExtension: true }).pack({ v: 2n ** 70n })]);
    frames.push(['records and bundled strings', new Packr({ useRecords: true, bundleStrings: true }).pack([{ a: 'x'.repeat(40), b: 1 }, { a: 'y', b: 2 }])]);
    // Spied only now: msgpackr's packer finds its extensions by these constructors.
    const regexp = vi.spyOn(globalThis, 'RegExp');
    const error = vi.spyOn(globalThis, 'Error');
    for (const [what, frame] of frames) {
      expect(decodeFrame(msgpackCodec, frame), what).toMatchObject({ ok: false, error: { code: 'malformed_frame' } });
    }
    expect(regexp).not.toHaveBeenCalled();
    expect(error).not.toHaveBeenCalled();
  });

  it('a __proto__ key is refused by name, as in a JSON frame', () => {
    const text = `{"type":"sync.batch","id":"1","batch_id":"b","changes":[{"table":"public.t","op":"insert","pk":{"id":"1"},"row":{"__proto__":{"polluted":true},"id":"1"},"hlc":"0000000000000000","vv":{"a":1},"origin":"a","seq":1,"tx":"1"}]}`;
    const viaJson = decodeFrame(jsonCodec, text);
    const viaMsgpack = decodeFrame(msgpackCodec, plain.pack(JSON.parse(text)));
    for (const d of [viaJson, viaMsgpack]) {
      expect(d.ok).toBe(true);
      expect(parseAgentFrame(d.ok ? d.value : null)).toMatchObject({ ok: false, error: { code: 'invalid_frame', field: 'changes.0.row.__proto__' } });
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
