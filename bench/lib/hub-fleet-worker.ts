/**
 * A worker process of the connection benchmarks: holds a share of the idle branch connections
 * (so the load generator is never the bottleneck, nor over its own open-files limit) and
 * reconnects them after a hub restart exactly as the agent does (agent/backoff.ts: jittered
 * within a second after 1012, then every few seconds while the restarting hub is away).
 * Talks to the benchmark over the IPC channel; exits when the benchmark goes away.
 */
import WebSocket from 'ws';
import { closeAction, HANDSHAKE_TIMEOUT_MS, reconnectDelay } from '../../agent/backoff.js';
import { msgpackCodec, SUBPROTOCOL_MSGPACK } from '../../protocol/index.js';

export type FleetCommand =
  /** `network`: the second octet of this worker's source addresses (127.network.x.y, one per connection). */
  | { readonly cmd: 'init'; readonly url: string; readonly tokens: readonly string[]; readonly network: number }
  /** Opens connections `from..to-1` (at most `concurrency` handshakes at once), keeps them open and reconnecting. */
  | { readonly cmd: 'connect'; readonly from: number; readonly to: number; readonly concurrency: number }
  /** Closes connections `from..to-1` and stops reconnecting them. */
  | { readonly cmd: 'disconnect'; readonly from: number; readonly to: number }
  | { readonly cmd: 'stats' }
  /** Forget the counters of the previous phase (attempts, refusals, last hello). */
  | { readonly cmd: 'reset' };

export interface FleetStats {
  /** Connections that received hello on their current socket. */
  readonly greeted: number;
  /** Connections meant to be open. */
  readonly wanted: number;
  readonly attempts: number;
  /** Attempts answered with an HTTP status, by status. */
  readonly refused: Record<string, number>;
  /** Attempts that failed without an answer (connection refused, reset), by error code. */
  readonly failed: Record<string, number>;
  /** Close codes received, by code. */
  readonly closes: Record<string, number>;
  /** Wall-clock time (ms since the epoch) of the last hello and of the moment every wanted connection had one. */
  readonly lastHelloAt: number;
  readonly allGreetedAt: number;
}

interface Slot {
  readonly token: string;
  /**
   * Each connection has a loopback source address of its own, as branches do: with a few shared
   * ones, every connect first searched the ports bound to its address (thousands, TIME_WAIT
   * included), which cost this load generator more CPU than the hub spent on the connection.
   */
  readonly localAddress: string;
  ws: WebSocket | undefined;
  wanted: boolean;
  greeted: boolean;
  failures: number;
  /** When the hub last closed with "restarting", until a connection succeeds (as the agent does). */
  restartAt: number | undefined;
  timer: NodeJS.Timeout | undefined;
}

let url = '';
let slots: Slot[] = [];
let greeted = 0;
let wanted = 0;
let attempts = 0;
let refused: Record<string, number> = {};
let failed: Record<string, number> = {};
let closes: Record<string, number> = {};
let lastHelloAt = 0;
let allGreetedAt = 0;

const now = () => performance.timeOrigin + performance.now();
const bump = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);

/** Opens one socket for the slot; resolves once it got hello or failed. */
function open(slot: Slot): Promise<void> {
  attempts++;
  const ws = new WebSocket(url, [SUBPROTOCOL_MSGPACK], {
    headers: { authorization: `Bearer ${slot.token}` },
    perMessageDeflate: false,
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    localAddress: slot.localAddress,
  });
  slot.ws = ws;
  let refusal: string | undefined;
  return new Promise((resolve) => {
    ws.on('unexpected-response', (_req, res) => {
      refusal = String(res.statusCode ?? 0);
      bump(refused, refusal);
      ws.terminate();
    });
    ws.on('error', (err: Error & { code?: string }) => {
      if (refusal === undefined) bump(failed, err.code ?? err.message.slice(0, 40));
    });
    ws.once('message', (data: Buffer) => {
      // Only hello is decoded; an idle branch gets nothing else.
      const f = msgpackCodec.decodeUnchecked(data) as { type?: string };
      if (f.type !== 'hello' || slot.ws !== ws) return;
      slot.greeted = true;
      slot.failures = 0;
      slot.restartAt = undefined;
      greeted++;
      lastHelloAt = now();
      if (greeted === wanted) allGreetedAt = lastHelloAt;
      resolve();
    });
    ws.on('close', (code) => {
      if (slot.ws === ws) slot.ws = undefined;
      if (slot.greeted) {
        slot.greeted = false;
        greeted--;
      }
      bump(closes, String(code));
      resolve();
      if (!slot.wanted) return;
      // What the agent does: the close code (or the refusal) decides the delay.
      const action =
        refusal === undefined
          ? closeAction(code)
          : refusal === '401'
            ? ({ kind: 'reconnect-now', reason: '401' } as const)
            : ({ kind: refusal === '403' ? 'reconnect-later' : 'reconnect', reason: refusal } as const);
      if (action.kind === 'reconnect-now' && 'restart' in action && action.restart) slot.restartAt = Date.now();
      const delay = reconnectDelay(action, slot.failures, Math.random, slot.restartAt === undefined ? undefined : Date.now() - slot.restartAt);
      slot.failures++;
      slot.timer = setTimeout(() => {
        slot.timer = undefined;
        if (slot.wanted) void open(slot);
      }, delay);
    });
  });
}

async function connect(from: number, to: number, concurrency: number): Promise<void> {
  let next = from;
  const runner = async () => {
    while (next < to) {
      const slot = slots[next++] as Slot;
      if (slot.wanted) continue;
      slot.wanted = true;
      wanted++;
      await open(slot);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, runner));
}

function disconnect(from: number, to: number): void {
  for (let i = from; i < to; i++) {
    const slot = slots[i] as Slot;
    if (!slot.wanted) continue;
    slot.wanted = false;
    wanted--;
    if (slot.timer) clearTimeout(slot.timer);
    slot.ws?.close(1000);
  }
}

function stats(): FleetStats {
  return { greeted, wanted, attempts, refused, failed, closes, lastHelloAt, allGreetedAt };
}

process.on('message', (m: FleetCommand) => {
  const reply = (value: unknown) => process.send?.({ ok: true, value });
  switch (m.cmd) {
    case 'init':
      url = m.url;
      slots = m.tokens.map((token, i) => ({
        token,
        localAddress: `127.${m.network}.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`,
        ws: undefined,
        wanted: false,
        greeted: false,
        failures: 0,
        restartAt: undefined,
        timer: undefined,
      }));
      reply(null);
      return;
    case 'connect':
      void connect(m.from, m.to, m.concurrency).then(() => reply(stats()));
      return;
    case 'disconnect':
      disconnect(m.from, m.to);
      reply(null);
      return;
    case 'stats':
      reply(stats());
      return;
    case 'reset':
      attempts = 0;
      refused = {};
      failed = {};
      closes = {};
      lastHelloAt = 0;
      allGreetedAt = 0;
      reply(null);
      return;
  }
});
process.on('disconnect', () => process.exit(0));
