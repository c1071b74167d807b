/**
 * Every error the hub answers with, in one place: its error-frame code, whether it also
 * closes the socket (and with which close code), its HTTP status and its metric label.
 * Codes are the ones documented in docs/architecture.md, so users can search for them.
 */
import type { ProtocolError } from '../protocol/index.js';

export type HubErrorCode =
  | 'invalid_frame'
  | 'malformed_frame'
  | 'unknown_type'
  | 'frame_too_large'
  | 'batch_too_large'
  | 'forged_origin'
  | 'unknown_target'
  | 'forbidden_target'
  | 'forbidden_table'
  | 'clock_ahead'
  | 'rate_limited'
  | 'snapshot_unavailable'
  | 'token_invalid'
  | 'internal';

/** WebSocket close codes the hub sends (see docs/architecture.md). */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  tooBig: 1009,
  restart: 1012,
  tokenExpired: 4001,
  suspended: 4003,
  slowConsumer: 4008,
  replaced: 4009,
  violations: 4029,
} as const;
export type CloseCode = (typeof CLOSE)[keyof typeof CLOSE];

/** Reason strings sent with each close code (at most 123 bytes). */
export const CLOSE_REASON: Record<CloseCode, string> = {
  1000: 'bye',
  1001: 'hub going away',
  1009: 'frame too large',
  1012: 'hub restarting: reconnect',
  4001: 'token expired',
  4003: 'tenant or branch suspended or deleted',
  4008: 'slow consumer: send buffer over the cap',
  4009: 'replaced by a newer connection of this branch',
  4029: 'too many protocol violations',
};

interface ErrorSpec {
  /** Whether the frame counts as a protocol violation (towards close 4029). */
  readonly violation: boolean;
  /** HTTP status when the error ends an HTTP request. */
  readonly http: number;
}

const SPECS: Record<HubErrorCode, ErrorSpec> = {
  invalid_frame: { violation: true, http: 400 },
  malformed_frame: { violation: true, http: 400 },
  unknown_type: { violation: true, http: 400 },
  frame_too_large: { violation: true, http: 413 },
  batch_too_large: { violation: true, http: 413 },
  forged_origin: { violation: true, http: 403 },
  // A client looping over bad targets costs an audit row and a directory reload each: a violation.
  unknown_target: { violation: true, http: 404 },
  forbidden_target: { violation: true, http: 403 },
  // Routes changed under an agent, or one configured with a table its groups may not send: not an attack.
  forbidden_table: { violation: false, http: 403 },
  // A branch whose clock runs fast says nothing about intent; it is refused, counted and audited.
  clock_ahead: { violation: false, http: 400 },
  rate_limited: { violation: false, http: 429 },
  snapshot_unavailable: { violation: false, http: 503 },
  token_invalid: { violation: true, http: 401 },
  internal: { violation: false, http: 500 },
};

/** An error answered to one frame; the connection goes on (unless violations pile up). */
export class HubError extends Error {
  override readonly name = 'HubError';
  constructor(
    readonly code: HubErrorCode,
    message: string,
  ) {
    super(message);
  }

  get violation(): boolean {
    return SPECS[this.code].violation;
  }

  get httpStatus(): number {
    return SPECS[this.code].http;
  }
}

// eslint-disable-next-line no-control-regex
const UNSAFE_TEXT = /[\u0000-\u001f\u007f]|\p{Surrogate}/gu;

/**
 * Error messages may quote what a client sent (a type name, a parser's complaint); control
 * characters and lone surrogates are replaced so that the error frame itself is always valid.
 */
export function safeMessage(message: string): string {
  return message.slice(0, 1024).replace(UNSAFE_TEXT, '\uFFFD');
}

export function fromProtocolError(err: ProtocolError): HubError {
  const code: HubErrorCode = err.code === 'clock_skew' ? 'invalid_frame' : err.code;
  return new HubError(code, err.message);
}

/** Why an HTTP upgrade to /ws was refused; the status is what the client sees. */
export type UpgradeRefusal = 'token_missing' | 'token_invalid' | 'token_expired' | 'suspended' | 'capacity' | 'draining' | 'not_found' | 'internal';

export const UPGRADE_STATUS: Record<UpgradeRefusal, number> = {
  token_missing: 401,
  token_invalid: 401,
  token_expired: 401,
  suspended: 403,
  capacity: 503,
  draining: 503,
  not_found: 404,
  internal: 500,
};
