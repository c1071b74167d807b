/**
 * Helpers to run real hubs and talk to them like an agent would: for hub tests, cross-part
 * tests and benchmarks. Not imported by production code.
 */
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import {
  encodeHlc,
  jsonCodec,
  msgpackCodec,
  parseHubFrame,
  SUBPROTOCOL_JSON,
  SUBPROTOCOL_MSGPACK,
  type AgentToHub,
  type Change,
  type Codec,
  type HubToAgent,
} from '../../protocol/index.js';
import { startHub, type HubApp } from '../app.js';
import { loadConfig, type HubConfig } from '../config.js';
import type { HubStore } from '../store/index.js';

/** Two signing keys (first signs), 32 bytes each. */
export const TEST_JWT_SECRET = Buffer.alloc(32, 7).toString('base64url');
export const TEST_JWT_KEYS = `k1:${TEST_JWT_SECRET},k0:${Buffer.alloc(32, 3).toString('base64url')}`;
/** Cheap argon2 for tests. */
export const TEST_ARGON2 = { memoryCost: 256, timeCost: 1, parallelism: 1 } as const;

export function testConfig(databaseUrl: string, overrides: Partial<HubConfig> = {}): HubConfig {
  return loadConfig({
    env: { DATABASE_URL: databaseUrl, HUB_JWT_KEYS: TEST_JWT_KEYS },
    overrides: {
      host: '127.0.0.1',
      port: 0,
      logLevel: (process.env.HUB_TEST_LOG_LEVEL as HubConfig['logLevel'] | undefined) ?? 'silent',
      argon2MemoryKib: TEST_ARGON2.memoryCost,
      argon2TimeCost: TEST_ARGON2.timeCost,
      instanceId: `test-${randomBytes(3).toString('hex')}`,
      authRate: undefined,
      databasePoolSize: 5,
      ...overrides,
    },
  });
}

export async function startTestHub(databaseUrl: string, overrides: Partial<HubConfig> = {}): Promise<HubApp> {
  return startHub(testConfig(databaseUrl, overrides));
}

export function wsUrl(app: HubApp): string {
  return `${app.url.replace(/^http/, 'ws')}/ws`;
}

export interface TokenResponse {
  readonly status: number;
  readonly body: { token?: string; expires_at?: string; error?: { code: string; message: string } };
}

