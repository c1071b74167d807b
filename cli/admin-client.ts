/** A small client of the hub's admin API (docs/api.md), used by `hub-broker admin`. */

/** The hub answered with an error (`{error: {code, message}}`), or not with JSON at all. */
export class AdminApiError extends Error {
  override readonly name = 'AdminApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The hub could not be asked: bad URL, unreachable, timed out. */
export class AdminClientError extends Error {
  override readonly name = 'AdminClientError';
}

/**
 * The hub's base URL from `--hub-url`/`HUB_URL`. The agent's `wss://…` form is accepted too
 * (it names the same host), so one HUB_URL serves both.
 */
export function adminBaseUrl(raw: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new AdminClientError(`hub URL "${raw.slice(0, 200)}" is not a URL`);
  }
  const scheme = u.protocol.replace(/:$/, '');
  if (!['http', 'https', 'ws', 'wss'].includes(scheme)) throw new AdminClientError(`hub URL: scheme must be https or http (got ${scheme})`);
  if (u.username !== '' || u.password !== '') throw new AdminClientError('hub URL must not carry credentials');
  const secure = scheme === 'https' || scheme === 'wss';
  return new URL(`${secure ? 'https' : 'http'}://${u.host}${u.pathname.replace(/\/+$/, '')}`);
}

export function isLoopback(u: URL): boolean {
  const h = u.hostname.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\./.test(h);
}

export interface AdminClientOptions {
  readonly baseUrl: URL;
  readonly token: string;
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
}

export class AdminClient {
  private readonly fetch: typeof fetch;

  constructor(private readonly options: AdminClientOptions) {
    this.fetch = options.fetch ?? fetch;
  }

  /** Sends one request; resolves with the parsed JSON answer of a 2xx, throws otherwise. */
  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const url = `${this.options.baseUrl.href.replace(/\/$/, '')}${path}`;
    let res: Response;
    try {
      res = await this.fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${this.options.token}`,
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 30_000),
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const why = e.name === 'TimeoutError' ? 'timed out' : (e.cause?.code ?? e.cause?.message ?? e.message);
      throw new AdminClientError(`cannot reach the hub at ${this.options.baseUrl.origin}: ${why}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (res.ok) {
      if (json === undefined) throw new AdminApiError(res.status, 'bad_response', `HTTP ${res.status} without a JSON body (is ${this.options.baseUrl.origin} a hub?)`);
      return json as T;
    }
    const error = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    if (error && typeof error.code === 'string' && typeof error.message === 'string') {
      throw new AdminApiError(res.status, error.code, error.message);
    }
    throw new AdminApiError(res.status, 'http_error', `HTTP ${res.status} ${res.statusText}`.trim());
  }
}
