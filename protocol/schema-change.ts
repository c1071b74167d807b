/**
 * Which schema changes travel with the data (issue 16; docs/sync-semantics.md "Schema changes"),
 * decided by parsing, never by pattern: PostgreSQL's own parser (libpg-query, compiled to WASM)
 * turns a migration into statements, and only these kinds are accepted:
 * - CREATE TABLE schema.t (…, PRIMARY KEY …): a table added to the synced set;
 * - ALTER TABLE schema.t ADD COLUMN … (nullable, or NOT NULL with a DEFAULT), DROP COLUMN,
 *   RENAME COLUMN … TO …;
 * - CREATE [UNIQUE] INDEX … ON schema.t (not CONCURRENTLY: it runs inside the apply transaction),
 *   DROP INDEX schema.i.
 * Everything else is refused up front with a message naming the statement. Each accepted step
 * keeps the exact text that was checked, which is what a branch executes. Pure (the parser is
 * pure computation).
 */
import { parse } from 'libpg-query';

export type SchemaStep =
  | { readonly kind: 'create_table'; readonly table: string; readonly sql: string }
  | { readonly kind: 'add_column'; readonly table: string; readonly column: string; readonly sql: string }
  | { readonly kind: 'drop_column'; readonly table: string; readonly column: string; readonly sql: string }
  | { readonly kind: 'rename_column'; readonly table: string; readonly column: string; readonly to: string; readonly sql: string }
  | { readonly kind: 'create_index'; readonly table: string; readonly index: string | null; readonly sql: string }
  | { readonly kind: 'drop_index'; readonly index: string; readonly sql: string };

export type SchemaPlan = { readonly ok: true; readonly steps: readonly SchemaStep[] } | { readonly ok: false; readonly problems: readonly string[] };

/** Most statements one schema change may hold. */
export const MAX_SCHEMA_STATEMENTS = 100;

const HINT = 'see docs/sync-semantics.md "Schema changes" for changes made by hand';

// The parse tree is PostgreSQL's, as JSON: typed loosely, read defensively.
type Node = Record<string, unknown>;
const obj = (v: unknown): Node => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Node) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** `schema.table` of a RangeVar, or a problem when it is not schema-qualified. */
function relation(v: unknown): string | { problem: string } {
  const r = obj(v);
  const schema = str(r.schemaname);
  const name = str(r.relname);
  if (!name) return { problem: 'names no table' };
  if (!schema) return { problem: `names table ${name} without its schema: write it as schema.${name}` };
  if (schema === 'hubsync') return { problem: `names ${schema}.${name}: schema hubsync is Hub-Broker's own` };
  return `${schema}.${name}`;
}

const constraintsOf = (columnDef: Node): string[] => arr(columnDef.constraints).map((c) => str(obj(obj(c).Constraint).contype) ?? '?');

function alterTable(stmt: Node, sql: string, where: string): SchemaStep | string {
  const table = relation(stmt.relation);
  if (typeof table !== 'string') return `${where} ${table.problem}`;
  if (str(stmt.objtype) !== 'OBJECT_TABLE') return `${where}: only ALTER TABLE is supported`;
  const cmds = arr(stmt.cmds).map((c) => obj(obj(c).AlterTableCmd));
  if (cmds.length !== 1) return `${where}: one change per ALTER TABLE statement (write ${cmds.length} statements)`;
  const cmd = cmds[0] as Node;
  const subtype = str(cmd.subtype);
  if (subtype === 'AT_AddColumn') {
    const def = obj(obj(cmd.def).ColumnDef);
    const column = str(def.colname) ?? '?';
    const kinds = constraintsOf(def);
    const refused = kinds.filter((k) => !['CONSTR_DEFAULT', 'CONSTR_NULL', 'CONSTR_NOTNULL'].includes(k));
    if (refused.length > 0) return `${where}: ADD COLUMN ${column} with ${refused.map((k) => k.replace('CONSTR_', '')).join(', ')} is not supported (only DEFAULT, NULL, NOT NULL)`;
    if (kinds.includes('CONSTR_NOTNULL') && !kinds.includes('CONSTR_DEFAULT')) {
      return `${where}: ADD COLUMN ${column} NOT NULL needs a DEFAULT (rows written before the change, at any branch, take it)`;
    }
    if (def.collClause !== undefined) return `${where}: ADD COLUMN ${column} with COLLATE is not supported`;
    return { kind: 'add_column', table, column, sql };
  }
  if (subtype === 'AT_DropColumn') {
    if (str(cmd.behavior) === 'DROP_CASCADE') return `${where}: DROP COLUMN … CASCADE is not supported`;
    return { kind: 'drop_column', table, column: str(cmd.name) ?? '?', sql };
  }
  return `${where}: ALTER TABLE ${(subtype ?? '?').replace(/^AT_/, '')} is not supported (ADD COLUMN, DROP COLUMN and RENAME COLUMN are); ${HINT}`;
}

