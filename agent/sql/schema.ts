/** DDL of schema `hubsync` at a branch (docs/architecture.md "Agent schema hubsync"). Idempotent. */

/**
 * 2: the apply's state (cursor, clock floor) and the sender's (last ack) left `hubsync.meta` for
 * rows of their own, so acknowledging never waits behind an apply; tables gained `position`.
 * 3: `change_log.old`, the row before an update or delete (routing tells by it who held the row).
 * 4: column-level tables: `row_version.cols` and `change_log.cols` (protocol/merge.ts), `tables.merge`
 *    and `tables.additive`, `apply_state.priority`, `conflicts.columns`.
 */
export const HUBSYNC_SCHEMA_VERSION = 4;

export const SCHEMA_DDL = `
CREATE SCHEMA IF NOT EXISTS hubsync;

CREATE TABLE IF NOT EXISTS hubsync.meta (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  tenant_id text NOT NULL,
  branch_id text NOT NULL,
  version integer NOT NULL,
  installed_at timestamptz NOT NULL DEFAULT now()
);

-- Written only by applies (one at a time), read by everyone: the capture trigger reads the
-- floor without a lock, the sender never touches it.
CREATE TABLE IF NOT EXISTS hubsync.apply_state (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  "cursor" bigint NOT NULL DEFAULT 0,
  bootstrapped boolean NOT NULL DEFAULT false,
  -- Highest remote HLC received (within the skew limit); local writes stamp at least this.
  clock_floor bigint NOT NULL DEFAULT 0,
  last_apply_at timestamptz
);

-- Written only by the sender when the hub acknowledged changes.
CREATE TABLE IF NOT EXISTS hubsync.send_state (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  last_ack_at timestamptz
);

-- From version 1, where meta held all of it. Runs once: afterwards meta has no "cursor".
DO $migrate$
BEGIN
  IF EXISTS (SELECT 1 FROM information_schema.columns
             WHERE table_schema = 'hubsync' AND table_name = 'meta' AND column_name = 'cursor') THEN
    INSERT INTO hubsync.apply_state (singleton, "cursor", bootstrapped, clock_floor, last_apply_at)
      SELECT true, m."cursor", m.bootstrapped, m.clock_floor, m.last_apply_at FROM hubsync.meta m
      ON CONFLICT DO NOTHING;
    INSERT INTO hubsync.send_state (singleton, last_ack_at) SELECT true, m.last_ack_at FROM hubsync.meta m
      ON CONFLICT DO NOTHING;
    ALTER TABLE hubsync.meta DROP COLUMN "cursor", DROP COLUMN bootstrapped, DROP COLUMN clock_floor,
      DROP COLUMN last_ack_at, DROP COLUMN last_apply_at;
  END IF;
END $migrate$;
INSERT INTO hubsync.apply_state DEFAULT VALUES ON CONFLICT DO NOTHING;
INSERT INTO hubsync.send_state DEFAULT VALUES ON CONFLICT DO NOTHING;

-- The agent sets waiting while it has nothing to send; capture triggers NOTIFY only then.
CREATE TABLE IF NOT EXISTS hubsync.wake (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  waiting boolean NOT NULL DEFAULT false
);
INSERT INTO hubsync.wake DEFAULT VALUES ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS hubsync.tables (
  tbl text PRIMARY KEY,
  columns jsonb NOT NULL,
  pk_columns text[] NOT NULL,
  pins text[] NOT NULL,
  strategy text,
  relkind text NOT NULL,
  capture_function text NOT NULL,
  installed_at timestamptz NOT NULL DEFAULT now()
);
-- Configuration order: applies lock rows table by table in this order (docs/architecture.md "Apply").
ALTER TABLE hubsync.tables ADD COLUMN IF NOT EXISTS position integer NOT NULL DEFAULT 0;

CREATE SEQUENCE IF NOT EXISTS hubsync.change_seq;

-- The outbox. Rows are deleted once the hub acknowledged them.
CREATE TABLE IF NOT EXISTS hubsync.change_log (
  seq bigint PRIMARY KEY DEFAULT nextval('hubsync.change_seq'),
  tx xid8 NOT NULL,
  tbl text NOT NULL,
  op text NOT NULL,
  pk jsonb NOT NULL,
  "row" jsonb,
  hlc bigint NOT NULL,
  vv jsonb NOT NULL
);
-- Version 3: the row before an update or delete.
ALTER TABLE hubsync.change_log ADD COLUMN IF NOT EXISTS old jsonb;
-- Finds the rest of a source transaction whose first change the sender read.
CREATE INDEX IF NOT EXISTS change_log_tx ON hubsync.change_log (tx);

-- The version of every row ever written here, tombstones included. Keyed by (tbl, pk) as one
-- bytewise-compared text, tbl || ' ' || pk::text (jsonb text is canonical): cheaper to index
-- than (text, jsonb), whose comparisons go through the database collation.
CREATE TABLE IF NOT EXISTS hubsync.row_version (
  key text COLLATE "C" PRIMARY KEY,
  tbl text NOT NULL,
  pk jsonb NOT NULL,
  vv jsonb NOT NULL,
  hlc bigint NOT NULL,
  origin text NOT NULL,
  deleted boolean NOT NULL
) WITH (fillfactor = 80);

CREATE TABLE IF NOT EXISTS hubsync.conflicts (
  id bigserial PRIMARY KEY,
  detected_at timestamptz NOT NULL DEFAULT now(),
  tbl text NOT NULL,
  pk jsonb NOT NULL,
  strategy text NOT NULL,
  -- 'local' or 'incoming'
  winner text NOT NULL,
  local_version jsonb NOT NULL,
  incoming_version jsonb NOT NULL,
  local_row jsonb,
  incoming_row jsonb,
  log_offset bigint,
  -- This branch reports the conflict to the hub (its own version won); reported_at once sent.
  report boolean NOT NULL,
  reported_at timestamptz
);
CREATE INDEX IF NOT EXISTS conflicts_unreported ON hubsync.conflicts (id) WHERE report AND reported_at IS NULL;

CREATE TABLE IF NOT EXISTS hubsync.dead_letter (
  id bigserial PRIMARY KEY,
  failed_at timestamptz NOT NULL DEFAULT now(),
  log_offset bigint,
  origin text NOT NULL,
  seq bigint NOT NULL,
  tbl text NOT NULL,
  change jsonb NOT NULL,
  reason text NOT NULL,
  sqlstate text,
  -- For the report: the strategy in force and this branch's version of the row, when known.
  strategy text NOT NULL,
  local_version jsonb,
  reported_at timestamptz
);
CREATE INDEX IF NOT EXISTS dead_letter_unreported ON hubsync.dead_letter (id) WHERE reported_at IS NULL;

-- Version 4: column-level tables (protocol/merge.ts).
ALTER TABLE hubsync.tables ADD COLUMN IF NOT EXISTS merge text NOT NULL DEFAULT 'row';
ALTER TABLE hubsync.tables ADD COLUMN IF NOT EXISTS additive text[] NOT NULL DEFAULT '{}';
-- The column state of a row of a column-level table; kept for tombstones too.
ALTER TABLE hubsync.row_version ADD COLUMN IF NOT EXISTS cols jsonb;
ALTER TABLE hubsync.change_log ADD COLUMN IF NOT EXISTS cols jsonb;
-- The tenant's branch priority, for the capture of column-level tables.
ALTER TABLE hubsync.apply_state ADD COLUMN IF NOT EXISTS priority text[] NOT NULL DEFAULT '{}';
-- Which columns conflicted and which merged; and what a person did about it.
ALTER TABLE hubsync.conflicts ADD COLUMN IF NOT EXISTS columns jsonb;
ALTER TABLE hubsync.conflicts ADD COLUMN IF NOT EXISTS overridden_at timestamptz;
-- The tenant's conflict strategy as the hub last said, for retries from the command line.
ALTER TABLE hubsync.apply_state ADD COLUMN IF NOT EXISTS conflict_strategy text;

-- The column state after a local write (protocol/merge.ts): every column the write set gets a
-- cell stamped with it; a counter's change adds new − old to this branch's contribution; a
-- delete leaves the state as it was. \`best\` keeps the better-ranked writer of the column.
CREATE OR REPLACE FUNCTION hubsync.stamp_columns(prev jsonb, o jsonb, r jsonb, additive text[], hlc bigint, branch text, n bigint)
RETURNS jsonb LANGUAGE sql STABLE
-- Called by SECURITY DEFINER capture functions: immune to the writer's search_path.
SET search_path = pg_catalog, pg_temp AS $fn$
  -- One pass over the row's columns. p: the column's state before (a row written before its
  -- columns were tracked starts at the zero cell of its old value, as protocol/merge.ts
  -- untrackedColumns says); c: the new cell when the write set the column.
  SELECT CASE WHEN r IS NULL THEN prev ELSE coalesce(prev, '{}'::jsonb) || coalesce((
    SELECT jsonb_object_agg(e.key, CASE
      WHEN o IS NOT NULL AND (o -> e.key) IS NOT DISTINCT FROM e.value THEN x.p
      -- A counter changed: this branch's contribution to the current base grows by new - old.
      WHEN o IS NOT NULL AND x.counter AND jsonb_typeof(x.p) = 'object' THEN jsonb_set(x.p, ARRAY['d', branch], jsonb_build_array(
        (CASE WHEN x.p -> 'd' -> branch ->> 2 = x.p -> 'b' ->> 1 AND x.p -> 'd' -> branch ->> 3 = x.p -> 'b' ->> 2
              THEN (x.p -> 'd' -> branch ->> 0)::numeric ELSE 0 END
         + coalesce((e.value #>> '{}')::numeric, 0) - coalesce((o ->> e.key)::numeric, 0))::text,
        n, x.p -> 'b' ->> 1, x.p -> 'b' ->> 2))
      WHEN x.counter THEN jsonb_build_object('b', x.c, 'd', '{}'::jsonb)
      ELSE x.c
    END)
    FROM jsonb_each(r) e
    CROSS JOIN LATERAL (SELECT e.key = ANY (additive) AS counter) k
    CROSS JOIN LATERAL (SELECT coalesce(prev -> e.key, CASE WHEN o IS NOT NULL THEN
        CASE WHEN k.counter THEN jsonb_build_object('b', jsonb_build_array(coalesce(o -> e.key, 'null'::jsonb), '0000000000000000', '', 0, ''), 'd', '{}'::jsonb)
             ELSE jsonb_build_array(coalesce(o -> e.key, 'null'::jsonb), '0000000000000000', '', 0, '') END END) AS p) q
    -- best: this branch, or the better-ranked writer the column had (branch-priority).
    CROSS JOIN LATERAL (SELECT CASE WHEN jsonb_typeof(q.p) = 'object' THEN q.p -> 'b' ->> 4 ELSE q.p ->> 4 END AS pbest) pb
    CROSS JOIN LATERAL (SELECT a.priority FROM hubsync.apply_state a) pr
    CROSS JOIN LATERAL (SELECT k.counter, q.p, jsonb_build_array(e.value, lpad(to_hex(hlc), 16, '0'), branch, n,
        CASE WHEN coalesce(array_position(pr.priority, pb.pbest), 2147483647) < coalesce(array_position(pr.priority, branch), 2147483647)
             THEN pb.pbest ELSE branch END) AS c) x
  ), '{}'::jsonb) END
$fn$;

CREATE OR REPLACE FUNCTION hubsync.refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  IF current_setting('hubsync.applying', true) = 'on' THEN RETURN NULL; END IF;
  RAISE EXCEPTION 'TRUNCATE of synced table %.% is not replicated; use DELETE', TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING HINT = 'to empty this copy only, SET LOCAL hubsync.applying = on first';
END $fn$;

-- An apply statement that finds a row otherwise than planned (a local writer got in between
-- the agent's read and its write) fails with HS001, and the agent reads and plans again.
CREATE OR REPLACE FUNCTION hubsync.expect(got bigint, want bigint, what text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
  IF got IS DISTINCT FROM want THEN
    RAISE EXCEPTION 'hubsync apply: % (% rows, % expected)', what, got, want USING ERRCODE = 'HS001';
  END IF;
END $fn$;
`;
