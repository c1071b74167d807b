import { createHmac, createSecretKey } from 'node:crypto';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createTokenService, TokenError, verifyHs256 } from './jwt.js';

const secret = new Uint8Array(Buffer.alloc(32, 7));
const other = new Uint8Array(Buffer.alloc(32, 9));
const keys = [
  { kid: 'k1', secret },
  { kid: 'k0', secret: other },
];
const NOW = 1_800_000_000_000;
const now = () => NOW;
const nowS = NOW / 1000;
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

function sign(payload: Record<string, unknown>, header: Record<string, unknown> = { alg: 'HS256', kid: 'k1' }, key = secret): string {
  const signing = `${b64(header)}.${b64(payload)}`;
  return `${signing}.${createHmac('sha256', key).update(signing).digest('base64url')}`;
}

const good = { tid: 'acme', sub: 'store-1', iss: 'hub-broker', iat: nowS, exp: nowS + 60 };

async function reason(token: string): Promise<string> {
  try {
    await createTokenService(keys, 900, now).verify(token);
    return 'accepted';
  } catch (err) {
    if (err instanceof TokenError) return err.reason;
    throw err;
  }
}

describe('branch tokens', () => {
  it('verifies what it issues, and what jose signs with any configured key', async () => {
    const service = createTokenService(keys, 900, now);
    const { token } = await service.issue('acme', 'store-1');
    expect(await service.verify(token)).toEqual({ tenantId: 'acme', branchId: 'store-1', exp: nowS + 900 });
    const byJose = await new SignJWT({ tid: 'acme' })
      .setProtectedHeader({ alg: 'HS256', kid: 'k0' })
      .setSubject('store-2')
      .setIssuer('hub-broker')
      .setExpirationTime(nowS + 10)
      .sign(createSecretKey(Buffer.from(other)));
    expect(await service.verify(byJose)).toMatchObject({ branchId: 'store-2' });
  });

  it('refuses forged, foreign, malformed and expired tokens with the right reason', async () => {
    const [h, p] = sign(good).split('.') as [string, string];
    expect(await reason(sign(good))).toBe('accepted');
    expect(await reason(sign({ ...good, exp: nowS }))).toBe('token_expired');
    expect(await reason(sign(good, { alg: 'HS256', kid: 'k1' }, new Uint8Array(Buffer.alloc(32, 1))))).toBe('token_invalid');
    expect(await reason(sign(good, { alg: 'HS256', kid: 'k9' }))).toBe('token_invalid');
    expect(await reason(sign(good, { alg: 'HS256' }))).toBe('token_invalid');
    expect(await reason(`${b64({ alg: 'none', kid: 'k1' })}.${p}.`)).toBe('token_invalid');
    expect(await reason(sign(good, { alg: 'HS512', kid: 'k1' }))).toBe('token_invalid');
    expect(await reason(sign(good, { alg: 'HS256', kid: 'k1', crit: ['b64'], b64: false }))).toBe('token_invalid');
    // A payload changed after signing (another tenant) fails the signature.
    expect(await reason(`${h}.${b64({ ...good, tid: 'other' })}.${sign(good).split('.')[2]}`)).toBe('token_invalid');
    expect(await reason(sign({ ...good, iss: 'someone' }))).toBe('token_invalid');
    expect(await reason(sign({ ...good, nbf: nowS + 30 }))).toBe('token_invalid');
    expect(await reason(sign({ ...good, sub: undefined }))).toBe('token_invalid');
    expect(await reason(sign({ ...good, tid: 'Not A Label' }))).toBe('token_invalid');
    expect(await reason(sign({ ...good, exp: String(nowS + 60) }))).toBe('token_invalid');
    for (const junk of ['', 'a.b', 'a.b.c.d', `${h}.${p}.sig+/=`, `${h}.${Buffer.from('[1]').toString('base64url')}.x`, 'x'.repeat(5000)]) {
      expect(await reason(junk)).toBe('token_invalid');
    }
    expect(() => verifyHs256(sign(good), new Map(), now)).toThrow(TokenError);
  });
});
