/**
 * `hub-broker admin routes …`: show, replace (from a YAML or JSON file) and clear a tenant's
 * routes. The hub checks them and names the route at fault; this side only reads the file.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { UsageError, value } from './args.js';
import { arg, tenantPath, type Commands } from './command.js';
import { cell, names, table, type Json } from './format.js';

/**
 * The body of `PUT …/routes` from a file's text: a list of routes, or an object with `routes`
 * (sent as it is, so the hub refuses any other field). YAML includes JSON, so one parser reads both.
 */
export function routesBody(text: string, file: string): Json {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new UsageError(`cannot parse ${file}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (Array.isArray(doc)) return { routes: doc };
  if (typeof doc === 'object' && doc !== null && 'routes' in doc) return doc as Json;
  throw new UsageError(`${file} must hold a list of routes, or an object with "routes"`);
}

function routesTable(body: { routes: Json[] }): string {
  if (body.routes.length === 0) return '(none: every change goes to every other branch)\n';
  return table(
    ['ROUTE', 'TABLES', 'FROM', 'TO', 'FILTER'],
    body.routes.map((r) => [cell(r.name), names(r.tables), names(r.from), names(r.to), r.filter === undefined ? '-' : cell(r.filter)]),
  );
}

export const routeCommands: Commands = {
  list: {
    args: ['<tenant>'],
    flags: {},
    summary: "show a tenant's routes: which groups send which tables to which groups, and row filters",
    run: async (inv) => ({ body: await inv.client.request('GET', `${tenantPath(arg(inv, 0))}/routes`), human: routesTable }),
  },
  set: {
    args: ['<tenant>'],
    flags: { file: value('<file>', { required: true }) },
    summary: "replace a tenant's routes with those in --file (YAML or JSON: a list of routes, or {routes: [...]}; see docs/api.md)",
    run: async (inv) => {
      const file = inv.flags.value('file') as string;
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new UsageError(`cannot read --file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      return {
        body: await inv.client.request('PUT', `${tenantPath(arg(inv, 0))}/routes`, routesBody(text, file)),
        human: (body: { routes: Json[] }) => `saved ${body.routes.length} route${body.routes.length === 1 ? '' : 's'} of tenant ${arg(inv, 0)}\n${routesTable(body)}`,
      };
    },
  },
  clear: {
    args: ['<tenant>'],
    flags: {},
    summary: "remove a tenant's routes: every change goes to every other branch again",
    run: async (inv) => ({
      body: await inv.client.request('DELETE', `${tenantPath(arg(inv, 0))}/routes`),
      human: () => `cleared the routes of tenant ${arg(inv, 0)}: every change goes to every other branch\n`,
    }),
  },
};
