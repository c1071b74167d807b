/**
 * Many idle branch connections spread over worker processes (bench/lib/hub-fleet-worker.ts),
 * each worker with its own loopback source address, so neither one process's open-files limit
 * nor one address's ephemeral ports run short.
 */
import type { FleetCommand, FleetStats } from './hub-fleet-worker.js';
import { cpuSeconds, IpcWorker, sleep } from './hub-process.js';

type Worker = IpcWorker<FleetCommand>;

export interface FleetTotals {
  readonly greeted: number;
  readonly wanted: number;
  readonly attempts: number;
  readonly refused: Record<string, number>;
  readonly failed: Record<string, number>;
  readonly closes: Record<string, number>;
  readonly lastHelloAt: number;
  /** When every worker had all its wanted connections greeted (0 if not yet). */
  readonly allGreetedAt: number;
}

export class Fleet {
  private constructor(
    private readonly workers: Worker[],
    /** Slot ranges per worker: worker i holds tokens [starts[i], starts[i+1]). */
    private readonly starts: number[],
  ) {}

  static async start(url: string, tokens: readonly string[], workerCount: number): Promise<Fleet> {
    const per = Math.ceil(tokens.length / workerCount);
    const workers: Worker[] = [];
    const starts: number[] = [];
    for (let i = 0; i < workerCount; i++) {
      const w: Worker = new IpcWorker<FleetCommand>(new URL('./hub-fleet-worker.ts', import.meta.url));
      starts.push(i * per);
      await w.request({ cmd: 'init', url, tokens: tokens.slice(i * per, (i + 1) * per), network: 10 + i });
      workers.push(w);
    }
    starts.push(tokens.length);
    return new Fleet(workers, starts);
  }

  /** Opens the first `n` connections (in token order), `concurrency` handshakes at once per worker. */
  async connect(n: number, concurrency = 64): Promise<void> {
    await Promise.all(
      this.workers.map((w, i) => {
        const from = this.starts[i] as number;
        const to = Math.min(this.starts[i + 1] as number, n);
        return to > from ? w.request({ cmd: 'connect', from: 0, to: to - from, concurrency }) : Promise.resolve();
      }),
    );
  }

  /** Closes the first `n` connections. */
  async disconnect(n: number): Promise<void> {
    await Promise.all(
      this.workers.map((w, i) => {
        const from = this.starts[i] as number;
        const to = Math.min(this.starts[i + 1] as number, n);
        return to > from ? w.request({ cmd: 'disconnect', from: 0, to: to - from }) : Promise.resolve();
      }),
    );
  }

  /** CPU seconds the worker processes used so far. */
  cpuSeconds(): number {
    return this.workers.reduce((a, w) => a + (w.child.pid ? cpuSeconds(w.child.pid) : 0), 0);
  }

  async reset(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.request({ cmd: 'reset' })));
  }

  async stats(): Promise<FleetTotals> {
    const all = await Promise.all(this.workers.map((w) => w.request<FleetStats>({ cmd: 'stats' })));
    const merge = (pick: (s: FleetStats) => Record<string, number>) => {
      const out: Record<string, number> = {};
      for (const s of all) for (const [k, v] of Object.entries(pick(s))) out[k] = (out[k] ?? 0) + v;
      return out;
    };
    const active = all.filter((s) => s.wanted > 0);
    return {
      greeted: all.reduce((a, s) => a + s.greeted, 0),
      wanted: all.reduce((a, s) => a + s.wanted, 0),
      attempts: all.reduce((a, s) => a + s.attempts, 0),
      refused: merge((s) => s.refused),
      failed: merge((s) => s.failed),
      closes: merge((s) => s.closes),
      lastHelloAt: Math.max(0, ...all.map((s) => s.lastHelloAt)),
      allGreetedAt: active.every((s) => s.allGreetedAt > 0) ? Math.max(0, ...active.map((s) => s.allGreetedAt)) : 0,
    };
  }

  /** Polls until every wanted connection has hello; returns the totals then. Throws after `timeoutMs`. */
  async waitAllGreeted(timeoutMs: number, onProgress?: (s: FleetTotals) => void): Promise<FleetTotals> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.stats();
      onProgress?.(s);
      if (s.greeted === s.wanted && s.allGreetedAt > 0) return s;
      if (Date.now() > deadline) throw new Error(`only ${s.greeted} of ${s.wanted} connections are back after ${timeoutMs} ms`);
      await sleep(200);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
  }
}
