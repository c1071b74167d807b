/**
 * Throughput measurement for synchronous code: warm up, then time several rounds. Report `best`
 * on a shared machine (other work only ever slows a round down); `median` shows the spread.
 */
import { performance } from 'node:perf_hooks';

export interface MeasureOptions {
  /** Untimed running first, so the JIT has compiled the hot path. Default 300 ms. */
  readonly warmupMs?: number;
  /** Each timed round runs at least this long. Default 500 ms. */
  readonly roundMs?: number;
  /** Timed rounds. Default 5. */
  readonly rounds?: number;
}

export interface Measurement {
  /** Calls of `fn` per second in the fastest round. */
  readonly best: number;
  /** Calls of `fn` per second, median over the rounds. */
  readonly median: number;
  /** Each round's rate, to judge the spread. */
  readonly rounds: readonly number[];
}

/** Results go here, so the optimizer cannot drop the work being timed. */
export let sink: unknown;

function round(fn: () => unknown, minMs: number): number {
  let calls = 0;
  const start = performance.now();
  let elapsed = 0;
  // Check the clock every `batch` calls, so reading it costs little next to fast functions.
  let batch = 1;
  while (elapsed < minMs) {
    for (let i = 0; i < batch; i++) sink = fn();
    calls += batch;
    elapsed = performance.now() - start;
    if (elapsed < minMs / 20) batch *= 2;
  }
  return (calls * 1000) / elapsed;
}

export function measure(fn: () => unknown, options: MeasureOptions = {}): Measurement {
  const { warmupMs = 300, roundMs = 500, rounds = 5 } = options;
  round(fn, warmupMs);
  const rates = Array.from({ length: rounds }, () => round(fn, roundMs));
  const sorted = [...rates].sort((a, b) => a - b);
  return {
    best: sorted[sorted.length - 1] as number,
    median: sorted[Math.floor(sorted.length / 2)] as number,
    rounds: rates,
  };
}
