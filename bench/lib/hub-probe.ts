/**
 * Preloaded into the hub child of a benchmark (`node --expose-gc --import ./bench/lib/hub-probe.ts`),
 * never into a real hub: answers memory requests over the IPC channel after a full garbage
 * collection, and ends the hub when the benchmark process goes away (even on SIGKILL), so no
 * hub is ever left running.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const gc = (globalThis as { gc?: () => void }).gc;
let session: Session | undefined;

/** CPU profile of one phase only (`profile` start, then stop with a file to write), through the inspector. */
function profile(m: { id?: number; action?: string; file?: string }): void {
  const done = (error?: string): void => {
    process.send?.({ type: 'profile', id: m.id, ...(error ? { error } : {}) });
  };
  if (m.action === 'start') {
    session = new Session();
    session.connect();
    session.post('Profiler.enable', () => session?.post('Profiler.start', () => done()));
    return;
  }
  const s = session;
  if (!s) return done('no profile running');
  s.post('Profiler.stop', (err, result) => {
    if (err) return done(err.message);
    writeFileSync(m.file as string, JSON.stringify(result.profile));
    s.disconnect();
    session = undefined;
    done();
  });
}

if (process.send) {
  process.on('message', (m: { type?: string; id?: number; action?: string; file?: string }) => {
    if (m?.type === 'profile') return profile(m);
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