function createTable(stmt: Node, sql: string, where: string): SchemaStep | string {
  const table = relation(stmt.relation);
  if (typeof table !== 'string') return `${where} ${table.problem}`;
  const persistence = str(obj(stmt.relation).relpersistence);
  if (persistence !== 'p') return `${where}: CREATE ${persistence === 't' ? 'TEMPORARY' : 'UNLOGGED'} TABLE is not synced`;
  if (arr(stmt.inhRelations).length > 0 || stmt.partbound !== undefined || stmt.partspec !== undefined) {
    return `${where}: CREATE TABLE ${table} with INHERITS or partitions is not supported`;
  }
  if (stmt.ofTypename !== undefined) return `${where}: CREATE TABLE ${table} OF a type is not supported`;
  const elements = arr(stmt.tableElts).map(obj);
  const columnPk = elements.some((e) => constraintsOf(obj(e.ColumnDef)).includes('CONSTR_PRIMARY'));
  const tablePk = elements.some((e) => str(obj(e.Constraint).contype) === 'CONSTR_PRIMARY');
  if (!columnPk && !tablePk) return `${where}: CREATE TABLE ${table} needs a PRIMARY KEY (synced tables need one)`;
  if (elements.some((e) => e.TableLikeClause !== undefined)) return `${where}: CREATE TABLE ${table} (LIKE …) is not supported`;
  return { kind: 'create_table', table, sql };
}

function classify(raw: Node, sql: string, where: string): SchemaStep | string {
  const [type, body] = Object.entries(raw)[0] ?? ['?', {}];
  const stmt = obj(body);
  switch (type) {
    case 'CreateStmt':
      return createTable(stmt, sql, where);
    case 'AlterTableStmt':
      return alterTable(stmt, sql, where);
    case 'RenameStmt': {
      if (str(stmt.renameType) !== 'OBJECT_COLUMN' || str(stmt.relationType) !== 'OBJECT_TABLE') return `${where}: only RENAME COLUMN is supported`;
      const table = relation(stmt.relation);
      if (typeof table !== 'string') return `${where} ${table.problem}`;
      return { kind: 'rename_column', table, column: str(stmt.subname) ?? '?', to: str(stmt.newname) ?? '?', sql };
    }
    case 'IndexStmt': {
      const table = relation(stmt.relation);
      if (typeof table !== 'string') return `${where} ${table.problem}`;
      if (stmt.concurrent === true) return `${where}: CREATE INDEX CONCURRENTLY cannot run inside the apply transaction; drop CONCURRENTLY`;
      return { kind: 'create_index', table, index: str(stmt.idxname) ?? null, sql };
    }
    case 'DropStmt': {
      if (str(stmt.removeType) !== 'OBJECT_INDEX') return `${where}: DROP ${(str(stmt.removeType) ?? '?').replace(/^OBJECT_/, '')} is not supported (DROP INDEX is); ${HINT}`;
      if (stmt.concurrent === true) return `${where}: DROP INDEX CONCURRENTLY cannot run inside the apply transaction`;
      if (str(stmt.behavior) === 'DROP_CASCADE') return `${where}: DROP INDEX … CASCADE is not supported`;
      const names = arr(stmt.objects).map((o) => arr(obj(obj(o).List).items).map((i) => str(obj(obj(i).String).sval) ?? '?'));
      if (names.length !== 1) return `${where}: one index per DROP INDEX statement`;
      const parts = names[0] as string[];
      if (parts.length !== 2) return `${where}: DROP INDEX needs the index's schema: schema.index`;
      if (parts[0] === 'hubsync') return `${where}: schema hubsync is Hub-Broker's own`;
      return { kind: 'drop_index', index: parts.join('.'), sql };
    }
    default:
      return `${where}: ${type.replace(/Stmt$/, '')} statements are not supported; ${HINT}`;
  }
}

/**
 * Parses and checks a migration. `synced`: the tables already synced; statements on other tables
 * are refused (CREATE TABLE adds to them, for the statements after it). null: not known (the hub
 * before any branch wrote), so not checked.
 */
export async function planSchemaChange(text: string, synced: ReadonlySet<string> | null): Promise<SchemaPlan> {
  let tree: { stmts?: { stmt: Node; stmt_location?: number; stmt_len?: number }[] };
  try {
    tree = (await parse(text)) as typeof tree;
  } catch (err) {
    const details = obj((err as { sqlDetails?: unknown }).sqlDetails);
    const at = typeof details.cursorPosition === 'number' ? ` at character ${details.cursorPosition + 1}` : '';
    return { ok: false, problems: [`syntax error${at}: ${(err as Error).message}`] };
  }
  const stmts = tree.stmts ?? [];
  if (stmts.length === 0) return { ok: false, problems: ['the schema change holds no statement'] };
  if (stmts.length > MAX_SCHEMA_STATEMENTS) return { ok: false, problems: [`at most ${MAX_SCHEMA_STATEMENTS} statements per schema change (got ${stmts.length})`] };
  const tables = new Set(synced ?? []);
  const steps: SchemaStep[] = [];
  const problems: string[] = [];
  // The text of a statement is located in UTF-8 bytes.
  const bytes = Buffer.from(text, 'utf8');
  stmts.forEach((s, i) => {
    const start = s.stmt_location ?? 0;
    const end = s.stmt_len === undefined || s.stmt_len === 0 ? bytes.length : start + s.stmt_len;
    const sql = bytes.subarray(start, end).toString('utf8').trim();
    const where = `statement ${i + 1} (${sql.slice(0, 60)}${sql.length > 60 ? '…' : ''})`;
    const step = classify(s.stmt, sql, where);
    if (typeof step === 'string') {
      problems.push(step);
      return;
    }
    if (step.kind === 'create_table') {
      if (tables.has(step.table)) problems.push(`${where}: ${step.table} is synced already`);
      tables.add(step.table);
    } else if (synced !== null && step.kind !== 'drop_index' && !tables.has(step.table)) {
      problems.push(`${where}: ${step.table} is not a synced table`);
    }
    steps.push(step);
  });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, steps };
}
