/**
 * What the `ws` library did when it failed a connection itself (a frame over the size limit, a
 * text frame that is not UTF-8, a protocol error): it sends the close code, but the socket's own
 * close event then says 1006, so the connection keeps the code for its metric from here.
 */

/** `ws` keeps the close code it sent under this symbol (lib/constants.js `kStatusCode`). */
const STATUS_CODE = 'status-code';

export interface WsFailure {
  /** The close code `ws` sent (1002, 1007, 1009…), when it sent one. */
  readonly closeCode: number | undefined;
  /** The frame (or its declared length) was over the size limit: a limit violation. */
  readonly tooLarge: boolean;
}

export function wsFailure(err: Error & { code?: string }): WsFailure {
  const sym = Object.getOwnPropertySymbols(err).find((s) => s.description === STATUS_CODE);
  const code = sym === undefined ? undefined : (err as unknown as Record<symbol, unknown>)[sym];
  return {
    closeCode: typeof code === 'number' ? code : undefined,
    tooLarge: err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' || err.code === 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH',
  };
}
