/**
 * `POST {HUB_URL}/auth/token {tenant_id, branch_id, api_key}` → `{token, expires_at}`. Plain
 * node:http(s), so a configured CA applies exactly as it does to the WebSocket (trustedCas, used
 * by both).
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';

export interface TokenGrant {
  readonly token: string;
  readonly expiresAtMs: number;
}

export type TokenErrorKind = 'unauthorized' | 'rate_limited' | 'bad_request' | 'unavailable' | 'bad_response';

export class TokenError extends Error {
  override readonly name = 'TokenError';
  constructor(
    readonly kind: TokenErrorKind,
    message: string,
    /** From Retry-After, when the hub sent one. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export interface TokenRequest {
  readonly url: URL;
  readonly tenantId: string;
  readonly branchId: string;
  readonly apiKey: string;
  readonly ca?: readonly (string | Buffer)[];
  readonly timeoutMs?: number;
}

export function requestToken(r: TokenRequest): Promise<TokenGrant> {
  const body = JSON.stringify({ tenant_id: r.tenantId, branch_id: r.branchId, api_key: r.apiKey });
  const secure = r.url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const req = (secure ? httpsRequest : httpRequest)(
      r.url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), accept: 'application/json' },
        timeout: r.timeoutMs ?? 15_000,
        ...(secure && r.ca ? { ca: [...r.ca] } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          if (chunks.reduce((n, x) => n + x.length, 0) < 64 * 1024) chunks.push(c);
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          if (status === 200) {
            try {
              const json = JSON.parse(text) as { token?: unknown; expires_at?: unknown };
              const at = typeof json.expires_at === 'string' ? Date.parse(json.expires_at) : NaN;
              if (typeof json.token !== 'string' || json.token === '' || !Number.isFinite(at)) {
                reject(new TokenError('bad_response', 'token response lacks token or expires_at'));
                return;
              }
              resolve({ token: json.token, expiresAtMs: at });
            } catch {
              reject(new TokenError('bad_response', 'token response is not JSON'));
            }
            return;
          }
          const retry = Number(res.headers['retry-after']);
          const retryAfterMs = Number.isFinite(retry) && retry > 0 ? retry * 1000 : undefined;
          if (status === 401) reject(new TokenError('unauthorized', 'the hub refused the tenant, branch and API key (401)'));
          else if (status === 429) reject(new TokenError('rate_limited', 'too many authentication attempts (429)', retryAfterMs));
          else if (status === 400) reject(new TokenError('bad_request', `the hub rejected the token request (400)`));
          else reject(new TokenError('unavailable', `token request answered ${status}`, retryAfterMs));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('token request timed out')));
    req.on('error', (err) => reject(new TokenError('unavailable', `token request failed: ${err.message}`)));
    req.end(body);
  });
}

/** The CA list for https and wss: Node's bundle plus the configured file, or undefined for the default. */
export function trustedCas(caFile: string | undefined): (string | Buffer)[] | undefined {
  if (caFile === undefined) return undefined;
  return [...rootCertificates, readFileSync(caFile)];
}
