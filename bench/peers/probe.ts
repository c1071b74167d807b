/** Waits until replication carries a row from the source to every destination (rows with client -1 are probes, never counted). */
import { queryOnce as once } from '../../test/support/pg-cluster.js';
import { sleep } from '../lib/hub-process.js';
import type { PeerSite } from './peer.js';

export async function waitReplicating(site: PeerSite, what: string, timeoutMs = 60_000, describe: () => string = () => ''): Promise<void> {
  const [row] = await once<{ id: string }>(site.source.url, `INSERT INTO public.peer_item (client, qty, payload) VALUES (-1, 0, 'probe') RETURNING id::text`);
  const deadline = Date.now() + timeoutMs;
  for (const d of site.destinations) {
    for (;;) {
      const got = await once(d.url, 'SELECT 1 FROM public.peer_item WHERE id = $1', [row?.id]);
      if (got.length === 1) break;
      if (Date.now() > deadline) throw new Error(`${what}: ${d.db} did not receive a probe row within ${timeoutMs} ms\n${describe()}`);
      await sleep(50);
    }
  }
}
