/**
 * Preloaded into the hub child of a benchmark (`node --expose-gc --import ./bench/lib/hub-probe.ts`),
 * never into a real hub: answers memory requests over the IPC channel after a full garbage
 * collection, and ends the hub when the benchmark process goes away (even on SIGKILL), so no
 * hub is ever left running.
 */
const gc = (globalThis as { gc?: () => void }).gc;

if (process.send) {
  process.on('message', (m: { type?: string; id?: number }) => {
    if (m?.type !== 'memory') return;
    // Twice: the first pass runs finalizers that free more on the second.
    gc?.();
    gc?.();
    const u = process.memoryUsage();
    process.send?.({
      type: 'memory',
      id: m.id,
      memory: { rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, external: u.external, arrayBuffers: u.arrayBuffers },
    });
  });
  process.on('disconnect', () => process.exit(1));
  // The channel must not keep the hub alive after a graceful shutdown.
  process.channel?.unref();
}

export {};
