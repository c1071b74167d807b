import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../test/support/pg.js';
import type { HubApp } from '../hub/app.js';
import { startTestHub } from '../hub/testing/harness.js';
import { help, run } from './commands/admin.js';
import { parseArgs, repeatable, SWITCH, value } from './commands/admin/args.js';
import { routingChange, routingPatch } from './commands/admin/branches.js';
import { routesBody } from './commands/admin/routes.js';

const ADMIN = 'cli-routing-token-5a1f9e2c7b';

interface Result {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

describe('hub-broker admin: groups, attributes and routes', () => {
  const db = useTestDatabase('admin-cli-routing');
  let app: HubApp;
  const dir = mkdtempSync(join(tmpdir(), 'hbroutes-'));
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };

  const admin = async (...args: string[]): Promise<Result> => {
    let out = '';
    let err = '';
    const code = await run(args, { out: (t) => (out += t), err: (t) => (err += t), env: { HUB_URL: app.url, HUB_ADMIN_TOKEN: ADMIN } });
    return { code, out, err };
  };
  /** A branch's routing fields, to compare whole. */
  const routing = async (...args: string[]) => {
    const b = await json(...args);
    return { groups: b.groups, attributes: b.attributes };
  };
  const json = async (...args: string[]) => {
    const r = await admin(...args, '--json');
    expect(r.code, r.err).toBe(0);
    return JSON.parse(r.out);
  };

  beforeAll(async () => {
    app = await startTestHub(db.url, { adminToken: ADMIN });
    expect((await admin('tenants', 'create', 'acme')).code).toBe(0);
  });
  afterAll(() => app.stop());

  describe('branches', () => {
    it('creates a branch in groups and with attributes, and shows them', async () => {
      const r = await admin('branches', 'create', 'acme', 'store-1', '--group', 'stores', '--group=eu', '--attr', 'store_id=17', '--attr', 'tier=gold', '--attr', 'region=eu-west');
      expect(r).toMatchObject({ code: 0, err: '' });
      expect(r.out).toContain('created branch acme/store-1 (active)');
      expect(r.out).toMatch(/^groups: +eu, stores$/m);
      // By name, whatever order the hub keeps them in.
      expect(r.out).toMatch(/^attributes: +region=eu-west, store_id=17, tier=gold$/m);
      expect(r.out).toContain('shown only this once');

      expect(await routing('branches', 'create', 'acme', 'hq', '--group', 'hq')).toEqual({ groups: ['hq'], attributes: {} });

      const show = await admin('branches', 'show', 'acme', 'store-1');
      expect(show.out).toMatch(/^groups: +eu, stores$/m);
      expect(show.out).toMatch(/^attributes: +region=eu-west, store_id=17, tier=gold$/m);
    });

    it('lists groups and attributes, in the table and in the JSON', async () => {
      const table = await admin('branches', 'list', 'acme');
      expect(table.out.split('\n')[0]).toMatch(/^BRANCH +STATUS +GROUPS +ATTRIBUTES +ONLINE +INSTANCE +LAST SEEN +CURSOR +LAG$/);
      expect(table.out).toMatch(/^hq +active +hq +- +no /m);
      expect(table.out).toMatch(/^store-1 +active +eu, stores +region=eu-west, store_id=17, tier=gold +no /m);
      const list = await json('branches', 'list', 'acme');
      expect(list.branches.map((b: { id: string; groups: string[]; attributes: object }) => [b.id, b.groups, b.attributes])).toEqual([
        ['hq', ['hq'], {}],
        ['store-1', ['eu', 'stores'], { region: 'eu-west', store_id: '17', tier: 'gold' }],
      ]);
    });

    it('update adds groups and sets attributes, keeping the others; --clear-… starts from none', async () => {
      expect(await routing('branches', 'update', 'acme', 'store-1', '--group', 'outlets', '--attr', 'region=eu-north')).toEqual({
        groups: ['eu', 'outlets', 'stores'],
        attributes: { region: 'eu-north', store_id: '17', tier: 'gold' },
      });
      expect(await routing('branches', 'update', 'acme', 'store-1', '--clear-groups', '--group', 'stores')).toEqual({
        groups: ['stores'],
        attributes: { region: 'eu-north', store_id: '17', tier: 'gold' },
      });
      expect(await routing('branches', 'update', 'acme', 'hq', '--clear-attrs', '--attr', 'region=eu-west')).toEqual({ groups: ['hq'], attributes: { region: 'eu-west' } });
      expect(await routing('branches', 'update', 'acme', 'hq', '--clear-attrs')).toEqual({ groups: ['hq'], attributes: {} });

      const human = await admin('branches', 'update', 'acme', 'hq', '--attr', 'region=eu-west');
      expect(human.out).toContain('updated branch acme/hq');
      expect(human.out).toMatch(/^attributes: +region=eu-west$/m);
    });

    it('passes on the hub’s refusal of a bad group or attribute name (exit 1)', async () => {
      const group = await admin('branches', 'update', 'acme', 'hq', '--group', 'Head_Office');
      expect(group).toEqual({ code: 1, out: '', err: 'hub-broker admin: groups: group "Head_Office" must be a DNS-1123 label (HTTP 400 invalid_request)\n' });
      const attr = await admin('branches', 'create', 'acme', 'store-2', '--attr', '9lives=yes');
      expect(attr.code).toBe(1);
      expect(attr.err).toContain('attributes: name "9lives" must start with a letter');
      expect((await admin('branches', 'update', 'acme', 'nope', '--clear-groups')).err).toContain('branch acme/nope does not exist (HTTP 404 not_found)');
    });
  });

  describe('table merge declarations', () => {
    it('sets the tables a tenant merges by column in the AGENT_TABLES form, shows and clears them', async () => {
      const r = await admin('tenants', 'update', 'acme', '--merge-tables', 'public.customer:column,public.product:additive=stock/reserved');
      expect(r, r.err).toMatchObject({ code: 0 });
      expect(r.out).toMatch(/^merge: +public\.customer by column; public\.product by column \(counters reserved, stock\)$/m);
      expect((await json('tenants', 'show', 'acme')).tables).toEqual([
        { name: 'public.customer', merge: 'column', additive: [] },
        { name: 'public.product', merge: 'column', additive: ['reserved', 'stock'] },
      ]);
      const bad = await admin('tenants', 'update', 'acme', '--merge-tables', 'public.product:cells');
      expect(bad.code).not.toBe(0);
      expect(bad.err).toContain('"public.product:cells" is not schema.table[:row|column][:additive=col/col]');
      expect((await admin('tenants', 'update', 'acme', '--merge-tables', 'none')).out).toMatch(/^merge: +all by row$/m);
    });
  });

  describe('routes', () => {
    const ROUTES_YAML = [
      '- name: orders-home',
      '  tables: [public.orders]',
      '  from: [stores]',
      '  to: [hq]',
      '  filter: region = branch.region',
      '- name: catalog',
      '  tables: ["catalog.*"]',
      '  from: [hq]',
      "  to: ['*']",
      '',
    ].join('\n');
    const ORDERS = { name: 'orders-home', tables: ['public.orders'], from: ['stores'], to: ['hq'], filter: 'region = branch.region' };
    const CATALOG = { name: 'catalog', tables: ['catalog.*'], from: ['hq'], to: ['*'] };

    it('lists none at first: everything goes to everyone', async () => {
      expect((await admin('routes', 'list', 'acme')).out).toBe('(none: every change goes to every other branch)\n');
      expect(await json('routes', 'list', 'acme')).toEqual({ routes: [] });
    });

    it('sets routes from a YAML list, and lists them as a table, as JSON and in the tenant', async () => {
      const set = await admin('routes', 'set', 'acme', '--file', file('routes.yaml', ROUTES_YAML));
      expect(set).toMatchObject({ code: 0, err: '' });
      expect(set.out.split('\n')[0]).toBe('saved 2 routes of tenant acme');
      expect(set.out).toMatch(/^ROUTE +TABLES +FROM +TO +FILTER$/m);
      expect(set.out).toMatch(/^orders-home +public\.orders +stores +hq +region = branch\.region$/m);
      expect(set.out).toMatch(/^catalog +catalog\.\* +hq +\* +-$/m);

      expect(await json('routes', 'list', 'acme')).toEqual({ routes: [ORDERS, CATALOG] });
      expect((await admin('routes', 'list', 'acme')).out).toMatch(/^orders-home +public\.orders/m);
      expect((await admin('tenants', 'show', 'acme')).out).toMatch(/^routes: +orders-home, catalog$/m);
    });

    it('sets routes from JSON in the {routes: [...]} form, replacing the list', async () => {
      const r = await json('routes', 'set', 'acme', '--file', file('routes.json', JSON.stringify({ routes: [CATALOG] })));
      expect(r).toEqual({ routes: [CATALOG] });
      expect(await json('routes', 'list', 'acme')).toEqual({ routes: [CATALOG] });
    });

    it('passes on the hub’s refusal, naming the route and the fault, and keeps the saved list', async () => {
      const typo = await admin('routes', 'set', 'acme', '--file', file('typo.yaml', ROUTES_YAML.replace('branch.region', 'branch.regoin')));
      expect(typo).toEqual({ code: 1, out: '', err: 'hub-broker admin: route "orders-home": filter: no branch of this tenant has attribute "regoin" (HTTP 400 invalid_request)\n' });
      const malformed = await admin('routes', 'set', 'acme', '--file', file('bad.yaml', ROUTES_YAML.replace('region = branch.region', '"region = = branch.region"')));
      expect(malformed.code).toBe(1);
      expect(malformed.err).toMatch(/route "orders-home": filter: expected a value .* at 9, found "="/);
      const unknown = await admin('routes', 'set', 'acme', '--file', file('extra.json', JSON.stringify({ routes: [CATALOG], colour: 'red' })));
      expect(unknown.err).toContain('unknown field "colour"');
      expect(await json('routes', 'list', 'acme')).toEqual({ routes: [CATALOG] });
    });

    it('clears the routes', async () => {
      expect((await admin('routes', 'clear', 'acme')).out).toBe('cleared the routes of tenant acme: every change goes to every other branch\n');
      expect(await json('routes', 'list', 'acme')).toEqual({ routes: [] });
      expect((await admin('tenants', 'show', 'acme')).out).toMatch(/^routes: +none/m);
    });
  });

  it('refuses usage errors with one line and exit 2', async () => {
    const cases: [string[], string][] = [
      [['routes', 'set', 'acme'], 'routes set needs --file <file>'],
      [['routes', 'set', 'acme', '--file', join(dir, 'missing.yaml')], 'cannot read --file'],
      [['routes', 'set', 'acme', '--file', file('broken.yaml', '- name: [a\n')], 'cannot parse'],
      [['routes', 'set', 'acme', '--file', file('scalar.yaml', 'just text\n')], 'must hold a list of routes'],
      [['routes', 'list'], 'routes list needs <tenant>'],
      [['branches', 'update', 'acme', 'hq'], 'branches update needs at least one of --group, --attr, --clear-groups, --clear-attrs'],
      [['branches', 'update', 'acme', 'hq', '--attr', 'region'], '--attr must be KEY=VALUE'],
      [['branches', 'update', 'acme', 'hq', '--attr', 'a=1', '--attr', 'a=2'], '--attr a is given more than once'],
      [['branches', 'list', 'acme', '--group', 'x'], 'branches list does not take --group'],
      [['branches', 'create', 'acme', 'x', '--clear-groups'], 'branches create does not take --clear-groups'],
      [['branches', 'rotate-key', 'acme', 'hq', '--grace-seconds', '1', '--grace-seconds', '2'], '--grace-seconds is given more than once'],
    ];
    for (const [args, message] of cases) {
      const r = await admin(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.out).toBe('');
      expect(r.err).toContain(message);
      expect(r.err.trimEnd().split('\n')).toHaveLength(1);
    }
  });

  it('documents the new commands and options in --help', () => {
    const text = help();
    for (const s of [
      'branches create <tenant> <branch> [--suspended] [--group <group>]... [--attr <key=value>]...',
      'branches update <tenant> <branch> [--group <group>]... [--attr <key=value>]... [--clear-groups] [--clear-attrs]',
      'routes list <tenant>',
      'routes set <tenant> --file <file>',
      'routes clear <tenant>',
    ]) {
      expect(text).toContain(s);
    }
  });
});

