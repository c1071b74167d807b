/**
 * A small REST client for the Kubernetes API: JSON requests, streamed watches, and the patch
 * content types that client-node 1.x leaves to the caller. Authentication and TLS come from
 * client-node's KubeConfig (kubeconfig file, in-cluster service account, exec plugins).
 */
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

/** A failed API call, with the HTTP status and the `reason` of the Kubernetes Status object. */
export class KubeError extends Error {
  override readonly name = 'KubeError';
  constructor(
    readonly status: number,
    /** e.g. NotFound, Conflict, AlreadyExists, Invalid, Forbidden, Expired, Gone; or `Network`. */
    readonly reason: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export const isNotFound = (err: unknown): boolean => err instanceof KubeError && err.status === 404;
export const isConflict = (err: unknown): boolean => err instanceof KubeError && err.status === 409;
export const isGone = (err: unknown): boolean => err instanceof KubeError && err.status === 410;

export type ContentType =
  | 'application/json'
  | 'application/merge-patch+json'
  | 'application/apply-patch+yaml'
  | 'application/strategic-merge-patch+json';

export interface RequestOptions {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly path: string;
  readonly query?: Record<string, string | number | boolean | undefined>;
  readonly body?: unknown;
  /** Required for PATCH: the API server answers 415 without it. */
  readonly contentType?: ContentType;
  readonly signal?: AbortSignal;
  /** Per-request timeout for non-streaming calls. */
  readonly timeoutMs?: number;
  /** Default application/json. */
  readonly accept?: string;
}

interface Transport {
  readonly base: URL;
  readonly agent: http.Agent;
  readonly tlsOptions: Pick<https.RequestOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized' | 'servername'>;
}

/** Everything the operator asks of the API server, over one keep-alive agent. */
export class KubeClient {
  private transport: Transport | undefined;

  constructor(
    readonly config: KubeConfig,
    private readonly defaultTimeoutMs = 30_000,
  ) {}

  get server(): string {
    return this.config.getCurrentCluster()?.server ?? '';
  }

  /** Auth headers are fetched per request: service-account tokens rotate on disk. */
  private async prepare(): Promise<{ transport: Transport; headers: Record<string, string> }> {
    const opts: https.RequestOptions = {};
    await this.config.applyToHTTPSOptions(opts);
    if (!this.transport) {
      const cluster = this.config.getCurrentCluster();
      if (!cluster) throw new KubeError(0, 'Config', 'kubeconfig has no current cluster');
      const base = new URL(cluster.server);
      const tlsOptions = {
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
        rejectUnauthorized: opts.rejectUnauthorized,
        servername: opts.servername,
      };
      const agent =
        base.protocol === 'https:'
          ? new https.Agent({ keepAlive: true, maxSockets: 32, ...tlsOptions })
          : new http.Agent({ keepAlive: true, maxSockets: 32 });
      this.transport = { base, agent, tlsOptions };
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) {
      if (typeof v === 'string' || typeof v === 'number') headers[k] = String(v);
      else if (Array.isArray(v)) headers[k] = v.join(', ');
    }
    if (opts.auth) headers.Authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    return { transport: this.transport, headers };
  }

  private url(t: Transport, path: string, query: RequestOptions['query']): URL {
    const u = new URL(t.base.pathname.replace(/\/$/, '') + path, t.base);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u;
  }

  private async open(opts: RequestOptions, timeoutMs: number | undefined): Promise<http.IncomingMessage> {
    const { transport, headers } = await this.prepare();
    const url = this.url(transport, opts.path, opts.query);
    const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    headers.Accept = opts.accept ?? 'application/json';
    if (payload) {
      headers['Content-Type'] = opts.contentType ?? 'application/json';
      headers['Content-Length'] = String(payload.length);
    }
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(url, {
        method: opts.method,
        headers,
        agent: transport.agent,
        ...transport.tlsOptions,
        signal: opts.signal,
      });
      if (timeoutMs !== undefined) {
        req.setTimeout(timeoutMs, () => req.destroy(new KubeError(0, 'Timeout', `${opts.method} ${opts.path}: no answer in ${timeoutMs} ms`)));
      }
      req.on('response', resolve);
      req.on('error', (err) => reject(err instanceof KubeError ? err : new KubeError(0, 'Network', `${opts.method} ${opts.path}: ${err.message}`)));
      req.end(payload);
    });
  }

  /** One request with a JSON answer; a non-2xx answer becomes a KubeError. */
  async request<T>(opts: RequestOptions): Promise<T> {
    const text = await this.text(opts);
    return (text.length > 0 ? JSON.parse(text) : undefined) as T;
  }

  /** One request with a plain-text answer (`/readyz`, `/version`). */
  async text(opts: RequestOptions): Promise<string> {
    const res = await this.open(opts, opts.timeoutMs ?? this.defaultTimeoutMs);
    const text = await readBody(res);
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 299) throw errorFrom(status, text, opts);
    return text;
  }

  /**
   * A streaming GET (a watch): calls `onObject` for each JSON line; resolves when the server
   * ends the stream, rejects on a non-200 answer, a broken connection, an abort, or when
   * `onObject` throws (the connection is then closed).
   */
  async stream(opts: Omit<RequestOptions, 'method' | 'body'>, onObject: (obj: unknown) => void): Promise<void> {
    const res = await this.open({ ...opts, method: 'GET' }, undefined);
    const status = res.statusCode ?? 0;
    if (status !== 200) throw errorFrom(status, await readBody(res), { ...opts, method: 'GET' });
    res.setEncoding('utf8');
    let pending = '';
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        res.destroy();
        reject(err instanceof KubeError ? err : new KubeError(0, 'Network', `watch ${opts.path}: ${(err as Error).message}`));
      };
      res.on('data', (chunk: string) => {
        if (settled) return;
        pending += chunk;
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl).trim();
          pending = pending.slice(nl + 1);
          if (line.length === 0) continue;
          try {
            onObject(JSON.parse(line));
          } catch (err) {
            fail(err);
            return;
          }
        }
      });
      res.on('end', () => {
        if (settled) return;
        settled = true;
        resolve();
      });
      res.on('error', fail);
      res.on('close', () => fail(new KubeError(0, 'Network', `watch ${opts.path}: connection closed`)));
    });
  }

  close(): void {
    this.transport?.agent.destroy();
    this.transport = undefined;
  }
}

function readBody(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

function errorFrom(status: number, text: string, opts: Pick<RequestOptions, 'method' | 'path'>): KubeError {
  let reason = http.STATUS_CODES[status] ?? 'Unknown';
  let message = text.slice(0, 500);
  let details: unknown;
  try {
    const s = JSON.parse(text) as { kind?: string; reason?: string; message?: string; details?: unknown };
    if (s.kind === 'Status') {
      reason = s.reason ?? reason;
      message = s.message ?? message;
      details = s.details;
    }
  } catch {
    // not a Status object: keep the raw text
  }
  return new KubeError(status, reason, `${opts.method} ${opts.path}: ${status} ${reason}: ${message}`, details);
}
