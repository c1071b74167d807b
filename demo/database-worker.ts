/**
 * One embedded database in a worker thread: PGlite runs PostgreSQL on the thread that calls it,
 * so each database gets a thread of its own and the hub, the agents and the other databases
 * keep running meanwhile. The worker serves the database on a loopback port (see
 * pglite-server.ts) and answers three messages from the demo: `dump`, `stop`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';
import { PgliteServer } from './pglite-server.js';

export interface WorkerInput {
  readonly dataDir: string;
  /** A data directory tarball to start from; absent: initdb (slower). */
  readonly template: ArrayBuffer | undefined;
}

export type WorkerRequest = { readonly type: 'dump' } | { readonly type: 'stop' };

export type WorkerReply =
  | { readonly type: 'ready'; readonly url: string }
  | { readonly type: 'dump'; readonly tarball: ArrayBuffer }
  | { readonly type: 'stopped' }
  | { readonly type: 'error'; readonly message: string };

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('database-worker.ts runs as a worker thread');
  const input = workerData as WorkerInput;
  const reply = (m: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
  let db: PGlite;
  let server: PgliteServer;
  try {
    db = await PGlite.create(input.dataDir, input.template ? { loadDataDir: new Blob([input.template]) } : {});
    server = new PgliteServer(db, { host: '127.0.0.1', port: 0 });
    await server.start();
  } catch (err) {
    reply({ type: 'error', message: (err as Error).message });
    port.close();
    return;
  }
  port.on('message', (m: WorkerRequest) => {
    if (m.type === 'dump') {
      db.dumpDataDir('none')
        .then((blob) => blob.arrayBuffer())
        .then(
          (tarball) => reply({ type: 'dump', tarball }, [tarball]),
          (err: unknown) => reply({ type: 'error', message: (err as Error).message }),
        );
      return;
    }
    void (async () => {
      await server.stop().catch(() => undefined);
      await db.close().catch(() => undefined);
      reply({ type: 'stopped' });
      port.close();
    })();
  });
  reply({ type: 'ready', url: server.url });
}

void main();
