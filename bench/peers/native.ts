/**
 * PostgreSQL's own logical replication: a publication at the source, one subscription per
 * destination (copy_data off: the tables start empty), default settings otherwise.
 */
import { queryOnce as run } from '../../test/support/pg-cluster.js';
import { sleep } from '../lib/hub-process.js';
import type { Peer, PeerRun, PeerSite } from './peer.js';
import { waitReplicating } from './probe.js';

export const native: Peer = {
  name: 'native',
  async setUp(site: PeerSite): Promise<PeerRun> {
    const pub = `pub_${site.runId}`;
    const subs = site.destinations.map((_, i) => `sub_${site.runId}_${i}`);
    await run(site.source.url, `CREATE PUBLICATION ${pub} FOR TABLE public.peer_item`);
    const conninfo = `host=127.0.0.1 port=${site.source.cluster.port} dbname=${site.source.db} user=postgres`;
    for (const [i, d] of site.destinations.entries()) {
      await run(d.url, `CREATE SUBSCRIPTION ${subs[i]} CONNECTION '${conninfo}' PUBLICATION ${pub} WITH (copy_data = false, enabled = false)`);
    }
    const setEnabled = async (on: boolean) => {
      for (const [i, d] of site.destinations.entries()) await run(d.url, `ALTER SUBSCRIPTION ${subs[i]} ${on ? 'ENABLE' : 'DISABLE'}`);
    };
    const walSenders = async () =>
      Number((await run(site.source.url, `SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name LIKE 'sub_${site.runId}_%' AND active`))[0]?.n ?? 0);
    return {
      async start() {
        await setEnabled(true);
        await waitReplicating(site, 'logical replication');
      },
      async stop() {
        await setEnabled(false);
        for (let i = 0; i < 200 && (await walSenders()) > 0; i++) await sleep(50);
      },
      async tearDown() {
        for (const [i, d] of site.destinations.entries()) await run(d.url, `DROP SUBSCRIPTION IF EXISTS ${subs[i]}`);
        await run(site.source.url, `DROP PUBLICATION IF EXISTS ${pub}`);
      },
    };
  },
};
