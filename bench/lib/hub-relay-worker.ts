/**
 * A worker process of the relay benchmark, as `sender` (one branch sending `sync.batch` at a
 * fixed rate or as fast as acknowledgements allow) or `receivers` (several branches that count
 * `sync.deliver` entries, measure each change's delivery latency from the moment the sender sent
 * it, and answer `sync.applied` as an agent does). Commands arrive over the IPC channel.
 */
import WebSocket from 'ws';
import { jsonCodec, msgpackCodec, type Change, type Codec } from '../../protocol/index.js';
import { customerChange } from './customer-change.js';

export type RelayCommand =
  | { readonly cmd: 'init'; readonly url: string; readonly tokens: readonly string[]; readonly branches: readonly string[]; readonly codec: 'json' | 'msgpack' }
  /** Sender: `rate` changes per second in batches sent every `tickMs`, whatever the acks (open loop). */
  | { readonly cmd: 'fixed'; readonly rate: number; readonly tickMs: number }
  /** Sender: keep `window` batches of `batch` changes unacknowledged (closed loop, saturation). */
  | { readonly cmd: 'saturate'; readonly window: number; readonly batch: number }
  /** Sender: stop sending; answers once everything sent is acknowledged. */
  | { readonly cmd: 'stop' }
  | { readonly cmd: 'stats' }
  /** Receivers: start (or restart) recording latencies. */
  | { readonly cmd: 'record' };

export interface SenderStats {
  readonly sent: number;
  readonly acked: number;
  readonly ackLatency: Summary;
}

export interface ReceiverStats {
  /** Entries received, per receiver. */
  readonly delivered: readonly number[];
  readonly frames: number;
  readonly latency: Summary;
}

