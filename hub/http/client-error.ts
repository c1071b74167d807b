/**
 * The answer to a request Node's HTTP parser refused before any handler ran. Node's own
 * default would do, but a `clientError` listener replaces it, and destroying the socket right
 * after writing made clients see a reset instead of the status.
 */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

export interface ParserError extends Error {
  readonly code?: string;
  readonly rawPacket?: Buffer;
}

/** 414 for a request line over the header limit, 431 for headers over it, 408 for a timeout, else 400. */
export function clientErrorStatus(err: ParserError): 400 | 408 | 414 | 431 {
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    const packet = err.rawPacket;
    // The request line alone did not end within what was read: the URL is what is too long.
    return packet !== undefined && !packet.includes('\r\n') ? 414 : 431;
  }
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  return 400;
}

/** Sockets already answered: the parser may report more errors while the rest of the request arrives. */
const answered = new WeakSet<Duplex>();

/**
 * Writes the status and closes once it is sent; a socket that goes quiet is destroyed after a
 * second. Returns the status, or null when the socket was answered already.
 */
export function answerClientError(err: ParserError, socket: Duplex): number | null {
  if (answered.has(socket)) return null;
  answered.add(socket);
  const status = clientErrorStatus(err);
  if (!socket.writable) {
    socket.destroy();
    return status;
  }
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  setTimeout(() => socket.destroy(), 1000).unref();
  return status;
}