describe('hub-broker admin, decided without a hub', () => {
  it('collects repeatable flags in order, and refuses other flags given twice', () => {
    const spec = { group: repeatable('<group>'), grace: value('<s>'), json: SWITCH };
    const { positionals, flags } = parseArgs(['a', '--group', 'x', '--group=y', 'b', '--json'], spec);
    expect(positionals).toEqual(['a', 'b']);
    expect(flags.values('group')).toEqual(['x', 'y']);
    expect(flags.has('json')).toBe(true);
    expect(flags.values('grace')).toEqual([]);
    expect(() => parseArgs(['--grace', '1', '--grace=2'], spec)).toThrow('--grace is given more than once');
    expect(() => parseArgs(['--group'], spec)).toThrow('--group needs a value');
  });

  it('builds the PATCH body: adds to what the branch has unless cleared, and leaves untouched fields out', () => {
    const current = { groups: ['eu', 'stores'], attributes: { region: 'eu-west', tier: 'gold' } };
    const change = (...args: string[]) => routingChange(parseArgs(args, { group: repeatable('<g>'), attr: repeatable('<kv>'), 'clear-groups': SWITCH, 'clear-attrs': SWITCH }).flags);
    expect(routingPatch(change('--group', 'outlets'), current)).toEqual({ groups: ['eu', 'stores', 'outlets'] });
    expect(routingPatch(change('--group', 'eu'), current)).toEqual({ groups: ['eu', 'stores'] });
    expect(routingPatch(change('--attr', 'region=eu-north', '--attr', 'note=a=b'), current)).toEqual({ attributes: { region: 'eu-north', tier: 'gold', note: 'a=b' } });
    expect(routingPatch(change('--clear-groups', '--clear-attrs'), current)).toEqual({ groups: [], attributes: {} });
    expect(routingPatch(change('--clear-attrs', '--attr', 'x='), current)).toEqual({ attributes: { x: '' } });
  });

  it('reads a routes file as a list or as {routes}, YAML or JSON', () => {
    expect(routesBody('- name: a\n  tables: [s.t]\n', 'f')).toEqual({ routes: [{ name: 'a', tables: ['s.t'] }] });
    expect(routesBody('{"routes": []}', 'f')).toEqual({ routes: [] });
    expect(routesBody('[]', 'f')).toEqual({ routes: [] });
    expect(() => routesBody('', 'f')).toThrow('f must hold a list of routes');
    expect(() => routesBody('name: a\n', 'f')).toThrow('f must hold a list of routes');
  });
});
