/**
 * `hub-broker admin dead-letters …` and `hub-broker admin conflicts …`: a branch's dead letters and
 * conflicts through the hub, which asks the branch's agent (it must be connected; docs/api.md
 * "Dead letters and conflicts"). At the branch itself, `hub-broker agent dead-letters …` does the same.
 */
import { arg, branchPath, enc, type Commands, type Invocation } from './command.js';
import { cell, table, type Json } from './format.js';

const key = (pk: unknown): string =>
  Object.entries((pk ?? {}) as Record<string, unknown>)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(', ');

const path = (inv: Invocation, what: string, id?: string): string => `${branchPath(arg(inv, 0), arg(inv, 1))}/${what}${id === undefined ? '' : `/${enc(id)}`}`;

const message = (body: { message: string }): string => `${body.message}\n`;

function deadLettersTable(body: { result: Json[] }): string {
  if (body.result.length === 0) return '(no dead letters)\n';
  return table(
    ['ID', 'FAILED', 'TABLE', 'KEY', 'FROM', 'REASON'],
    body.result.map((d) => [cell(d.id), cell(d.failedAt), cell(d.table), key(d.pk), `${cell(d.origin)}#${cell(d.seq)}`, cell(d.reason)]),
  );
}

const columnsText = (c: { conflicted: string[]; merged: string[] } | null): string =>
  c ? `conflicted ${c.conflicted.join(', ') || '-'}; merged ${c.merged.join(', ') || '-'}` : '-';

function conflictsTable(body: { result: Json[] }): string {
  if (body.result.length === 0) return '(no conflicts)\n';
  return table(
    ['ID', 'DETECTED', 'TABLE', 'KEY', 'WINNER', 'COLUMNS', 'OVERRIDDEN'],
    body.result.map((c) => [
      cell(c.id),
      cell(c.detectedAt),
      cell(c.table),
      key(c.pk),
      `${cell(c.winner)} (${cell(c.strategy)})`,
      columnsText(c.columns as { conflicted: string[]; merged: string[] } | null),
      c.overriddenAt ? cell(c.overriddenAt) : '-',
    ]),
  );
}

const pretty = (body: { result: unknown }): string => `${JSON.stringify(body.result, null, 2)}\n`;

export const deadLetterCommands: Commands = {
  list: {
    args: ['<tenant>', '<branch>'],
    flags: {},
    summary: "a branch's dead letters: changes its apply could not write (the agent must be connected)",
    run: async (inv) => ({ body: await inv.client.request('GET', path(inv, 'dead-letters')), human: deadLettersTable }),
  },
  show: {
    args: ['<tenant>', '<branch>', '<id>'],
    flags: {},
    summary: 'one dead letter with the change as the hub delivered it',
    run: async (inv) => ({ body: await inv.client.request('GET', path(inv, 'dead-letters', arg(inv, 2))), human: pretty }),
  },
  retry: {
    args: ['<tenant>', '<branch>', '<id>'],
    flags: {},
    summary: 'apply it again once the cause is fixed; it goes when applied (or superseded)',
    run: async (inv) => ({ body: await inv.client.request('POST', `${path(inv, 'dead-letters', arg(inv, 2))}/retry`), human: message }),
  },
  discard: {
    args: ['<tenant>', '<branch>', '<id>'],
    flags: {},
    summary: 'drop it without applying',
    run: async (inv) => ({ body: await inv.client.request('DELETE', path(inv, 'dead-letters', arg(inv, 2))), human: message }),
  },
};

export const conflictCommands: Commands = {
  list: {
    args: ['<tenant>', '<branch>'],
    flags: {},
    summary: "a branch's conflicts, newest first (the agent must be connected)",
    run: async (inv) => ({ body: await inv.client.request('GET', path(inv, 'conflicts')), human: conflictsTable }),
  },
  show: {
    args: ['<tenant>', '<branch>', '<id>'],
    flags: {},
    summary: 'one conflict: both versions and both rows',
    run: async (inv) => ({ body: await inv.client.request('GET', path(inv, 'conflicts', arg(inv, 2))), human: pretty }),
  },
  override: {
    args: ['<tenant>', '<branch>', '<id>'],
    flags: {},
    summary: 'write the version that lost as a new write at that branch; it reaches every branch',
    run: async (inv) => ({ body: await inv.client.request('POST', `${path(inv, 'conflicts', arg(inv, 2))}/override`), human: message }),
  },
};
