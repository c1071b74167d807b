/**
 * Protocol-level errors are values with a stable code that users can search the docs for.
 * Hub and agent map these codes to error frames, close codes and metrics in one place each.
 */
export type ProtocolErrorCode =
  | 'malformed_frame' // bytes that do not decode with the negotiated codec
  | 'invalid_frame' // decoded, but not a valid message of any known type
  | 'unknown_type' // an envelope whose type this side does not accept
  | 'frame_too_large'
  | 'clock_skew'; // a remote HLC timestamp too far ahead of the local wall clock

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
    /** Dotted path of the offending field, e.g. `changes.3.op`; empty for the whole frame. */
    readonly field = '',
  ) {
    super(message);
  }
}
