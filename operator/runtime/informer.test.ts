import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { KubeError } from '../kube/client.js';
import { TENANTS, type Api, type KubeObject } from '../kube/resources.js';
import { Informer, type InformerEventType } from './informer.js';

const obj = (name: string, rv: string): KubeObject => ({ metadata: { name, namespace: 'ns', resourceVersion: rv } });

type WatchScript = (emit: (ev: unknown) => void) => Promise<void>;

/** An Api whose lists and watches follow a script, recording what the informer asked for. */
function fakeApi(lists: (() => KubeObject[] | Error)[], watches: WatchScript[]) {
  const calls: string[] = [];
  let l = 0;
  let w = 0;
  const api = {
    list: async () => {
      calls.push('list');
      const next = lists[Math.min(l++, lists.length - 1)];
      const result = next ? next() : [];
      if (result instanceof Error) throw result;
      return { metadata: { resourceVersion: String(100 + l) }, items: result };
    },
    client: {
      stream: async (opts: { query: Record<string, unknown>; signal: AbortSignal }, onObject: (o: unknown) => void) => {
        calls.push(`watch@${opts.query.resourceVersion}`);
        const script = watches[w++];
        if (!script) {
          // Nothing more to say: hang until stopped.
          await new Promise<void>((resolve) => opts.signal.addEventListener('abort', () => resolve(), { once: true }));
          throw new KubeError(0, 'Network', 'aborted');
        }
        await script(onObject);
      },
    },
  };
  return { api: api as unknown as Api, calls };
}

function record(inf: Informer<KubeObject>) {
  const seen: string[] = [];
  inf.on((type: InformerEventType, o) => seen.push(`${type}:${o.metadata.name}@${o.metadata.resourceVersion}`));
  return seen;
}

const until = async (cond: () => boolean, ms = 2_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 5));
  }
};

const options = (api: Api, resyncMs = 60_000) => ({
  api,
  type: TENANTS,
  resyncMs,
  backoff: { baseMs: 10, capMs: 40 },
  log: pino({ level: 'silent' }),
});

describe('Informer', () => {
  it('lists, then applies watch events from the list’s resourceVersion', async () => {
    const { api, calls } = fakeApi(
      [() => [obj('a', '1')]],
      [
        async (emit) => {
          emit({ type: 'ADDED', object: obj('b', '2') });
          emit({ type: 'MODIFIED', object: obj('a', '3') });
          emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '4' } } });
          emit({ type: 'DELETED', object: obj('b', '5') });
        },
      ],
    );
    const inf = new Informer<KubeObject>(options(api));
    const seen = record(inf);
    inf.start();
    await until(() => seen.length === 4 && calls.length >= 3);
    expect(seen).toEqual(['add:a@1', 'add:b@2', 'update:a@3', 'delete:b@5']);
    // The watch ended normally: it is opened again from the last version seen (the bookmark's or later).
    expect(calls.slice(0, 3)).toEqual(['list', 'watch@101', 'watch@5']);
    expect(inf.list().map((o) => o.metadata.name)).toEqual(['a']);
    expect(inf.get('ns', 'a')?.apiVersion).toBe('hubbroker.io/v1alpha1');
    await inf.stop();
  });

  it('relists at once on 410 Gone, and reports what changed meanwhile', async () => {
    const { api, calls } = fakeApi(
      [() => [obj('a', '1'), obj('b', '1')], () => [obj('a', '1'), obj('c', '7')]],
      [
        async (emit) => {
          emit({ type: 'ERROR', object: { kind: 'Status', code: 410, message: 'too old resource version' } });
        },
      ],
    );
    const restarts: string[] = [];
    const inf = new Informer<KubeObject>({ ...options(api), onRestart: (c) => restarts.push(c) });
    const seen = record(inf);
    inf.start();
    await until(() => seen.length === 5);
    expect(seen).toEqual(['add:a@1', 'add:b@1', 'resync:a@1', 'add:c@7', 'delete:b@1']);
    expect(calls.slice(0, 3)).toEqual(['list', 'watch@101', 'list']);
    expect(restarts).toEqual(['gone']);
    await inf.stop();
  });

  it('keeps trying with backoff when the API server fails, and never gives up', async () => {
    const down = new KubeError(0, 'Network', 'connect ECONNREFUSED');
    const { api, calls } = fakeApi([() => down, () => down, () => down, () => [obj('a', '1')]], []);
    const restarts: string[] = [];
    const inf = new Informer<KubeObject>({ ...options(api), onRestart: (c) => restarts.push(c) });
    const seen = record(inf);
    inf.start();
    expect(inf.hasSynced()).toBe(false);
    await until(() => seen.length === 1);
    expect(inf.hasSynced()).toBe(true);
    expect(restarts).toEqual(['error', 'error', 'error']);
    expect(calls.filter((c) => c === 'list')).toHaveLength(4);
    expect(inf.error).toBeUndefined();
    await inf.stop();
  });

  it('restarts after a watch error with a relist', async () => {
    const { api, calls } = fakeApi(
      [() => [obj('a', '1')], () => [obj('a', '2')]],
      [
        async () => {
          throw new KubeError(0, 'Network', 'connection reset');
        },
      ],
    );
    const inf = new Informer<KubeObject>(options(api));
    const seen = record(inf);
    inf.start();
    await until(() => seen.length === 2);
    expect(seen).toEqual(['add:a@1', 'update:a@2']);
    expect(calls.slice(0, 3)).toEqual(['list', 'watch@101', 'list']);
    await inf.stop();
  });

  it('relists periodically and replays unchanged objects as resync events', async () => {
    const { api, calls } = fakeApi(
      [() => [obj('a', '1')]],
      [
        async () => {
          await new Promise((r) => setTimeout(r, 30));
        },
      ],
    );
    const inf = new Informer<KubeObject>(options(api, 20));
    const seen = record(inf);
    inf.start();
    await until(() => seen.includes('resync:a@1'));
    expect(calls.filter((c) => c === 'list').length).toBeGreaterThanOrEqual(2);
    await inf.stop();
  });
});