export interface Summary {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

const now = () => performance.timeOrigin + performance.now();

/** Latencies in ms; grows as needed. */
class Samples {
  private data = new Float64Array(1 << 16);
  private n = 0;
  add(v: number): void {
    if (this.n === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.n++] = v;
  }
  clear(): void {
    this.n = 0;
  }
  summary(): Summary {
    const s = this.data.slice(0, this.n).sort();
    const q = (p: number) => (s.length === 0 ? 0 : (s[Math.min(s.length - 1, Math.floor(p * s.length))] as number));
    return { count: s.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: s.length ? (s[s.length - 1] as number) : 0 };
  }
}

function openSocket(url: string, token: string, codec: Codec): Promise<WebSocket> {
  const ws = new WebSocket(url, [codec.subprotocol], { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
  return new Promise((resolve, reject) => {
    ws.once('message', () => resolve(ws));
    ws.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

// ------------------------------------------------------------------ sender

class Sender {
  private seq = 0;
  private tx = 0;
  private batches = 0;
  sent = 0;
  acked = 0;
  /** Send time and size of each batch not yet acknowledged, by batch id. */
  private readonly inflight = new Map<string, { at: number; n: number }>();
  private readonly ackLatency = new Samples();
  private timer: NodeJS.Timeout | undefined;
  private mode: 'idle' | 'fixed' | 'saturate' = 'idle';
  private window = 0;
  private batch = 0;
  private drained: (() => void) | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly codec: Codec,
    private readonly origin: string,
  ) {
    ws.on('message', (data: Buffer) => this.onMessage(data));
  }

  private onMessage(data: Buffer): void {
    const f = this.codec.decodeUnchecked(data) as { type: string; batch_id?: string; code?: string; message?: string };
    if (f.type === 'error') {
      process.stderr.write(`[relay sender] hub error: ${f.code} ${f.message}\n`);
      return;
    }
    if (f.type !== 'sync.ack' || f.batch_id === undefined) return;
    const b = this.inflight.get(f.batch_id);
    if (!b) return;
    this.inflight.delete(f.batch_id);
    this.acked += b.n;
    this.ackLatency.add(now() - b.at);
    if (this.mode === 'saturate') this.fill();
    if (this.inflight.size === 0) this.drained?.();
  }

  private sendBatch(n: number): void {
    const at = now();
    const changes: Change[] = [];
    // Transactions of five changes, as a branch's business writes would come.
    for (let i = 0; i < n; i++) {
      const seq = ++this.seq;
      if ((seq - 1) % 5 === 0) this.tx++;
      changes.push(customerChange(this.origin, seq, this.tx, seq % 5 === 0 || i === n - 1, at));
    }
    const id = `b${++this.batches}`;
    this.inflight.set(id, { at, n });
    this.ws.send(this.codec.encode({ type: 'sync.batch', id, batch_id: id, changes }), { binary: this.codec.binary });
    this.sent += n;
  }

  private fill(): void {
    while (this.mode === 'saturate' && this.inflight.size < this.window) this.sendBatch(this.batch);
  }

  fixed(rate: number, tickMs: number): void {
    this.mode = 'fixed';
    const start = now();
    const base = this.sent;
    const tick = () => {
      if (this.mode !== 'fixed') return;
      const due = Math.floor(((now() - start) / 1000) * rate) - (this.sent - base);
      if (due > 0) this.sendBatch(due);
      this.timer = setTimeout(tick, tickMs);
    };
    tick();
  }

  saturate(window: number, batch: number): void {
    this.mode = 'saturate';
    this.window = window;
    this.batch = batch;
    this.fill();
  }

  async stop(): Promise<void> {
    this.mode = 'idle';
    if (this.timer) clearTimeout(this.timer);
    if (this.inflight.size === 0) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 120_000);
      this.drained = () => {
        clearTimeout(t);
        resolve();
      };
    });
    this.drained = undefined;
  }

  stats(): SenderStats {
    const s = { sent: this.sent, acked: this.acked, ackLatency: this.ackLatency.summary() };
    this.ackLatency.clear();
    return s;
  }
}

// ------------------------------------------------------------------ receivers

class Receivers {
  readonly delivered: number[];
  private frames = 0;
  private readonly latency = new Samples();
  private recording = false;

  constructor(sockets: readonly WebSocket[], codec: Codec) {
    this.delivered = sockets.map(() => 0);
    sockets.forEach((ws, i) => {
      let applied = 0;
      ws.on('message', (data: Buffer) => {
        const f = codec.decodeUnchecked(data) as { type: string; entries?: [number, Change][] };
        if (f.type !== 'sync.deliver' || !f.entries) return;
        const t = now();
        this.frames++;
        this.delivered[i] = (this.delivered[i] as number) + f.entries.length;
        if (this.recording) for (const [, c] of f.entries) this.latency.add(t - Number(c.row?.sent));
        const last = (f.entries[f.entries.length - 1] as [number, Change])[0];
        // What an agent answers once it applied the page.
        if (last > applied) {
          applied = last;
          ws.send(codec.encode({ type: 'sync.applied', id: `a${last}`, offset: last }), { binary: codec.binary });
        }
      });
    });
  }

  record(): void {
    this.recording = true;
    this.latency.clear();
  }

  stats(): ReceiverStats {
    return { delivered: [...this.delivered], frames: this.frames, latency: this.latency.summary() };
  }
}

// ------------------------------------------------------------------ commands

let sender: Sender | undefined;
let receivers: Receivers | undefined;

async function handle(m: RelayCommand): Promise<unknown> {
  switch (m.cmd) {
    case 'init': {
      const codec = m.codec === 'json' ? jsonCodec : msgpackCodec;
      const sockets = await Promise.all(m.tokens.map((t) => openSocket(m.url, t, codec)));
      for (const ws of sockets) ws.on('close', (code) => process.stderr.write(`[relay] a socket closed: ${code}\n`));
      if (process.argv[2] === 'sender') sender = new Sender(sockets[0] as WebSocket, codec, m.branches[0] as string);
      else receivers = new Receivers(sockets, codec);
      return null;
    }
    case 'fixed':
      sender?.fixed(m.rate, m.tickMs);
      return null;
    case 'saturate':
      sender?.saturate(m.window, m.batch);
      return null;
    case 'stop':
      await sender?.stop();
      return sender?.stats();
    case 'stats':
      return sender ? sender.stats() : receivers?.stats();
    case 'record':
      receivers?.record();
      return null;
  }
}

process.on('message', (m: RelayCommand) => {
  handle(m).then(
    (value) => process.send?.({ ok: true, value }),
    (err: unknown) => process.send?.({ ok: false, error: (err as Error).message }),
  );
});
process.on('disconnect', () => process.exit(0));
