/**
 * Branch tokens: HS256 JWTs with a `kid` header, claims `tid` (tenant), `sub` (branch) and
 * `exp`. The first configured key signs; every configured key verifies, so keys rotate by
 * adding the new one first, waiting one token lifetime, then removing the old one.
 */
import { createSecretKey, type KeyObject } from 'node:crypto';
import { errors, jwtVerify, SignJWT, type JWTHeaderParameters } from 'jose';
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
      if (token.length > 4096) throw new TokenError('token_invalid', 'token too long');
      let result;
      try {
        result = await jwtVerify(
          token,
          (header: JWTHeaderParameters) => {
            const key = header.kid === undefined ? undefined : byKid.get(header.kid);
            if (!key) throw new TokenError('token_invalid', 'unknown key id');
            return key;
          },
          // Only HS256: `alg: none` and algorithm confusion are refused before any key is used.
          { algorithms: ['HS256'], issuer: ISSUER, requiredClaims: ['exp', 'sub'], currentDate: new Date(now()) },
        );
      } catch (err) {
        if (err instanceof TokenError) throw err;
        if (err instanceof errors.JWTExpired) throw new TokenError('token_expired', 'token expired');
        throw new TokenError('token_invalid', 'token invalid');
      }
      const { tid, sub, exp } = result.payload;
      if (!IdSchema.safeParse(tid).success || !IdSchema.safeParse(sub).success || typeof exp !== 'number') {
        throw new TokenError('token_invalid', 'token claims invalid');
      }
      return { tenantId: tid as string, branchId: sub as string, exp };
    },
  };
}
