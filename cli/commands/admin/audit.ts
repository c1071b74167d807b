/** `hub-broker admin audit`: the audit log, newest first. */
import { value } from './args.js';
import type { Commands } from './command.js';
import { cell, table, time, type Json } from './format.js';

export const auditCommands: Commands = {
  list: {
    args: [],
    flags: { tenant: value('<tenant>'), event: value('<event>'), limit: value('<n>') },
    summary: 'show the audit log, newest first (--tenant, --event, --limit 1-1000, default 100)',
    run: async ({ client, flags }) => {
      const q = new URLSearchParams();
      for (const name of ['tenant', 'event', 'limit']) {
        const v = flags.value(name);
        if (v !== undefined) q.set(name, v);
      }
      const qs = q.toString();
      return {
        body: await client.request('GET', `/admin/audit${qs ? `?${qs}` : ''}`),
        human: (body: { entries: Json[] }) =>
          table(
            ['AT', 'TENANT', 'BRANCH', 'EVENT', 'SOURCE', 'DETAIL'],
            body.entries.map((e) => {
              const detail = JSON.stringify(e.detail ?? {});
              return [time(e.at), cell(e.tenantId), cell(e.branchId), cell(e.event), cell(e.source), detail === '{}' ? '' : detail.length > 80 ? `${detail.slice(0, 77)}...` : detail];
            }),
          ),
      };
    },
  },
};
