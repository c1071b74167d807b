/**
 * The least a trigger-based capture can cost, for docs/benchmarks.md "Peers": one outbox row
 * per inserted row, written by one statement-level trigger, with no version, clock or wake-up
 * (what Hub-Broker's capture adds on top is the row's version in hubsync.row_version, which
 * conflict resolution needs, and the outbox's transaction index). Not a replicator: a measure.
 */
import { TABLE_DDL } from './peer.js';

export const FLOOR_DDL = `${TABLE_DDL}
CREATE TABLE public.floor_outbox (seq bigserial PRIMARY KEY, tx xid8 NOT NULL, tbl text NOT NULL, op text NOT NULL, pk jsonb NOT NULL, "row" jsonb);
CREATE FUNCTION public.floor_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.floor_outbox (tx, tbl, op, pk, "row")
  SELECT pg_current_xact_id(), 'public.peer_item', 'insert', jsonb_build_object('id', x.id::text), to_jsonb(x) FROM floor_new x;
  RETURN NULL;
END $$;
CREATE TRIGGER floor_capture AFTER INSERT ON public.peer_item REFERENCING NEW TABLE AS floor_new
  FOR EACH STATEMENT EXECUTE FUNCTION public.floor_capture();`;
