import { isUtf8 } from 'node:buffer';
import { Packr, type Options } from 'msgpackr';
import { decodeMsgpack } from './msgpack-decode.js';
import { ProtocolError } from './errors.js';
import type { Message } from './messages.js';
import type { Result } from './validate.js';

export const SUBPROTOCOL_JSON = 'hubsync.v1';
export const SUBPROTOCOL_MSGPACK = 'hubsync.v1.msgpack';

/** What `ws` hands to a message listener. */
export type RawFrame = Buffer | ArrayBuffer | Buffer[] | string;

export interface Codec {
  readonly name: 'json' | 'msgpack';
  readonly subprotocol: string;
  /** Whether frames travel as binary WebSocket messages. */
  readonly binary: boolean;
  encode(message: Message): string | Buffer;
  /** Bytes → plain value; throws on bytes that are not this codec's format. Validate the result. */
  decodeUnchecked(data: Buffer): unknown;
}

export const jsonCodec: Codec = {
  name: 'json',
  subprotocol: SUBPROTOCOL_JSON,
  binary: false,
  encode: (message) => JSON.stringify(message),
  decodeUnchecked: (data) => {
    // toString would turn invalid bytes into U+FFFD; MessagePack frames refuse them too.
    if (!isUtf8(data)) throw new Error('not UTF-8');
    return JSON.parse(data.toString('utf8')) as unknown;
  },
};

// Plain maps and arrays only: no record extension, so any MessagePack implementation can talk to us;
// undefined fields are skipped so both codecs carry exactly the same messages.
// (`skipValues` exists in msgpackr but is missing from its type definitions.)
const packrOptions: Options & { skipValues: unknown[] } = {
  useRecords: false,
  mapsAsObjects: true,
  skipValues: [undefined],
};
const packr = new Packr(packrOptions);

export const msgpackCodec: Codec = {
  name: 'msgpack',
  subprotocol: SUBPROTOCOL_MSGPACK,
  binary: true,
  encode: (message) => packr.pack(message),
  // Not msgpackr's unpack: it runs extension decoders (RegExp, Error, records…) on what arrives.
  decodeUnchecked: (data) => decodeMsgpack(data),
};

export const CODECS: readonly Codec[] = [msgpackCodec, jsonCodec];

/** The codec for a negotiated WebSocket subprotocol; JSON when none was negotiated. */
export function codecForSubprotocol(protocol: string | undefined): Codec | undefined {
  if (protocol === undefined || protocol === '' || protocol === SUBPROTOCOL_JSON) return jsonCodec;
  if (protocol === SUBPROTOCOL_MSGPACK) return msgpackCodec;
  return undefined;
}

function toBuffer(data: RawFrame): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** Decodes a raw frame without throwing; the value still needs `parseAgentFrame`/`parseHubFrame`. */
export function decodeFrame(codec: Codec, data: RawFrame, maxBytes = Infinity): Result<unknown> {
  const buf = toBuffer(data);
  if (buf.length > maxBytes) {
    return {
      ok: false,
      error: new ProtocolError('frame_too_large', `frame of ${buf.length} bytes exceeds ${maxBytes}`),
    };
  }
  try {
    return { ok: true, value: codec.decodeUnchecked(buf) };
  } catch (err) {
    const reason = err instanceof Error ? err.message.slice(0, 120) : 'undecodable';
    return { ok: false, error: new ProtocolError('malformed_frame', `not valid ${codec.name}: ${reason}`) };
  }
}
