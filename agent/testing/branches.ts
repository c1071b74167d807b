/**
 * Helpers for agent tests: branch databases with hubsync installed, and an in-process relay
 * that moves changes from outboxes to apply engines.
 *
 * The relay is a stand-in for the hub in the agent's unit tests only: it assigns log offsets,
 * skips a branch's own changes, pages deliveries without splitting a source transaction, and can
 * redeliver. It does none of the hub's real work (auth, durability, routing, limits); the
 * end-to-end tests under test/ run the real hub.
 */
import pg from 'pg';
import type { Change, LogEntry, TenantPolicy } from '../../protocol/messages.js';
import { ApplyEngine, type ApplyEngineOptions, type ApplyResult } from '../apply/engine.js';
import { loadInstalledTables, type TableInfo } from '../catalog.js';
import type { TableConfig } from '../config.js';
import { install } from '../install.js';
import { Outbox } from '../outbox.js';
import { quoteIdent, quoteTable } from '../sql/ident.js';

export interface TestBranch {
  readonly id: string;
  readonly url: string;
  readonly pool: pg.Pool;
  readonly outbox: Outbox;
  engine: ApplyEngine;
  tables: Map<string, TableInfo>;
  close(): Promise<void>;
}

export const TENANT = 'acme';

/** Creates the schema (`ddl`), installs hubsync for `tables`, and returns the branch's parts. */
export async function openBranch(
  url: string,
  id: string,
  ddl: string,
  tables: readonly TableConfig[],
  engine: Partial<ApplyEngineOptions> = {},
): Promise<TestBranch> {
  const pool = new pg.Pool({ connectionString: url, max: 6 });
  pool.on('error', () => undefined);
  if (ddl !== '') await pool.query(ddl);
  await install(pool, { tenantId: TENANT, branchId: id, tables });
  const installed = await loadInstalledTables(pool);
  const b: TestBranch = {
    id,
    url,
    pool,
    outbox: new Outbox(pool, id),
    engine: new ApplyEngine(pool, installed, { branchId: id, maxForwardSkewMs: 300_000, ...engine }),
    tables: installed,
    close: () => pool.end(),
  };
  return b;
}

/** Every row of `table` as PostgreSQL text, in primary-key order, read with the pinned settings. */
export async function dump(pool: pg.Pool, table: string, pk: readonly string[]): Promise<string[]> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query(`SET LOCAL "DateStyle" = 'ISO, YMD'; SET LOCAL "TimeZone" = 'UTC'; SET LOCAL "IntervalStyle" = 'postgres';
                   SET LOCAL bytea_output = 'hex'; SET LOCAL extra_float_digits = 3`);
    const { rows } = await c.query<{ t: string }>(
      `SELECT t::text AS t FROM ${quoteTable(table)} t ORDER BY ${pk.map((k) => `t.${quoteIdent(k)}`).join(', ')}`,
    );
    await c.query('COMMIT');
    return rows.map((r) => r.t);
  } finally {
    c.release();
  }
}

/** Reads the whole outbox of `b` as the hub would receive it, acknowledging each batch. */
export async function drainOutbox(b: TestBranch, batchSize = 100, maxPerBatch = 1000): Promise<Change[][]> {
  const batches: Change[][] = [];
  for (;;) {
    const batch = await b.outbox.next({ batchSize, maxPerBatch });
    if (!batch) return batches;
    batches.push([...batch.changes]);
    await b.outbox.acknowledge(batch.seqs);
  }
}

/** The stand-in for the hub's tenant log (see the file comment). */
export class Relay {
  readonly log: LogEntry[] = [];
  private readonly seen = new Map<string, number>();

  /** Appends a batch; idempotent on (origin, seq) like the hub. Returns the offsets. */
  append(changes: readonly Change[]): number[] {
    return changes.map((c) => {
      const key = `${c.origin}/${c.seq}`;
      const known = this.seen.get(key);
      if (known !== undefined) return known;
      const offset = this.log.length + 1;
      this.log.push([offset, c]);
      this.seen.set(key, offset);
      return offset;
    });
  }

  /** Sends everything waiting in `b`'s outbox to the log. */
  async collect(b: TestBranch, batchSize = 100): Promise<number> {
    let n = 0;
    for (const batch of await drainOutbox(b, batchSize)) n += this.append(batch).length;
    return n;
  }

  /**
   * Entries for `branch` after `from` (exclusive), without its own, in pages of about
   * `pageSize` that keep a source transaction whole.
   */
  pages(branch: string, from: number, pageSize = 50): LogEntry[][] {
    const mine = this.log.filter(([o, c]) => o > from && c.origin !== branch);
    const pages: LogEntry[][] = [];
    let page: LogEntry[] = [];
    for (let i = 0; i < mine.length; i++) {
      const e = mine[i] as LogEntry;
      page.push(e);
      const next = mine[i + 1];
      const sameTx = next !== undefined && next[1].origin === e[1].origin && next[1].tx === e[1].tx;
      if (page.length >= pageSize && !sameTx) {
        pages.push(page);
        page = [];
      }
    }
    if (page.length > 0) pages.push(page);
    return pages;
  }

  /** Delivers everything after `from` to `b` through its apply engine; returns the results. */
  async deliver(b: TestBranch, from: number, pageSize = 50): Promise<ApplyResult[]> {
    const out: ApplyResult[] = [];
    for (const page of this.pages(b.id, from, pageSize)) out.push(await b.engine.deliver(page));
    return out;
  }
}

/** Current hubsync cursor of a branch. */
export async function cursorOf(b: TestBranch): Promise<number> {
  const { rows } = await b.pool.query<{ c: string }>(`SELECT "cursor"::text AS c FROM hubsync.apply_state`);
  return Number(rows[0]?.c ?? 0);
}

export const LWW: TenantPolicy = { conflict_strategy: 'last-write-wins', branch_priority: [] };
