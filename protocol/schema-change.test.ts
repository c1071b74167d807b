import { describe, expect, it } from 'vitest';
import { planSchemaChange, type SchemaPlan } from './schema-change.js';

const SYNCED = new Set(['public.product', 'public.customer']);

async function problems(sql: string): Promise<readonly string[]> {
  const p = await planSchemaChange(sql, SYNCED);
  if (p.ok) throw new Error(`accepted: ${JSON.stringify(p.steps)}`);
  return p.problems;
}

const steps = (p: SchemaPlan) => (p.ok ? p.steps : p.problems);

describe('planSchemaChange', () => {
  it('accepts the supported kinds, each step with exactly the text that was checked', async () => {
    const p = await planSchemaChange(
      `ALTER TABLE public.product ADD COLUMN colour text DEFAULT 'red';
       alter table public.customer add column points int not null default 0;
       ALTER TABLE public.product DROP COLUMN legacy;
       ALTER TABLE public.customer RENAME COLUMN phone TO mobile;
       CREATE UNIQUE INDEX product_name ON public.product (name);
       DROP INDEX public.product_old;
       CREATE TABLE public.stock_move (id uuid PRIMARY KEY, product_id int NOT NULL, qty int NOT NULL);
       CREATE INDEX ON public.stock_move (product_id)`,
      SYNCED,
    );
    expect(steps(p)).toEqual([
      { kind: 'add_column', table: 'public.product', column: 'colour', sql: "ALTER TABLE public.product ADD COLUMN colour text DEFAULT 'red'" },
      { kind: 'add_column', table: 'public.customer', column: 'points', sql: 'alter table public.customer add column points int not null default 0' },
      { kind: 'drop_column', table: 'public.product', column: 'legacy', sql: 'ALTER TABLE public.product DROP COLUMN legacy' },
      { kind: 'rename_column', table: 'public.customer', column: 'phone', to: 'mobile', sql: 'ALTER TABLE public.customer RENAME COLUMN phone TO mobile' },
      { kind: 'create_index', table: 'public.product', index: 'product_name', sql: 'CREATE UNIQUE INDEX product_name ON public.product (name)' },
      { kind: 'drop_index', index: 'public.product_old', sql: 'DROP INDEX public.product_old' },
      { kind: 'create_table', table: 'public.stock_move', sql: 'CREATE TABLE public.stock_move (id uuid PRIMARY KEY, product_id int NOT NULL, qty int NOT NULL)' },
      // The table created above counts as synced for the statements after it.
      { kind: 'create_index', table: 'public.stock_move', index: null, sql: 'CREATE INDEX ON public.stock_move (product_id)' },
    ]);
  });

  it('locates statements by bytes, so text after non-ASCII characters is cut right', async () => {
    const p = await planSchemaChange(`ALTER TABLE public.product ADD COLUMN note text DEFAULT 'crème brûlée'; ALTER TABLE public.product DROP COLUMN x`, SYNCED);
    expect(steps(p)).toMatchObject([{ sql: "ALTER TABLE public.product ADD COLUMN note text DEFAULT 'crème brûlée'" }, { sql: 'ALTER TABLE public.product DROP COLUMN x' }]);
  });

  it('refuses everything else, naming the statement', async () => {
    expect(await problems('DROP TABLE public.product')).toEqual([expect.stringMatching(/^statement 1 \(DROP TABLE public\.product\): DROP TABLE is not supported/)]);
    expect(await problems('TRUNCATE public.product')).toEqual([expect.stringContaining('Truncate statements are not supported')]);
    expect(await problems('ALTER TABLE public.product ALTER COLUMN price TYPE numeric(12,2)')).toEqual([expect.stringContaining('ALTER TABLE AlterColumnType is not supported')]);
    expect(await problems('ALTER TABLE public.product ADD COLUMN sku text NOT NULL')).toEqual([expect.stringContaining('NOT NULL needs a DEFAULT')]);
    expect(await problems('ALTER TABLE public.product ADD COLUMN sku text UNIQUE')).toEqual([expect.stringContaining('with UNIQUE is not supported')]);
    expect(await problems('ALTER TABLE public.product ADD COLUMN a int, ADD COLUMN b int')).toEqual([expect.stringContaining('one change per ALTER TABLE statement')]);
    expect(await problems('ALTER TABLE product ADD COLUMN a int')).toEqual([expect.stringContaining('without its schema: write it as schema.product')]);
    expect(await problems('ALTER TABLE public.orders ADD COLUMN a int')).toEqual([expect.stringContaining('public.orders is not a synced table')]);
    expect(await problems('CREATE INDEX CONCURRENTLY i ON public.product (name)')).toEqual([expect.stringContaining('CONCURRENTLY cannot run inside the apply transaction')]);
    expect(await problems('CREATE TABLE public.log (at timestamptz)')).toEqual([expect.stringContaining('needs a PRIMARY KEY')]);
    expect(await problems('CREATE TABLE public.product (id int PRIMARY KEY)')).toEqual([expect.stringContaining('public.product is synced already')]);
    expect(await problems('CREATE TEMP TABLE public.t (id int PRIMARY KEY)')).toEqual([expect.stringContaining('TEMPORARY TABLE is not synced')]);
    expect(await problems('DROP INDEX product_old')).toEqual([expect.stringContaining("needs the index's schema")]);
    expect(await problems('ALTER TABLE public.product DROP COLUMN x CASCADE')).toEqual([expect.stringContaining('CASCADE is not supported')]);
  });

  it('refuses code and session or transaction control, whatever it is wrapped in', async () => {
    for (const sql of [
      "DO $$ BEGIN EXECUTE 'DROP TABLE public.product'; END $$",
      'CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$',
      'BEGIN',
      'COMMIT',
      "SET search_path = 'evil'",
      'SELECT pg_terminate_backend(1)',
      'GRANT ALL ON public.product TO PUBLIC',
      "COPY public.product FROM PROGRAM 'id'",
    ]) {
      expect(await problems(sql), sql).toHaveLength(1);
    }
    // One bad statement refuses the whole change; every problem is named.
    const all = await problems('ALTER TABLE public.product ADD COLUMN a int; DROP TABLE public.customer; ALTER TABLE public.x ADD COLUMN b int');
    expect(all).toEqual([expect.stringMatching(/^statement 2 /), expect.stringMatching(/^statement 3 /)]);
  });

  it('says where a syntax error is, and refuses an empty change', async () => {
    expect(await problems('ALTER TABLE public.product ADD COLUMN')).toEqual([expect.stringMatching(/^syntax error at character \d+: syntax error at end of input/)]);
    expect(await problems(' ; -- nothing')).toEqual(['the schema change holds no statement']);
  });
});
