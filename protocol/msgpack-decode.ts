/**
 * A strict MessagePack decoder for frames from the network: exactly the values a JSON frame can
 * hold (maps with string keys, arrays, strings, numbers, booleans, nil), nothing else. Frames are
 * data, never objects, so every extension type (msgpackr's records, bundled strings, RegExp,
 * Error, Date, Set, typed arrays…) and bin are refused before any constructor could run, as are
 * invalid UTF-8 (JSON frames refuse it too), map keys that are not strings and bytes after the
 * value. A `__proto__` key stays an own key, as `JSON.parse` makes it, so that validation
 * refuses it by name for both codecs alike (protocol/validate.ts).
 */
import { MAX_FRAME_DEPTH } from './validate.js';

export class MsgpackDecodeError extends Error {
  override readonly name = 'MsgpackDecodeError';
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Deeper than validation allows is refused there; the margin only keeps the decoder off the stack's end. */
const MAX_DEPTH = MAX_FRAME_DEPTH + 8;

class Reader {
  private pos = 0;
  private readonly view: DataView;

  constructor(private readonly buf: Buffer) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  decode(): unknown {
    const v = this.value(0);
    if (this.pos !== this.buf.length) throw new MsgpackDecodeError(`${this.buf.length - this.pos} bytes after the value`);
    return v;
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new MsgpackDecodeError('unexpected end of data');
  }

  private u8(): number {
    this.need(1);
    return this.buf[this.pos++] as number;
  }

  private u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  private u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  private value(depth: number): unknown {
    const b = this.u8();
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b >= 0xa0 && b <= 0xbf) return this.str(b & 0x1f);
    if (b >= 0x90 && b <= 0x9f) return this.array(b & 0x0f, depth);
    if (b >= 0x80 && b <= 0x8f) return this.map(b & 0x0f, depth);
    switch (b) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xca: {
        this.need(4);
        const v = this.view.getFloat32(this.pos);
        this.pos += 4;
        return v;
      }
      case 0xcb: {
        this.need(8);
        const v = this.view.getFloat64(this.pos);
        this.pos += 8;
        return v;
      }
      case 0xcc:
        return this.u8();
      case 0xcd:
        return this.u16();
      case 0xce:
        return this.u32();
      case 0xcf: {
        // As JSON.parse reads a number beyond 2^53: the nearest double.
        this.need(8);
        const v = Number(this.view.getBigUint64(this.pos));
        this.pos += 8;
        return v;
      }
      case 0xd0: {
        this.need(1);
        return this.view.getInt8(this.pos++);
      }
      case 0xd1: {
        this.need(2);
        const v = this.view.getInt16(this.pos);
        this.pos += 2;
        return v;
      }
      case 0xd2: {
        this.need(4);
        const v = this.view.getInt32(this.pos);
        this.pos += 4;
        return v;
      }
      case 0xd3: {
        this.need(8);
        const v = Number(this.view.getBigInt64(this.pos));
        this.pos += 8;
        return v;
      }
      case 0xd9:
        return this.str(this.u8());
      case 0xda:
        return this.str(this.u16());
      case 0xdb:
        return this.str(this.u32());
      case 0xdc:
        return this.array(this.u16(), depth);
      case 0xdd:
        return this.array(this.u32(), depth);
      case 0xde:
        return this.map(this.u16(), depth);
      case 0xdf:
        return this.map(this.u32(), depth);
    }
    if (b >= 0xc4 && b <= 0xc6) throw new MsgpackDecodeError('bin values are not accepted (a frame holds JSON data)');
    if ((b >= 0xc7 && b <= 0xc9) || (b >= 0xd4 && b <= 0xd8)) throw new MsgpackDecodeError(`extension type ${this.extType(b)} is not accepted (a frame holds JSON data)`);
    throw new MsgpackDecodeError(`byte 0x${b.toString(16)} is not a MessagePack type`);
  }

  /** The type byte of the extension starting at `b`, for the message. */
  private extType(b: number): string {
    const at = this.pos + (b === 0xc7 ? 1 : b === 0xc8 ? 2 : b === 0xc9 ? 4 : 0);
    const t = this.buf[at];
    return t === undefined ? '(truncated)' : `0x${t.toString(16).padStart(2, '0')}`;
  }

  private str(n: number): string {
    this.need(n);
    const start = this.pos;
    this.pos += n;
    const buf = this.buf;
    // ASCII needs no decoder (short keys and values are most of a frame); the rest must be well-formed UTF-8.
    if (n <= 32) {
      let out = '';
      for (let i = start; i < start + n; i++) {
        const c = buf[i] as number;
        if (c > 0x7f) return this.utf8(start, n);
        out += String.fromCharCode(c);
      }
      return out;
    }
    return this.utf8(start, n);
  }

  private utf8(start: number, n: number): string {
    try {
      return utf8.decode(this.buf.subarray(start, start + n));
    } catch {
      throw new MsgpackDecodeError('a string is not valid UTF-8');
    }
  }

  private array(n: number, depth: number): unknown[] {
    if (depth >= MAX_DEPTH) throw new MsgpackDecodeError(`nested deeper than ${MAX_DEPTH} levels`);
    // Each element takes at least a byte: a declared length beyond the data is refused up front.
    this.need(n);
    const out = new Array<unknown>(n);
    for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
    return out;
  }

  private map(n: number, depth: number): Record<string, unknown> {
    if (depth >= MAX_DEPTH) throw new MsgpackDecodeError(`nested deeper than ${MAX_DEPTH} levels`);
    this.need(2 * n);
    const out: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const k = this.value(depth + 1);
      if (typeof k !== 'string') throw new MsgpackDecodeError('a map key is not a string (a frame holds JSON data)');
      const v = this.value(depth + 1);
      if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
      else out[k] = v;
    }
    return out;
  }
}

/** The value `buf` holds; throws `MsgpackDecodeError` naming what is not accepted. */
export function decodeMsgpack(buf: Buffer): unknown {
  return new Reader(buf).decode();
}
