/**
 * Tenants, branches and tokens for hub benchmarks, made fast: branch rows are bulk-inserted with
 * SQL (no API keys, so no argon2, which the connection path never runs anyway) and JWTs are
 * minted with the hub's own TokenService and signing keys.
 */
import pg from 'pg';
import { createTokenService } from '../../hub/auth/jwt.js';
import { parseJwtKeys } from '../../hub/config.js';
import { HubStore, quoteIdent, tenantSchemaName } from '../../hub/store/index.js';

export interface Branch {
  readonly tenantId: string;
  readonly branchId: string;
}

/** Migrates the hub database and creates `tenants` tenants with `branchesPerTenant` active branches each. */
export async function seed(databaseUrl: string, tenants: readonly string[], branchesPerTenant: number, branchName = (i: number) => `b-${i}`): Promise<Branch[]> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 });
  try {
    const store = new HubStore(pool, { source: 'bench' });
    await store.migrate();
    const out: Branch[] = [];
    for (const tenantId of tenants) {
      await store.createTenant(tenantId);
      const ids = Array.from({ length: branchesPerTenant }, (_, i) => branchName(i));
      await pool.query(`INSERT INTO hub.branches (tenant_id, id, status) SELECT $1, unnest($2::text[]), 'active'`, [tenantId, ids]);
      await pool.query(`INSERT INTO ${quoteIdent(tenantSchemaName(tenantId))}.cursors (branch_id, pos) SELECT unnest($1::text[]), 0`, [ids]);
      for (const branchId of ids) out.push({ tenantId, branchId });
    }
    return out;
  } finally {
    await pool.end();
  }
}

/** Signs a token per branch with the hub's keys (`HUB_JWT_KEYS` form), valid for `ttlSeconds`. */
export async function mintTokens(jwtKeys: string, branches: readonly Branch[], ttlSeconds: number): Promise<string[]> {
  const tokens = createTokenService(parseJwtKeys(jwtKeys), ttlSeconds);
  const out: string[] = [];
  for (const b of branches) out.push((await tokens.issue(b.tenantId, b.branchId)).token);
  return out;
}
