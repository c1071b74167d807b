/**
 * Row counts and a checksum per branch: SHA-256 over every synced table dumped in primary-key
 * order as PostgreSQL text, with the same text-form settings the capture functions pin, so equal
 * data gives equal checksums whatever the session's time zone or date style.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';

export interface SyncedTable {
  /** `schema.table`, as configured at the agents. */
  readonly name: string;
  readonly pk: readonly string[];
}

export interface BranchData {
  /** Rows per table, in the order of the tables given. */
  readonly counts: readonly number[];
  /** Hex SHA-256 of the ordered dump of every table. */
  readonly checksum: string;
}

const PINS = `SET LOCAL "DateStyle" = 'ISO, YMD'; SET LOCAL "TimeZone" = 'UTC'; SET LOCAL "IntervalStyle" = 'postgres';
  SET LOCAL bytea_output = 'hex'; SET LOCAL extra_float_digits = 3`;

function quote(name: string): string {
  return name
    .split('.')
    .map((p) => `"${p.replace(/"/g, '""')}"`)
    .join('.');
}

/** Reads every table in one transaction, so the counts and the checksum describe one moment. */
export async function branchData(pool: pg.Pool, tables: readonly SyncedTable[]): Promise<BranchData> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await c.query(PINS);
    const hash = createHash('sha256');
    const counts: number[] = [];
    for (const t of tables) {
      const order = t.pk.map((k) => `t.${quote(k)}`).join(', ');
      const { rows } = await c.query<{ r: string }>(`SELECT t::text AS r FROM ${quote(t.name)} t ORDER BY ${order}`);
      hash.update(`${t.name}\n`);
      for (const row of rows) hash.update(`${row.r}\n`);
      counts.push(rows.length);
    }
    await c.query('COMMIT');
    return { counts, checksum: hash.digest('hex') };
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
}

/** True when every branch has the same checksum. Pure. */
export function converged(data: readonly BranchData[]): boolean {
  return data.length > 0 && data.every((d) => d.checksum === data[0]?.checksum);
}
