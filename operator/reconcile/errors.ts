/**
 * Why a reconcile did not finish, as a value: the reason goes to the Ready condition, the
 * message to the condition and an Event; the reconcile is retried with backoff.
 */
import { StoreError } from '../../hub/store/index.js';
import { Reason, type ReasonName } from '../api/reasons.js';
import { KubeError } from '../kube/client.js';

export class ReconcileFailure extends Error {
  override readonly name = 'ReconcileFailure';
  constructor(
    readonly reason: ReasonName,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// node-postgres surfaces network failures as plain Errors with a system code, and server
// errors with a SQLSTATE; class 08 is "connection exception", 57P0x "operator intervention".
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);

function isDatabaseUnavailable(err: Error & { code?: string }): boolean {
  const code = err.code ?? '';
  return (
    NETWORK_CODES.has(code) ||
    code.startsWith('08') ||
    code.startsWith('57P') ||
    code === '28P01' || // invalid password
    code === '3D000' || // database does not exist
    /timeout|terminated|Connection terminated/i.test(err.message)
  );
}

/** Any error thrown during a reconcile, as a failure with a reason. */
export function toFailure(err: unknown): ReconcileFailure {
  if (err instanceof ReconcileFailure) return err;
  if (err instanceof StoreError) {
    const reason = err.code === 'limit_exceeded' ? Reason.MaxBranchesExceeded : err.code === 'invalid' ? Reason.InvalidSpec : Reason.ReconcileError;
    return new ReconcileFailure(reason, err.message, { cause: err });
  }
  if (err instanceof KubeError) return new ReconcileFailure(Reason.ApiError, err.message, { cause: err });
  if (err instanceof Error && isDatabaseUnavailable(err)) {
    return new ReconcileFailure(Reason.DatabaseUnavailable, `hub database: ${err.message}`, { cause: err });
  }
  if (err instanceof Error && 'code' in err && typeof (err as { code?: unknown }).code === 'string') {
    // Any other SQLSTATE: the database answered, but not as expected.
    return new ReconcileFailure(Reason.DatabaseUnavailable, `hub database: ${err.message}`, { cause: err });
  }
  return new ReconcileFailure(Reason.ReconcileError, err instanceof Error ? err.message : String(err), { cause: err });
}
