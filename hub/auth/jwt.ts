/**
 * Branch tokens: HS256 JWTs with a `kid` header, claims `tid` (tenant), `sub` (branch) and
 * `exp`. The first configured key signs; every configured key verifies, so keys rotate by
 * adding the new one first, waiting one token lifetime, then removing the old one.
 *
 * jose signs. Verification is done here with node:crypto's HMAC, synchronously: jose verifies
 * through WebCrypto, whose job set-up cost ~180 µs per token on the 2-core benchmark machine,
 * a third of the hub's CPU per connection in a reconnect storm (docs/benchmarks.md). The checks
 * are jose's for this profile: HS256 only, known kid, signature, then iss, exp, nbf, sub.
 */
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { IdSchema } from '../../protocol/index.js';
import type { JwtKey } from '../config.js';

export interface BranchClaims {
  readonly tenantId: string;
  readonly branchId: string;
  /** Seconds since the epoch. */
  readonly exp: number;
}

export interface IssuedToken {
  readonly token: string;
  readonly expiresAt: Date;
}

export type TokenFailure = 'token_invalid' | 'token_expired';

export class TokenError extends Error {
  override readonly name = 'TokenError';
  constructor(
    readonly reason: TokenFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface TokenService {
  issue(tenantId: string, branchId: string): Promise<IssuedToken>;
  /** Throws `TokenError`. */
  verify(token: string): Promise<BranchClaims>;
}

const ISSUER = 'hub-broker';

export function createTokenService(keys: readonly JwtKey[], ttlSeconds: number, now: () => number = Date.now): TokenService {
  const first = keys[0];
  if (!first) throw new Error('createTokenService needs at least one key');
  const byKid = new Map<string, KeyObject>(keys.map((k) => [k.kid, createSecretKey(Buffer.from(k.secret))]));
  const signing = byKid.get(first.kid) as KeyObject;

  return {
    async issue(tenantId, branchId) {
      const iat = Math.floor(now() / 1000);
      const exp = iat + ttlSeconds;
      const token = await new SignJWT({ tid: tenantId })
        .setProtectedHeader({ alg: 'HS256', kid: first.kid, typ: 'JWT' })
        .setSubject(branchId)
        .setIssuer(ISSUER)
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .sign(signing);
      return { token, expiresAt: new Date(exp * 1000) };
    },

    async verify(token) {
      return verifyHs256(token, byKid, now);
    },
  };
}

const B64URL = /^[A-Za-z0-9_-]+$/;

function invalid(message: string): TokenError {
  return new TokenError('token_invalid', message);
}

function decodeJson(part: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw invalid('token malformed');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('token malformed');
  return value as Record<string, unknown>;
}

/** A compact HS256 JWS with the hub's claims. Throws `TokenError`; never trusts anything before the signature checks out. */
export function verifyHs256(token: string, keys: ReadonlyMap<string, KeyObject>, now: () => number = Date.now): BranchClaims {
  if (token.length > 4096) throw invalid('token too long');
  const parts = token.split('.');
  if (parts.length !== 3) throw invalid('token malformed');
  const [h, p, sig] = parts as [string, string, string];
  if (!B64URL.test(h) || !B64URL.test(p) || !B64URL.test(sig)) throw invalid('token malformed');
  const header = decodeJson(h);
  // Only HS256: `alg: none` and algorithm confusion are refused before any key is used.
  if (header.alg !== 'HS256') throw invalid('token invalid');
  // Extensions we do not implement (crit, unencoded payloads) are refused, as jose does.
  if (header.crit !== undefined || header.b64 !== undefined) throw invalid('token invalid');
  const key = typeof header.kid === 'string' ? keys.get(header.kid) : undefined;
  if (!key) throw invalid('unknown key id');
  const expected = createHmac('sha256', key).update(`${h}.${p}`).digest();
  const given = Buffer.from(sig, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid('token invalid');

  const claims = decodeJson(p);
  const { tid, sub, exp, nbf, iat, iss } = claims;
  if (iss !== ISSUER) throw invalid('token invalid');
  if (iat !== undefined && (typeof iat !== 'number' || !Number.isFinite(iat))) throw invalid('token invalid');
  if (typeof exp !== 'number' || !Number.isFinite(exp)) throw invalid('token invalid');
  const nowSeconds = Math.floor(now() / 1000);
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf > nowSeconds)) throw invalid('token invalid');
  if (exp <= nowSeconds) throw new TokenError('token_expired', 'token expired');
  if (!IdSchema.safeParse(tid).success || !IdSchema.safeParse(sub).success) throw invalid('token claims invalid');
  return { tenantId: tid as string, branchId: sub as string, exp };
}
