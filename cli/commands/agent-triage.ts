/**
 * `hub-broker agent dead-letters list|show|retry|discard` and `hub-broker agent conflicts
 * list|show|override`: a person's view of what the apply could not settle alone (agent/triage.ts).
 */
import type pg from 'pg';
import type { ConflictRow, DeadLetterRow } from '../../agent/triage.js';

export const TRIAGE_ACTIONS = {
  'dead-letters': ['list', 'show', 'retry', 'discard'],
  conflicts: ['list', 'show', 'override'],
} as const;
export type TriageCommand = keyof typeof TRIAGE_ACTIONS;

/** `[action, id]` from the words after the command; the rest are settings. */
export function triageWords(command: TriageCommand, rest: readonly string[]): { action: string; id: string | undefined; flags: string[] } | string {
  const [action, maybeId, ...more] = rest;
  const actions: readonly string[] = TRIAGE_ACTIONS[command];
  if (action === undefined || !actions.includes(action)) return `hub-broker agent ${command}: say one of ${actions.join(', ')}`;
  const id = maybeId !== undefined && !maybeId.startsWith('-') ? maybeId : undefined;
  if (action !== 'list' && id === undefined) return `hub-broker agent ${command} ${action}: which one? (an id from ${command} list)`;
  return { action, id, flags: id === undefined ? [maybeId, ...more].filter((x): x is string => x !== undefined) : more };
}

const when = (d: Date | null): string => (d === null ? '-' : d.toISOString());
const key = (pk: Record<string, unknown>): string => Object.entries(pk).map(([k, v]) => `${k}=${String(v)}`).join(', ');

function deadLetterLine(d: DeadLetterRow): string {
  return `${d.id.padStart(6)}  ${when(d.failedAt)}  ${d.table}  ${key(d.change.pk)}  from ${d.origin}#${d.seq}: ${d.reason}`;
}

function conflictLine(c: ConflictRow): string {
  const cols = c.columns ? ` columns ${c.columns.conflicted.join(', ') || '-'} (merged ${c.columns.merged.join(', ') || '-'})` : '';
  return `${c.id.padStart(6)}  ${when(c.detectedAt)}  ${c.table}  ${key(c.pk)}  ${c.winner} won (${c.strategy})${cols}${c.overriddenAt ? `  overridden ${when(c.overriddenAt)}` : ''}`;
}

export async function triage(pool: pg.Pool, command: TriageCommand, action: string, id: string | undefined, json: boolean, out: (s: string) => void): Promise<number> {
  const t = await import('../../agent/triage.js');
  const print = (v: unknown, text: string): void => out(json ? JSON.stringify(v, null, 2) : text);
  if (command === 'dead-letters') {
    switch (action) {
      case 'list': {
        const rows = await t.listDeadLetters(pool);
        print(rows, rows.length === 0 ? 'no dead letters' : rows.map(deadLetterLine).join('\n'));
        return 0;
      }
      case 'show': {
        const d = await t.getDeadLetter(pool, id as string);
        print(d, `${deadLetterLine(d)}\nsqlstate: ${d.sqlstate ?? '-'}\nchange: ${JSON.stringify(d.change, null, 2)}`);
        return 0;
      }
      case 'retry': {
        const r = await t.retryDeadLetter(pool, id as string);
        if (r.result === 'failed') {
          print(r, `dead letter ${id} failed again: ${r.deadLetter.reason} (now dead letter ${r.deadLetter.id})`);
          return 1;
        }
        print(r, r.result === 'applied' ? `dead letter ${id} applied and removed` : `dead letter ${id} was superseded by newer writes; removed, nothing changed`);
        return 0;
      }
      default: {
        const d = await t.discardDeadLetter(pool, id as string);
        print(d, `dead letter ${id} discarded (${d.table} ${key(d.change.pk)})`);
        return 0;
      }
    }
  }
  switch (action) {
    case 'list': {
      const rows = await t.listConflicts(pool);
      print(rows, rows.length === 0 ? 'no conflicts' : rows.map(conflictLine).join('\n'));
      return 0;
    }
    case 'show': {
      const c = await t.getConflict(pool, id as string);
      const row = (r: unknown): string => (r === null ? '(deleted)' : JSON.stringify(r));
      print(c, `${conflictLine(c)}\nlocal:    ${row(c.localRow)}  ${JSON.stringify(c.localVersion)}\nincoming: ${row(c.incomingRow)}  ${JSON.stringify(c.incomingVersion)}`);
      return 0;
    }
    default: {
      const r = await t.overrideConflict(pool, id as string);
      print(r, r.wrote === 'nothing' ? `conflict ${id}: the losing version is what the row holds already; nothing written` : `conflict ${id}: the losing version was written here (${r.wrote}) and goes to every branch`);
      return 0;
    }
  }
}
