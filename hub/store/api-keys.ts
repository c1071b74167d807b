import { randomBytes } from 'node:crypto';
import argon2 from 'argon2';

/** argon2id cost. The defaults follow OWASP's minimum (19 MiB, 2 passes); tests may lower them. */
export interface Argon2Params {
  readonly memoryCost: number; // KiB
  readonly timeCost: number;
  readonly parallelism: number;
}

export const DEFAULT_ARGON2: Argon2Params = { memoryCost: 19_456, timeCost: 2, parallelism: 1 };

/** 32 random bytes, base64url: what a branch presents to `/auth/token`. */
export function generateApiKey(): string {
  return randomBytes(32).toString('base64url');
}

export function hashApiKey(key: string, params: Argon2Params = DEFAULT_ARGON2): Promise<string> {
  return argon2.hash(key, { type: argon2.argon2id, ...params });
}

/** Never throws: a malformed stored hash is simply a mismatch. */
export async function verifyApiKey(hash: string, key: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, key);
  } catch {
    return false;
  }
}

let dummy: Promise<string> | undefined;

/**
 * Spends the same time as a real verification, for unknown branches and missing keys,
 * so response time does not tell an attacker which branch ids exist.
 */
export async function verifyAgainstDummy(key: string, params: Argon2Params): Promise<false> {
  dummy ??= hashApiKey(generateApiKey(), params);
  await verifyApiKey(await dummy, key);
  return false;
}
