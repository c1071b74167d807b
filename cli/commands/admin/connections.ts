/** `hub-broker admin connections`: the online branches of every hub instance. */
import { value } from './args.js';
import { enc, type Commands } from './command.js';
import { cell, table, time, type Json } from './format.js';

export const connectionCommands: Commands = {
  list: {
    args: [],
    flags: { tenant: value('<tenant>') },
    summary: 'list online branches on every hub instance (details only for the instance that answers)',
    run: async ({ client, flags }) => {
      const tenant = flags.value('tenant');
      return {
        body: await client.request('GET', `/admin/connections${tenant !== undefined ? `?tenant=${enc(tenant)}` : ''}`),
        human: (body: { answeredBy: string; connections: Json[] }) =>
          table(
            ['TENANT', 'BRANCH', 'INSTANCE', 'CONNECTED', 'MODE', 'APPLIED', 'BUFFERED'],
            body.connections.map((c) => {
              const d = c.details as Json | null;
              return [cell(c.tenantId), cell(c.branchId), cell(c.instance), time(c.connectedAt), cell(d?.mode), cell(d?.applied), cell(d?.bufferedBytes)];
            }),
          ) + `answered by ${body.answeredBy}; MODE, APPLIED and BUFFERED are known for its own connections only\n`,
      };
    },
  },
};
