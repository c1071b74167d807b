/** DDL of schema `hubsync` at a branch (docs/architecture.md "Agent schema hubsync"). Idempotent. */

/**
 * 2: the apply's state (cursor, clock floor) and the sender's (last ack) left `hubsync.meta` for
 * rows of their own, so acknowledging never waits behind an apply; tables gained `position`.
 * 3: `change_log.old`, the row before an update or delete (routing tells by it who held the row).
 * 4: column-level tables: `row_version.cols` and `change_log.cols` (protocol/merge.ts), `tables.merge`
 *    and `tables.additive`, `apply_state.priority`, `conflicts.columns`.
 * 5: schema changes through the hub: `schema_changes`, `apply_state.schema_version` and
 *    `schema_blocked`, `tables.retired` and `tables.added_by_schema`.
 */
export const HUBSYNC_SCHEMA_VERSION = 5;

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

-- Version 5: schema changes through the hub (agent/schema/apply.ts).
ALTER TABLE hubsync.apply_state ADD COLUMN IF NOT EXISTS schema_version integer NOT NULL DEFAULT 0;
-- The schema change this branch stopped at: {version, error, since, attempts}; null while none.
ALTER TABLE hubsync.apply_state ADD COLUMN IF NOT EXISTS schema_blocked jsonb;
-- Old column names → their name now (null: dropped), so rows written before still apply.
ALTER TABLE hubsync.tables ADD COLUMN IF NOT EXISTS retired jsonb NOT NULL DEFAULT '{}';
ALTER TABLE hubsync.tables ADD COLUMN IF NOT EXISTS added_by_schema integer;
CREATE TABLE IF NOT EXISTS hubsync.schema_changes (
  version integer PRIMARY KEY,
  log_offset bigint,
  sql text NOT NULL,
  description text,
  -- 'applied' here, or 'skipped' (the branch was at that version already, see install --schema-version)
  outcome text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- The column state after a local write (protocol/merge.ts): every column the write set gets a
-- cell stamped with it; a counter's change adds new − old to this branch's contribution; a
-- delete leaves the state as it was. \`best\` keeps the better-ranked writer of the column.
CREATE OR REPLACE FUNCTION hubsync.stamp_columns(prev jsonb, o jsonb, r jsonb, additive text[], hlc bigint, branch text, n bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE
-- Called by SECURITY DEFINER capture functions: immune to the writer's search_path.
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  result jsonb := coalesce(prev, '{}'::jsonb);
  h text := lpad(to_hex(hlc), 16, '0');
  prio text[];
  col text;
  v jsonb;
  p jsonb;
  cell jsonb;
  best text;
  pbest text;
  mine jsonb;
  prior numeric;
BEGIN
  IF r IS NULL THEN RETURN prev; END IF;
  SELECT a.priority INTO prio FROM hubsync.apply_state a;
  FOR col, v IN SELECT e.key, e.value FROM jsonb_each(r) e LOOP
    p := result -> col;
    IF p IS NULL AND o IS NOT NULL THEN
      -- A row written before its columns were tracked: the column starts at the zero cell of
      -- its old value (a counter at that base), as protocol/merge.ts untrackedColumns says.
      cell := jsonb_build_array(coalesce(o -> col, 'null'::jsonb), '0000000000000000', '', 0, '');
      p := CASE WHEN col = ANY (additive) THEN jsonb_build_object('b', cell, 'd', '{}'::jsonb) ELSE cell END;
      result := result || jsonb_build_object(col, p);
    END IF;
    IF o IS NOT NULL AND (o -> col) IS NOT DISTINCT FROM v THEN CONTINUE; END IF;
    IF o IS NOT NULL AND col = ANY (additive) AND p ? 'b' THEN
      mine := p -> 'd' -> branch;
      prior := CASE WHEN mine IS NOT NULL AND mine ->> 2 = p -> 'b' ->> 1 AND mine ->> 3 = p -> 'b' ->> 2 THEN (mine ->> 0)::numeric ELSE 0 END;
      result := jsonb_set(result, ARRAY[col, 'd', branch], jsonb_build_array(
        (prior + coalesce((v #>> '{}')::numeric, 0) - coalesce((o ->> col)::numeric, 0))::text, n, p -> 'b' ->> 1, p -> 'b' ->> 2));
      CONTINUE;
    END IF;
    best := branch;
    IF p IS NOT NULL THEN
      pbest := CASE WHEN jsonb_typeof(p) = 'object' THEN p -> 'b' ->> 4 ELSE p ->> 4 END;
      IF coalesce(array_position(prio, pbest), 2147483647) < coalesce(array_position(prio, branch), 2147483647) THEN best := pbest; END IF;
    END IF;
    cell := jsonb_build_array(v, h, branch, n, best);
    result := result || jsonb_build_object(col, CASE WHEN col = ANY (additive) THEN jsonb_build_object('b', cell, 'd', '{}'::jsonb) ELSE cell END);
  END LOOP;
  RETURN result;
END $fn$;

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
