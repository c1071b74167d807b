/**
 * The kernel's cap on a listening socket's accept queue (net.core.somaxconn) during the
 * reconnect benchmark. The hub asks for 65,535; with the default cap of 4,096, a storm of
 * 20,000 reconnects overflowed the queue by 111,587 SYNs in one run (nstat
 * TcpExtListenOverflows) and the dropped ones came back on TCP's 1, 3, 7, 15 s schedule. A host
 * meant for that many connections raises the cap (docs/operations.md); so does this benchmark,
 * when it runs with the privilege to, and it puts the cap back afterwards.
 */
import { readFileSync, writeFileSync } from 'node:fs';

const FILES = ['/proc/sys/net/core/somaxconn', '/proc/sys/net/ipv4/tcp_max_syn_backlog'] as const;
export const WANTED_ACCEPT_QUEUE = 65535;

export interface AcceptQueue {
  /** The cap in force for the run. */
  readonly somaxconn: number;
  /** The cap before the run. */
  readonly before: number;
  restore(): void;
}

function read(file: string): number {
  return Number(readFileSync(file, 'utf8').trim());
}

export function raiseAcceptQueue(): AcceptQueue {
  const before = FILES.map((f) => {
    try {
      return read(f);
    } catch {
      return NaN;
    }
  });
  const restore = () => {
    FILES.forEach((f, i) => {
      try {
        if (Number.isFinite(before[i]) && read(f) !== before[i]) writeFileSync(f, String(before[i]));
      } catch {
        // not ours to put back
      }
    });
  };
  for (const [i, f] of FILES.entries()) {
    try {
      if ((before[i] as number) < WANTED_ACCEPT_QUEUE) writeFileSync(f, String(WANTED_ACCEPT_QUEUE));
    } catch {
      // No privilege (or no such file): the run uses the cap as it is, and says so.
    }
  }
  let somaxconn = before[0] as number;
  try {
    somaxconn = read(FILES[0]);
  } catch {
    // keep the earlier reading
  }
  return { somaxconn, before: before[0] as number, restore };
}
