/**
 * The triage relay's bookkeeping: an answer reaches the API call that asked, and only from the
 * branch that was asked. The connections here are stand-ins holding only `send` (the relay uses
 * nothing else of them); test/e2e/triage.test.ts runs the whole path over real sockets and two
 * hub instances.
 */
import { describe, expect, it } from 'vitest';
import type { HubToAgent, TriageRequest, TriageResult } from '../protocol/index.js';
import { MemoryEngine } from './engine/memory.js';
import { createLogger } from './logger.js';
import { ConnectionRegistry, type HubConnection } from './registry.js';
import { TriageError, TriageRelay } from './triage.js';

function connection(tenantId: string, branchId: string, sent: HubToAgent[]): HubConnection {
  return { tenantId, branchId, gen: 1, send: (f: HubToAgent) => (sent.push(f), true) } as unknown as HubConnection;
}

function setup() {
  const registry = new ConnectionRegistry<HubConnection>();
  const relay = new TriageRelay('i1', new MemoryEngine('i1'), registry, createLogger('silent'), 200);
  return { registry, relay };
}

const answer = (req: TriageRequest, message: string): TriageResult => ({ type: 'triage.result', id: req.id, status: 'ok', message });

describe('TriageRelay', () => {
  it('answers the call with the asked branch’s result', async () => {
    const { registry, relay } = setup();
    const sent: HubToAgent[] = [];
    registry.add(connection('acme', 'b', sent));
    const pending = relay.ask('acme', 'b', { kind: 'dead-letters', action: 'list' });
    await new Promise((r) => setImmediate(r));
    const req = sent[0] as TriageRequest;
    expect(req).toMatchObject({ type: 'triage.request', kind: 'dead-letters', action: 'list' });
    relay.onResult('acme', 'b', answer(req, 'from b'));
    expect((await pending).message).toBe('from b');
  });

  it('takes no answer from another branch or tenant, even with the right id', async () => {
    const { registry, relay } = setup();
    const sent: HubToAgent[] = [];
    registry.add(connection('acme', 'b', sent));
    const pending = relay.ask('acme', 'b', { kind: 'conflicts', action: 'override', target: '7' });
    await new Promise((r) => setImmediate(r));
    const req = sent[0] as TriageRequest;
    relay.onResult('acme', 'c', answer(req, 'forged by c'));
    relay.onResult('other', 'b', answer(req, 'forged by another tenant'));
    await expect(pending).rejects.toThrow(TriageError);
    await expect(pending).rejects.toMatchObject({ reason: 'timeout' });
  });

  it('says when the branch is connected nowhere', async () => {
    const { relay } = setup();
    await expect(relay.ask('acme', 'b', { kind: 'dead-letters', action: 'list' })).rejects.toMatchObject({ reason: 'not_connected' });
  });
});
