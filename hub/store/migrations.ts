import type pg from 'pg';
import { ADVISORY_KEY_SQL, quoteIdent, type Queryable } from './db.js';

interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/** Global schema `hub`. Append only: a released migration never changes. */
const GLOBAL: readonly Migration[] = [
  {
    version: 1,
    name: 'tenants, branches, audit log',
    sql: `
      CREATE TABLE hub.tenants (
        id text PRIMARY KEY,
        status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
        max_branches integer CHECK (max_branches IS NULL OR max_branches >= 0),
        rate_messages_per_second double precision CHECK (rate_messages_per_second IS NULL OR rate_messages_per_second > 0),
        rate_burst integer CHECK (rate_burst IS NULL OR rate_burst > 0),
        conflict_strategy text NOT NULL DEFAULT 'last-write-wins'
          CHECK (conflict_strategy IN ('last-write-wins', 'branch-priority')),
        branch_priority text[] NOT NULL DEFAULT '{}',
        deletion_policy text NOT NULL DEFAULT 'retain' CHECK (deletion_policy IN ('retain', 'delete')),
        schema_name text NOT NULL UNIQUE,
        schema_version integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE hub.branches (
        tenant_id text NOT NULL REFERENCES hub.tenants (id) ON DELETE CASCADE,
        id text NOT NULL,
        status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
        key_hash text,
        prev_key_hash text,
        prev_key_expires_at timestamptz,
        key_rotated_at timestamptz,
        last_seen_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, id)
      );
      CREATE TABLE hub.audit_log (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        tenant_id text,
        branch_id text,
        event text NOT NULL,
        source text,
        detail jsonb NOT NULL DEFAULT '{}'
      );
      CREATE INDEX audit_log_tenant_at ON hub.audit_log (tenant_id, at);
    `,
  },
  {
    version: 2,
    name: 'routing: branch groups and attributes, tenant routes',
    sql: `
      ALTER TABLE hub.branches
        ADD COLUMN groups text[] NOT NULL DEFAULT '{}',
        ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}';
      ALTER TABLE hub.tenants ADD COLUMN routes jsonb NOT NULL DEFAULT '[]';
    `,
  },
  {
    version: 3,
    name: 'routing each branch was last synced under',
    sql: `ALTER TABLE hub.branches ADD COLUMN routing_synced jsonb;`,
  },
  {
    version: 4,
    name: 'tables a tenant merges by column, with their counter columns',
    sql: `ALTER TABLE hub.tenants ADD COLUMN tables jsonb NOT NULL DEFAULT '[]';`,
  },
];

