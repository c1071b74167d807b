/**
 * Compaction: how fast the hub folds its log into the compacted state (hub/compactor.ts), alone,
 * without sockets. At full relay load the compactor shares the hub database with appends and
 * reads, so its cost per entry decides how much of the machine is left for relaying.
 *
 * A fresh database and tenant schema; per round, 100,000 of the relay benchmark's `customer`
 * updates (50,000 rows, so every row twice per round) appended in group commits of 10 batches
 * of 100, then one `compact()` from the previous round's end. Round 1 creates every row's state,
 * the later rounds rewrite it. Called in-process: the compactor's JavaScript runs here, its SQL
 * in the database.
 */
import { compact } from '../hub/compactor.js';
import { appendMany } from '../hub/log.js';
import { createPool } from '../hub/store/index.js';
import { upgradeTenantSchema } from '../hub/store/migrations.js';
import { CUSTOMER_ROWS, customerChange } from './lib/customer-change.js';
import { cpuSeconds, createDatabase } from './lib/hub-process.js';
import { markdownTable } from './lib/report.js';

export const COMPACTION = { entriesPerRound: 100_000, rows: CUSTOMER_ROWS, rounds: 3 } as const;

export interface CompactionRound {
  readonly entries: number;
  readonly seconds: number;
  /** CPU seconds of the database backend that ran the compaction. */
  readonly dbCpuSeconds: number;
}

export interface CompactionResult {
  readonly rounds: readonly CompactionRound[];
  readonly stateRows: number;
  readonly stateVersions: number;
}

export async function runCompaction(): Promise<CompactionResult> {
  const db = await createDatabase('compaction');
  const pool = createPool(db.url, { max: 1 });
  const schema = 'tenant_bench';
  try {
    await upgradeTenantSchema(pool, schema, 0);
    const rounds: CompactionRound[] = [];
    let seq = 0;
    for (let round = 0; round < COMPACTION.rounds; round++) {
      for (let n = 0; n < COMPACTION.entriesPerRound; n += 1000) {
        const batches = [];
        for (let b = 0; b < 10; b++) {
          const changes = [];
          for (let i = 0; i < 100; i++) {
            seq++;
            changes.push(customerChange('origin', seq, Math.ceil(seq / 5), seq % 5 === 0, 1_700_000_000_000 + seq));
          }
          batches.push({ changes, target: null });
        }
        await appendMany(pool, 'bench', schema, 'origin', batches);
      }
      // The pool has one connection: the compaction runs on this backend.
      const { rows } = await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const pid = rows[0]?.pid as number;
      const cpu0 = cpuSeconds(pid);
      const t0 = performance.now();
      const r = await compact(pool, 'bench', schema);
      const seconds = (performance.now() - t0) / 1000;
      rounds.push({ entries: r.entries, seconds, dbCpuSeconds: cpuSeconds(pid) - cpu0 });
      console.error(`[compaction] round ${round + 1}: ${r.entries} entries in ${seconds.toFixed(2)} s`);
    }
    const { rows } = await pool.query<{ n: string; v: string }>(
      `SELECT count(*) AS n, coalesce(sum(jsonb_array_length(versions)), 0) AS v FROM ${schema}.state`,
    );
    return { rounds, stateRows: Number(rows[0]?.n), stateVersions: Number(rows[0]?.v) };
  } finally {
    await pool.end();
    await db.drop();
  }
}

export function compactionTable(r: CompactionResult): string {
  return markdownTable(
    ['round', 'entries', 'folded per second', 'database CPU per entry'],
    [
      ...r.rounds.map((x, i) => [
        `${i + 1} ${i === 0 ? '(rows created)' : '(rows rewritten)'}`,
        x.entries,
        `**${Math.round(x.entries / x.seconds).toLocaleString('en-US')}**`,
        `${((x.dbCpuSeconds * 1e6) / x.entries).toFixed(0)} µs`,
      ]),
      [
        'state at the end',
        `${r.stateRows.toLocaleString('en-US')} rows, ${r.stateVersions.toLocaleString('en-US')} versions (one per row: the updates come from one branch)`,
        '',
        '',
      ],
    ],
  );
}
