import type pg from 'pg';

/** PostgreSQL channel on which the store announces status changes to every hub instance. */
export const CONTROL_CHANNEL = 'hub_broker_control';

export type ControlEvent =
  | { readonly kind: 'tenant'; readonly tenant: string; readonly op: 'updated' | 'deleted' }
  | { readonly kind: 'branch'; readonly tenant: string; readonly branch: string; readonly op: 'updated' | 'deleted' | 'key' };

/** Sent inside the caller's transaction, so listeners hear of committed changes only. */
export async function notifyControl(q: Pick<pg.ClientBase, 'query'>, event: ControlEvent): Promise<void> {
  await q.query('SELECT pg_notify($1, $2)', [CONTROL_CHANNEL, JSON.stringify(event)]);
}

export function parseControlEvent(payload: string | undefined): ControlEvent | undefined {
  if (!payload) return undefined;
  try {
    const e = JSON.parse(payload) as Partial<ControlEvent>;
    if ((e.kind === 'tenant' || e.kind === 'branch') && typeof e.tenant === 'string') return e as ControlEvent;
  } catch {
    // ignore: not ours
  }
  return undefined;
}
