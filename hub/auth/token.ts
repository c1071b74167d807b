/**
 * `POST /auth/token {tenant_id, branch_id, api_key}` → `{token, expires_at}`. The only place
 * argon2 runs. Every failure (unknown branch, wrong key, suspended) gets the same 401 body, so
 * the answer reveals nothing; the reason goes to the metrics and the audit log only.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { IdSchema } from '../../protocol/index.js';
import type { HubContext } from '../context.js';
import { BODY_ERROR_CODE, BodyError, errorBody, readJson, sendError, sendJson } from '../http/respond.js';

const TokenRequestSchema = z.object({
  tenant_id: IdSchema,
  branch_id: IdSchema,
  api_key: z.string().min(1).max(256),
});

export const UNAUTHORIZED_BODY = errorBody('unauthorized', 'invalid credentials');

export async function handleTokenRequest(ctx: HubContext, req: IncomingMessage, res: ServerResponse, source: string): Promise<void> {
  const { metrics } = ctx;
  const limit = await ctx.limiter.auth(source);
  if (!limit.allowed) {
    metrics.rateLimited.inc({ scope: 'auth' });
    metrics.limitViolations.inc({ limit: 'auth_attempts' });
    sendError(req, res, 429, 'rate_limited', 'too many authentication attempts; retry later', {
      'retry-after': String(Math.max(1, Math.ceil(limit.retryAfterMs / 1000))),
    });
    return;
  }
  let body: unknown;
  try {
    body = await readJson(req, 4096);
  } catch (err) {
    if (!(err instanceof BodyError)) throw err;
    metrics.authFailures.inc({ reason: 'bad_request' });
    // A refused body may still be arriving; close the connection rather than read it all.
    if (!req.complete) res.setHeader('connection', 'close');
    sendError(req, res, err.status, BODY_ERROR_CODE[err.status], err.message);
    return;
  }
  const parsed = TokenRequestSchema.safeParse(body);
  if (!parsed.success) {
    metrics.authFailures.inc({ reason: 'bad_request' });
    const issue = parsed.error.issues[0];
    sendError(req, res, 400, 'invalid_request', issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'invalid body');
    return;
  }
  const { tenant_id: tenantId, branch_id: branchId, api_key: apiKey } = parsed.data;
  const check = await ctx.store.verifyBranchKey(tenantId, branchId, apiKey);
  if (!check.ok) {
    metrics.authFailures.inc({ reason: check.reason });
    await ctx.store
      .audit({ tenantId, branchId, event: 'auth.failed', source, detail: { reason: check.reason } })
      .catch((err: unknown) => ctx.logger.warn({ err }, 'audit write failed'));
    sendJson(req, res, 401, UNAUTHORIZED_BODY);
    return;
  }
  const issued = await ctx.tokens.issue(tenantId, branchId);
  metrics.authIssued.inc({ via: 'api_key' });
  sendJson(req, res, 200, {
    token: issued.token,
    token_type: 'Bearer',
    expires_at: issued.expiresAt.toISOString(),
    expires_in: ctx.config.tokenTtlSeconds,
  }, { 'cache-control': 'no-store' });
}