export async function requestToken(baseUrl: string, body: unknown, headers: Record<string, string> = {}): Promise<TokenResponse> {
  const res = await fetch(`${baseUrl}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as TokenResponse['body'] };
}

/** A token for a branch, or throws. */
export async function tokenFor(baseUrl: string, tenantId: string, branchId: string, apiKey: string): Promise<string> {
  const r = await requestToken(baseUrl, { tenant_id: tenantId, branch_id: branchId, api_key: apiKey });
  if (r.status !== 200 || !r.body.token) throw new Error(`token request failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.token;
}

/** Creates the tenant (if needed) and a branch; returns the branch's API key. */
export async function seedBranch(store: HubStore, tenantId: string, branchId: string): Promise<string> {
  if (!(await store.getTenant(tenantId))) await store.createTenant(tenantId);
  const { apiKey } = await store.createBranch(tenantId, branchId);
  return apiKey as string;
}

let txCounter = 0;

/** A valid change from `origin` with sequence number `seq`, one per source transaction by default. */
export function change(origin: string, seq: number, over: Partial<Change> = {}): Change {
  const id = String(over.pk?.id ?? seq);
  return {
    table: 'public.item',
    op: 'update',
    pk: { id },
    row: { id, name: `v${seq}` },
    hlc: encodeHlc({ wall: 1_700_000_000_000 + seq, logical: 0 }),
    vv: { [origin]: seq },
    origin,
    seq,
    tx: String(++txCounter),
    tx_end: true,
    ...over,
  };
}

export interface Closed {
  readonly code: number;
  readonly reason: string;
}

/** A WebSocket client that speaks the protocol and keeps what it receives, for assertions. */
export class TestAgent {
  readonly frames: HubToAgent[] = [];
  /** Frames not yet taken by `next`. */
  private inbox: HubToAgent[] = [];
  private waiters: { pred: (f: HubToAgent) => boolean; resolve: (f: HubToAgent) => void }[] = [];
  readonly closed: Promise<Closed>;
  closedWith: Closed | undefined;
  private seqNo = 0;
  private idNo = 0;

  private constructor(
    readonly ws: WebSocket,
    readonly codec: Codec,
  ) {
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closedWith = { code, reason: reason.toString() };
        resolve(this.closedWith);
      });
    });
    ws.on('error', () => undefined);
    ws.on('message', (data: Buffer) => {
      const decoded = codec.decodeUnchecked(data);
      const parsed = parseHubFrame(decoded);
      if (!parsed.ok) throw new Error(`hub sent an invalid frame: ${parsed.error.message}`);
      const f = parsed.value;
      this.frames.push(f);
      const i = this.waiters.findIndex((w) => w.pred(f));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        w?.resolve(f);
      } else {
        this.inbox.push(f);
      }
    });
  }

  /** Connects; resolves once the socket is open (before hello). Rejects with the HTTP status on refusal. */
  static connect(
    url: string,
    token: string | undefined,
    options: { msgpack?: boolean; protocols?: string[]; headers?: Record<string, string>; autoPong?: boolean } = {},
  ): Promise<TestAgent> {
    const codec = options.msgpack ? msgpackCodec : jsonCodec;
    const protocols = options.protocols ?? [options.msgpack ? SUBPROTOCOL_MSGPACK : SUBPROTOCOL_JSON];
    const ws = new WebSocket(url, protocols, {
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...options.headers },
      maxPayload: 64 * 1024 * 1024,
      autoPong: options.autoPong ?? true,
    });
    const agent = new TestAgent(ws, codec);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(agent));
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
      ws.once('error', reject);
    });
  }

  /**
   * Connects and waits for hello. When hello says the branch must bootstrap, takes the snapshot
   * first (as an agent would), keeping its rows in `snapshotRows`, unless `bootstrap: false`.
   */
  static async open(url: string, token: string, options: { msgpack?: boolean; bootstrap?: boolean } = {}): Promise<TestAgent> {
    const agent = await TestAgent.connect(url, token, options);
    const hello = await agent.next('hello');
    if (hello.bootstrap && options.bootstrap !== false) await agent.takeSnapshot();
    return agent;
  }

  /** Rows of the snapshots taken so far. */
  readonly snapshotRows: Change[] = [];

  /** Requests a snapshot and acknowledges every chunk; resolves with its offset. */
  async takeSnapshot(): Promise<number> {
    this.send({ type: 'snapshot.request', id: this.id() });
    return this.takeSnapshotAfterRequest();
  }

  /** Acknowledges every chunk of a snapshot already requested; resolves with its offset. */
  async takeSnapshotAfterRequest(): Promise<number> {
    for (;;) {
      const f = await this.nextOf(['snapshot.chunk', 'snapshot.end', 'error']);
      if (f.type === 'error') throw new Error(`snapshot failed: ${f.code} ${f.message}`);
      if (f.type === 'snapshot.end') return f.offset;
      this.snapshotRows.push(...f.rows);
      this.send({ type: 'snapshot.ack', id: this.id(), snapshot_id: f.snapshot_id, seq: f.seq });
    }
  }

  get hello(): Extract<HubToAgent, { type: 'hello' }> {
    const h = this.frames.find((f) => f.type === 'hello');
    if (!h || h.type !== 'hello') throw new Error('no hello yet');
    return h;
  }

  /** The next frame of `type` (optionally matching `pred`), waiting up to `timeoutMs`. */
  next<T extends HubToAgent['type']>(
    type: T,
    pred: (f: Extract<HubToAgent, { type: T }>) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<Extract<HubToAgent, { type: T }>> {
    const match = (f: HubToAgent) => f.type === type && pred(f as Extract<HubToAgent, { type: T }>);
    const i = this.inbox.findIndex(match);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0] as Extract<HubToAgent, { type: T }>);
    return new Promise((resolve, reject) => {
      const waiter = { pred: match, resolve: resolve as (f: HubToAgent) => void };
      this.waiters.push(waiter);
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no ${type} frame within ${timeoutMs} ms; got ${this.frames.map((f) => f.type).join(',')}`));
      }, timeoutMs);
      t.unref();
    });
  }

  /** The next frame of any of `types`. */
  nextOf<T extends HubToAgent['type']>(types: readonly T[], timeoutMs = 10_000): Promise<Extract<HubToAgent, { type: T }>> {
    const match = (f: HubToAgent) => (types as readonly string[]).includes(f.type);
    const i = this.inbox.findIndex(match);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0] as Extract<HubToAgent, { type: T }>);
    return new Promise((resolve, reject) => {
      const waiter = { pred: match, resolve: resolve as (f: HubToAgent) => void };
      this.waiters.push(waiter);
      setTimeout(() => {
        if (!this.waiters.includes(waiter)) return;
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no ${types.join('/')} frame within ${timeoutMs} ms`));
      }, timeoutMs).unref();
    });
  }

  /** Frames of `type` received so far (taken or not). */
  received<T extends HubToAgent['type']>(type: T): Extract<HubToAgent, { type: T }>[] {
    return this.frames.filter((f) => f.type === type) as Extract<HubToAgent, { type: T }>[];
  }

  /** Every entry delivered so far, in arrival order. */
  delivered(): [number, Change][] {
    return this.received('sync.deliver').flatMap((d) => d.entries);
  }

  send(frame: AgentToHub | Record<string, unknown>): void {
    this.ws.send(this.codec.encode(frame as AgentToHub), { binary: this.codec.binary });
  }

  sendRaw(data: string | Buffer, binary = typeof data !== 'string'): void {
    this.ws.send(data, { binary });
  }

  id(): string {
    return `m${++this.idNo}`;
  }

  /** Sends `count` new changes from this branch as one batch; returns the batch id. */
  sendChanges(origin: string, count: number, options: { to?: string; batchId?: string } = {}): { batchId: string; changes: Change[] } {
    const changes = Array.from({ length: count }, () => change(origin, ++this.seqNo));
    const batchId = options.batchId ?? `b${this.seqNo}`;
    this.send({ type: 'sync.batch', id: this.id(), batch_id: batchId, changes, ...(options.to ? { to: options.to } : {}) });
    return { batchId, changes };
  }

  /** Sends a batch and waits for its ack. */
  async append(origin: string, count: number, options: { to?: string } = {}): Promise<{ offsets: number[]; changes: Change[] }> {
    const { batchId, changes } = this.sendChanges(origin, count, options);
    const ack = await this.next('sync.ack', (a) => a.batch_id === batchId);
    return { offsets: ack.offsets, changes };
  }

  /** Sets the next sequence number (to continue after a reconnect). */
  set nextSeq(n: number) {
    this.seqNo = n - 1;
  }

  applied(offset: number): void {
    this.send({ type: 'sync.applied', id: this.id(), offset });
  }

  close(): Promise<Closed> {
    this.ws.close();
    return this.closed;
  }

  terminate(): void {
    this.ws.terminate();
  }
}
