/**
 * One replication system under `npm run bench:peers`: Hub-Broker, Bucardo or PostgreSQL's own
 * logical replication, set up from scratch on the same databases and table for each run, so
 * every system meets the same workload (bench/peers/workload.ts).
 */
import type { Cluster } from '../../test/support/pg-cluster.js';

export type PeerName = 'hub-broker' | 'bucardo' | 'native';

/** Where a run happens: a source database and 1 or 3 destination databases, each already holding `TABLE_DDL`. */
export interface PeerSite {
  readonly source: { readonly cluster: Cluster; readonly db: string; readonly url: string };
  readonly destinations: readonly { readonly cluster: Cluster; readonly db: string; readonly url: string }[];
  /** For the system's own state (the hub database, Bucardo's control database); unused by native. */
  readonly control: Cluster;
  /** Unique per run: name databases, slots, syncs with it. */
  readonly runId: string;
}

export interface PeerRun {
  /** Replication running: changes committed at the source from now on reach every destination. */
  start(): Promise<void>;
  /** Replication stopped, capture left in place (changes pile up at the source). */
  stop(): Promise<void>;
  /** Everything the run created removed, except the site's databases (the caller drops them). */
  tearDown(): Promise<void>;
}

export interface Peer {
  readonly name: PeerName;
  /** Installs capture at the source and apply at the destinations; replication not started yet. */
  setUp(site: PeerSite): Promise<PeerRun>;
}

/**
 * The table every system replicates. `created` is set when the source writes the row; `seen` by
 * a BEFORE INSERT trigger at a destination, ENABLE ALWAYS so it fires for replicated writes too
 * (logical replication's apply worker and Bucardo write with session_replication_role=replica).
 */
export const TABLE_DDL = `
CREATE TABLE public.peer_item (
  id bigserial PRIMARY KEY,
  client int NOT NULL,
  qty int NOT NULL,
  payload text NOT NULL,
  created timestamptz NOT NULL DEFAULT clock_timestamp(),
  seen timestamptz
);`;

/** Run at each destination after the system's own set-up. */
export const SEEN_TRIGGER_DDL = `
CREATE OR REPLACE FUNCTION public.peer_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.seen := clock_timestamp();
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS peer_seen ON public.peer_item;
CREATE TRIGGER peer_seen BEFORE INSERT ON public.peer_item FOR EACH ROW EXECUTE FUNCTION public.peer_seen();
ALTER TABLE public.peer_item ENABLE ALWAYS TRIGGER peer_seen;`;
