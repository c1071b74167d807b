/** DDL of schema `hubsync` at a branch (docs/architecture.md "Agent schema hubsync"). Idempotent. */

export const HUBSYNC_SCHEMA_VERSION = 1;

export const SCHEMA_DDL = `
CREATE SCHEMA IF NOT EXISTS hubsync;

CREATE TABLE IF NOT EXISTS hubsync.meta (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  tenant_id text NOT NULL,
  branch_id text NOT NULL,
  version integer NOT NULL,
  "cursor" bigint NOT NULL DEFAULT 0,
  bootstrapped boolean NOT NULL DEFAULT false,
  -- Highest remote HLC received (within the skew limit); local writes stamp at least this.
  clock_floor bigint NOT NULL DEFAULT 0,
  last_ack_at timestamptz,
  last_apply_at timestamptz,
  installed_at timestamptz NOT NULL DEFAULT now()
);

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

CREATE OR REPLACE FUNCTION hubsync.refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  IF current_setting('hubsync.applying', true) = 'on' THEN RETURN NULL; END IF;
  RAISE EXCEPTION 'TRUNCATE of synced table %.% is not replicated; use DELETE', TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING HINT = 'to empty this copy only, SET LOCAL hubsync.applying = on first';
END $fn$;
`;
