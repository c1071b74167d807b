/**
 * `auth.refresh` on an open connection: the new token must be valid and for the same branch.
 * Refusals are counted by reason and answered `token_invalid` (a violation).
 */
import type { HubContext } from '../context.js';
import { HubError } from '../errors.js';
import { TokenError } from './jwt.js';

/** The new token's expiry (seconds since the epoch), or throws `token_invalid`. */
export async function verifyRefresh(ctx: HubContext, session: { readonly tenantId: string; readonly branchId: string }, token: string): Promise<number> {
  let claims;
  try {
    claims = await ctx.tokens.verify(token);
  } catch (err) {
    ctx.metrics.authFailures.inc({ reason: err instanceof TokenError ? err.reason : 'token_invalid' });
    throw new HubError('token_invalid', 'auth.refresh: token invalid or expired');
  }
  if (claims.tenantId !== session.tenantId || claims.branchId !== session.branchId) {
    ctx.metrics.authFailures.inc({ reason: 'token_other_branch' });
    throw new HubError('token_invalid', 'auth.refresh: token is for another branch');
  }
  return claims.exp;
}
