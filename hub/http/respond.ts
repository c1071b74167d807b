/** Small HTTP helpers: JSON bodies in and out, compressed when the client accepts it. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { brotliCompressSync, constants as zlib, gzipSync } from 'node:zlib';

/** Bodies smaller than this are sent as they are: compressing them costs more than it saves. */
const COMPRESS_MIN_BYTES = 1024;

/** The error code each body refusal is answered with, on /auth/token and the admin API alike. */
export const BODY_ERROR_CODE = {
  400: 'invalid_request',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
} as const;

export class BodyError extends Error {
  constructor(
    readonly status: 400 | 413 | 415,
    message: string,
  ) {
    super(message);
  }
}

/** Reads a JSON body of at most `maxBytes`. Throws `BodyError`. */
export async function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') throw new BodyError(415, 'content-type must be application/json');
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxBytes) throw new BodyError(413, `body larger than ${maxBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > maxBytes) throw new BodyError(413, `body larger than ${maxBytes} bytes`);
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof BodyError) throw err;
    // The client went away mid-body: its request, not the hub, failed (no error-level log).
    throw new BodyError(400, 'the request body was cut off');
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new BodyError(400, 'body is not valid JSON');
  }
}

/** The best encoding the client accepts among br and gzip, or none. */
export function chooseEncoding(acceptEncoding: string | undefined): 'br' | 'gzip' | undefined {
  if (!acceptEncoding) return undefined;
  const accepted = new Map<string, number>();
  for (const part of acceptEncoding.toLowerCase().split(',')) {
    const [name, ...params] = part.trim().split(';');
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    accepted.set((name ?? '').trim(), q ? Number(q.slice(2)) : 1);
  }
  const ok = (n: string) => (accepted.get(n) ?? accepted.get('*') ?? 0) > 0;
  if (ok('br')) return 'br';
  if (ok('gzip')) return 'gzip';
  return undefined;
}

/** Sends a body, compressed with br or gzip when the client accepts it and it is worth it. */
export function sendBody(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body: string | Buffer,
  contentType: string,
  headers: Record<string, string> = {},
): void {
  let data = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const out: Record<string, string | number> = { 'content-type': contentType, vary: 'accept-encoding', ...headers };
  const encoding = data.length >= COMPRESS_MIN_BYTES ? chooseEncoding(req.headers['accept-encoding']) : undefined;
  if (encoding === 'br') {
    data = brotliCompressSync(data, { params: { [zlib.BROTLI_PARAM_QUALITY]: 4 } });
    out['content-encoding'] = 'br';
  } else if (encoding === 'gzip') {
    data = gzipSync(data);
    out['content-encoding'] = 'gzip';
  }
  out['content-length'] = data.length;
  res.writeHead(status, out);
  res.end(req.method === 'HEAD' ? undefined : data);
}

export function sendJson(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  sendBody(req, res, status, JSON.stringify(body), 'application/json; charset=utf-8', headers);
}

/** Error bodies share one shape: `{error: {code, message}}` (docs/api.md). */
export function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
}

export function sendError(req: IncomingMessage, res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(req, res, status, errorBody(code, message), headers);
}

/** The client's address: the socket's, or the first X-Forwarded-For hop when behind a trusted proxy. */
export function sourceAddress(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const fwd = req.headers['x-forwarded-for'];
    const first = (Array.isArray(fwd) ? fwd[0] : fwd)?.split(',')[0]?.trim();
    if (first) return first;
  }
  return req.socket.remoteAddress ?? 'unknown';
}
