/**
 * `hub-broker admin schema …` (also `hub-broker schema …`): publish a migration to every branch of
 * a tenant through its log, and list the schema changes with each branch's version
 * (docs/sync-semantics.md "Schema changes"). The hub parses and checks the SQL; this side reads the file.
 */
import { readFileSync } from 'node:fs';
import { SWITCH, UsageError, value } from './args.js';
import { arg, tenantPath, type Commands } from './command.js';
import { table } from './format.js';

function readSql(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

interface Listing {
  version: number;
  changes: { version: number; name: string | null; description: string | null; statements: { kind: string; table: string | null }[]; published_at: string }[];
  branches: { id: string; schema_version: number; pending: number }[];
}

function listingText(body: Listing): string {
  const changes =
    body.changes.length === 0
      ? '(no schema changes yet)\n'
      : table(
          ['VERSION', 'NAME', 'PUBLISHED', 'STATEMENTS', 'DESCRIPTION'],
          body.changes.map((c) => [String(c.version), c.name ?? '-', c.published_at, c.statements.map((s) => `${s.kind}${s.table ? ` ${s.table}` : ''}`).join(', '), c.description ?? '-']),
        );
  const branches = table(
    ['BRANCH', 'SCHEMA', 'PENDING'],
    body.branches.map((b) => [b.id, String(b.schema_version), b.pending > 0 ? String(b.pending) : '-']),
  );
  return `${changes}\n${branches}`;
}

export const schemaCommands: Commands = {
  apply: {
    args: ['<tenant>', '<file.sql>'],
    flags: { name: value('<name>'), description: value('<text>'), 'allow-unknown-tables': SWITCH },
    summary: 'publish the migration in <file.sql> to every branch of the tenant, in order with the data (supported statements only; see docs/sync-semantics.md)',
    run: async (inv) => {
      const tenant = arg(inv, 0);
      const description = inv.flags.value('description');
      const name = inv.flags.value('name');
      const body = {
        sql: readSql(arg(inv, 1)),
        ...(name === undefined ? {} : { name }),
        ...(description === undefined ? {} : { description }),
        ...(inv.flags.has('allow-unknown-tables') ? { allow_unknown_tables: true } : {}),
      };
      return {
        body: await inv.client.request('POST', `${tenantPath(tenant)}/schema`, body),
        human: (r: { version: number; offset: number; statements: { kind: string; table: string | null }[]; created: boolean }) =>
          `${r.created ? 'published' : 'already published as'} schema version ${r.version} of tenant ${tenant} at log offset ${r.offset}: ${r.statements.map((s) => `${s.kind}${s.table ? ` ${s.table}` : ''}`).join(', ')}\n` +
          `each branch applies it when it reaches it; hub-broker admin schema list ${tenant} shows where they are\n`,
      };
    },
  },
  list: {
    args: ['<tenant>'],
    flags: {},
    summary: "list a tenant's schema changes and the schema version each branch applied",
    run: async (inv) => ({ body: await inv.client.request('GET', `${tenantPath(arg(inv, 0))}/schema`), human: listingText }),
  },
};