/** DDL of a tenant's schema, by version. `$S` stands for the quoted schema name. */
const TENANT: readonly Migration[] = [
  {
    version: 1,
    name: 'log, cursors, compacted state',
    sql: `
      CREATE SEQUENCE $S.log_pos_seq;
      CREATE TABLE $S.log (
        pos bigint PRIMARY KEY,
        origin text NOT NULL,
        origin_seq bigint NOT NULL,
        target text,
        change jsonb NOT NULL,
        appended_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (origin, origin_seq)
      );
      CREATE TABLE $S.cursors (
        branch_id text PRIMARY KEY,
        pos bigint NOT NULL DEFAULT 0,
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE $S.state (
        tbl text NOT NULL,
        pk jsonb NOT NULL,
        versions jsonb NOT NULL,
        pos bigint NOT NULL,
        PRIMARY KEY (tbl, pk)
      );
      CREATE TABLE $S.meta (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        compacted_upto bigint NOT NULL DEFAULT 0,
        pruned_upto bigint NOT NULL DEFAULT 0
      );
      INSERT INTO $S.meta DEFAULT VALUES;
    `,
  },
  {
    version: 2,
    name: 'conflict notices held for offline branches',
    // IF NOT EXISTS: a schema retained by a deleted tenant is taken back at version 1 (its real
    // version is not recorded anywhere), so migrations after the first must be idempotent.
    sql: `
      CREATE TABLE IF NOT EXISTS $S.notices (
        id bigserial PRIMARY KEY,
        branch_id text NOT NULL,
        frame jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX IF NOT EXISTS notices_branch_id_id_idx ON $S.notices (branch_id, id);
    `,
  },
  {
    version: 3,
    name: 'room for in-page updates of the compacted state',
    // Compaction rewrites a row's versions at every write to it; with free space on the page
    // the update stays on the page and skips the index (a HOT update).
    sql: `ALTER TABLE $S.state SET (fillfactor = 70);`,
  },
  {
    version: 4,
    name: 'compacted state keyed by one bytewise text',
    // (tbl text, pk jsonb) compared through the database collation and jsonb's ordering: the
    // compactor's three lookups per change cost a tenth of the hub database's CPU at full relay
    // load. The key is tbl || ' ' || pk::text (jsonb's text form is canonical), as on agents.
    // Idempotent (see version 2): the key is filled where missing and the primary key rebuilt.
    sql: `
      ALTER TABLE $S.state ADD COLUMN IF NOT EXISTS key text COLLATE "C";
      UPDATE $S.state SET key = tbl || ' ' || pk::text WHERE key IS NULL;
      ALTER TABLE $S.state ALTER COLUMN key SET NOT NULL;
      ALTER TABLE $S.state DROP CONSTRAINT IF EXISTS state_pkey;
      ALTER TABLE $S.state ADD CONSTRAINT state_pkey PRIMARY KEY (key);
    `,
  },
  {
    version: 5,
    name: 'schema changes published through the hub',
    // The log holds each change as an entry of hubsync.schema (protocol/schema-entry.ts); this
    // table numbers them and answers listings without reading the log.
    sql: `
      CREATE TABLE IF NOT EXISTS $S.schema_changes (
        version integer PRIMARY KEY,
        pos bigint NOT NULL,
        sql text NOT NULL,
        description text,
        statements jsonb NOT NULL,
        published_by text NOT NULL,
        published_at timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 6,
    name: 'schema changes may carry a name',
    // A Tenant resource's spec.schemaChanges are matched by name, so publishing one twice is a no-op.
    sql: `ALTER TABLE $S.schema_changes ADD COLUMN IF NOT EXISTS name text UNIQUE;`,
  },
  {
    version: 7,
    name: 'the tables branches report, and how far route repair has read the log',
    // Columns and types of each synced table as the last branch to report it has them
    // (catalog.report): route filters are checked against them when saved, and the table's own
    // conflict strategy, if it has one, is what route repair resolves its rows with. Route repair
    // (hub/route-repair.ts) has read the compacted log up to repaired_upto; a tenant that exists
    // already starts at its compacted_upto (what was folded before is not replayed).
    sql: `
      CREATE TABLE IF NOT EXISTS $S.catalog (
        tbl text PRIMARY KEY,
        columns jsonb NOT NULL,
        pk jsonb NOT NULL,
        strategy text,
        reported_by text NOT NULL,
        reported_at timestamptz NOT NULL DEFAULT now()
      );
      ALTER TABLE $S.meta ADD COLUMN IF NOT EXISTS repaired_upto bigint;
      UPDATE $S.meta SET repaired_upto = compacted_upto WHERE repaired_upto IS NULL;
      ALTER TABLE $S.meta ALTER COLUMN repaired_upto SET DEFAULT 0, ALTER COLUMN repaired_upto SET NOT NULL;
    `,
  },
];

export const TENANT_SCHEMA_VERSION = TENANT[TENANT.length - 1]?.version ?? 0;
export const GLOBAL_SCHEMA_VERSION = GLOBAL[GLOBAL.length - 1]?.version ?? 0;

/** `tenant_<id>` with `-` mapped to `_` (ids are DNS-1123 labels, so the result is a plain identifier). */
export function tenantSchemaName(tenantId: string): string {
  return `tenant_${tenantId.replace(/-/g, '_')}`;
}

/** Brings a tenant schema from `from` to `to` (the latest version); run inside the caller's transaction. */
export async function upgradeTenantSchema(q: Queryable, schema: string, from: number, to = TENANT_SCHEMA_VERSION): Promise<number> {
  if (from === 0) await q.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
  let version = from;
  for (const m of TENANT) {
    if (m.version <= from || m.version > to) continue;
    await q.query(m.sql.replaceAll('$S', quoteIdent(schema)));
    version = m.version;
  }
  return version;
}

export interface MigrationReport {
  readonly applied: readonly number[];
  readonly tenantsUpgraded: number;
}

/**
 * Applies pending migrations to the hub database under a session advisory lock, so several
 * hub instances (and the operator) starting at once apply each migration exactly once.
 */
export async function migrate(pool: pg.Pool): Promise<MigrationReport> {
  const client = await pool.connect();
  try {
    await client.query(`SELECT pg_advisory_lock(${ADVISORY_KEY_SQL})`, ['hub-broker:migrate']);
    try {
      await client.query('CREATE SCHEMA IF NOT EXISTS hub');
      await client.query(`CREATE TABLE IF NOT EXISTS hub.schema_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
      const { rows } = await client.query<{ version: number }>('SELECT version FROM hub.schema_migrations');
      const done = new Set(rows.map((r) => r.version));
      const applied: number[] = [];
      for (const m of GLOBAL) {
        if (done.has(m.version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(m.sql);
          await client.query('INSERT INTO hub.schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw new Error(`migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, { cause: err });
        }
        applied.push(m.version);
      }
      const stale = await client.query<{ id: string; schema_name: string; schema_version: number }>(
        'SELECT id, schema_name, schema_version FROM hub.tenants WHERE schema_version < $1',
        [TENANT_SCHEMA_VERSION],
      );
      for (const t of stale.rows) {
        await client.query('BEGIN');
        try {
          const v = await upgradeTenantSchema(client, t.schema_name, t.schema_version);
          await client.query('UPDATE hub.tenants SET schema_version = $2 WHERE id = $1', [t.id, v]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw new Error(`upgrading schema of tenant ${t.id} failed: ${(err as Error).message}`, { cause: err });
        }
      }
      return { applied, tenantsUpgraded: stale.rows.length };
    } finally {
      // A broken connection releases the lock by itself; do not mask the original error.
      await client.query(`SELECT pg_advisory_unlock(${ADVISORY_KEY_SQL})`, ['hub-broker:migrate']).catch(() => undefined);
    }
  } finally {
    client.release();
  }
}
