/**
 * LISTEN hubsync on a connection of its own: capture triggers NOTIFY on every write, which wakes
 * the sender at once. The connection comes back after a failure (with backoff); meanwhile, and
 * wherever NOTIFY does not arrive (poolers, proxies), the poll interval covers.
 */
import type { Logger } from 'pino';
import pg from 'pg';
import { backoffDelay, RECONNECT } from './backoff.js';

export interface Listener {
  stop(): Promise<void>;
}

export function listen(databaseUrl: string, onNotify: () => void, log: Logger): Listener {
  let stopped = false;
  let client: pg.Client | undefined;
  let timer: NodeJS.Timeout | undefined;
  let failures = 0;

  const connect = async (): Promise<void> => {
    if (stopped) return;
    const c = new pg.Client({ connectionString: databaseUrl, application_name: 'hub-broker-agent-listen' });
    client = c;
    const retry = (why: string): void => {
      if (stopped || client !== c) return;
      client = undefined;
      c.removeAllListeners();
      c.on('error', () => undefined);
      void c.end().catch(() => undefined);
      const delay = backoffDelay(failures++, RECONNECT);
      log.warn({ why, delayMs: delay }, 'LISTEN connection lost; polling until it is back');
      timer = setTimeout(() => void connect(), delay);
      timer.unref();
    };
    c.on('error', (err) => retry(err.message));
    c.on('end', () => retry('connection ended'));
    c.on('notification', () => onNotify());
    try {
      await c.connect();
      await c.query('LISTEN hubsync');
      failures = 0;
      // Changes captured while nobody listened.
      onNotify();
    } catch (err) {
      retry((err as Error).message);
    }
  };
  void connect();

  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      const c = client;
      client = undefined;
      if (c) {
        c.removeAllListeners();
        c.on('error', () => undefined);
        await c.end().catch(() => undefined);
      }
    },
  };
}
