import { describe, expect, it } from 'vitest';
import { modifiedMessage, planSchemaChanges } from './schema-changes.js';

const add = { name: 'add-points', sql: 'ALTER TABLE public.customer ADD COLUMN points int NOT NULL DEFAULT 0;' };
const index = { name: 'points-index', sql: 'CREATE INDEX customer_points ON public.customer (points);' };

describe('planSchemaChanges', () => {
  it('publishes every change of a fresh tenant, in the order of the spec', () => {
    expect(planSchemaChanges([add, index], [])).toEqual({ kind: 'publish', changes: [add, index], latest: 0 });
  });

  it('publishes only what is not published yet, matched by name', () => {
    const published = [{ version: 1, name: 'add-points', sql: add.sql }];
    expect(planSchemaChanges([add, index], published)).toEqual({ kind: 'publish', changes: [index], latest: 1 });
    expect(planSchemaChanges([add], published)).toEqual({ kind: 'publish', changes: [], latest: 1 });
  });

  it('leaves alone changes published without a name or no longer in the spec', () => {
    const published = [
      { version: 1, name: null, sql: 'CREATE INDEX x ON public.a (b);' },
      { version: 2, name: 'old', sql: 'CREATE INDEX y ON public.a (c);' },
    ];
    expect(planSchemaChanges([add], published)).toEqual({ kind: 'publish', changes: [add], latest: 2 });
  });

  it('publishes nothing while a published change has other SQL in the spec', () => {
    const published = [{ version: 3, name: 'add-points', sql: add.sql }];
    const plan = planSchemaChanges([{ ...add, sql: `${add.sql}\n-- edited` }, index], published);
    expect(plan).toEqual({ kind: 'modified', changes: [{ name: 'add-points', version: 3 }], latest: 3 });
    expect(modifiedMessage(plan.changes as { name: string; version: number }[])).toContain('"add-points" (version 3) was published with other SQL');
  });
});
