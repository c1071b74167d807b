import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeHlc, encodeHlc, msgpackCodec, parseAgentFrame, type AgentToHub, type Change } from '../protocol/index.js';
import { fcParams } from '../protocol/testing/fc.js';
import { agentToHubArb, changeArb, hubToAgentArb, syncBatchArb } from '../protocol/testing/arbitraries.js';
import { useTestDatabase } from '../test/support/pg.js';
import type { HubApp } from './app.js';
import { seedBranch, startTestHub, TestAgent, tokenFor, wsUrl } from './testing/harness.js';

const RUNS = { numRuns: 300 };

/** Rewrites every change of a frame so that its origin is not `sender` (a forgery). */
function forged(frame: AgentToHub, sender: string): AgentToHub {
  if (frame.type !== 'sync.batch') return frame;
  return { ...frame, changes: frame.changes.map((c) => (c.origin === sender ? { ...c, origin: `${sender}-x` } : c)) };
}

describe('fuzzing the hub with bad frames', () => {
  const db = useTestDatabase('fuzz');
  let app: HubApp;
  let json: TestAgent;
  let msgpack: TestAgent;
  let good: TestAgent;
  let watcher: TestAgent;

  const storedFrom = async (origin: string) =>
    (await app.ctx.pool.query(`SELECT count(*)::int AS n FROM tenant_fz.log WHERE origin = $1`, [origin])).rows[0].n as number;

  beforeAll(async () => {
    app = await startTestHub(db.url, { maxViolations: 1_000_000, branchRate: undefined, tenantRate: undefined, maxFrameBytes: 256 * 1024 });
    const k = await seedBranch(app.ctx.store, 'fz', 'fuzz');
    const km = await seedBranch(app.ctx.store, 'fz', 'fuzz-m');
    const kg = await seedBranch(app.ctx.store, 'fz', 'good');
    const kw = await seedBranch(app.ctx.store, 'fz', 'watch');
    json = await TestAgent.open(wsUrl(app), await tokenFor(app.url, 'fz', 'fuzz', k));
    msgpack = await TestAgent.open(wsUrl(app), await tokenFor(app.url, 'fz', 'fuzz-m', km), { msgpack: true });
    good = await TestAgent.open(wsUrl(app), await tokenFor(app.url, 'fz', 'good', kg));
    watcher = await TestAgent.open(wsUrl(app), await tokenFor(app.url, 'fz', 'watch', kw));
  });
  afterAll(() => app.stop());

  it('answers random bytes with an error frame, on JSON and MessagePack connections', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 512 }), fc.boolean(), async (bytes, asText) => {
        const buf = Buffer.from(bytes);
        // A text frame must be UTF-8 (RFC 6455); ws fails the connection with 1007 otherwise (tested below).
        const binary = !(asText && isUtf8(buf));
        for (const agent of [json, msgpack]) {
          agent.sendRaw(buf, binary);
          const e = await agent.next('error');
          expect(['malformed_frame', 'invalid_frame', 'unknown_type']).toContain(e.code);
        }
      }),
      fcParams(RUNS),
    );
    expect(json.closedWith).toBeUndefined();
    expect(msgpack.closedWith).toBeUndefined();
  });

  it('closes a connection that sends a text frame that is not UTF-8 with 1007', async () => {
    const k = await seedBranch(app.ctx.store, 'fz', 'utf8');
    const a = await TestAgent.open(wsUrl(app), await tokenFor(app.url, 'fz', 'utf8', k));
    a.sendRaw(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), false);
    expect((await a.closed).code).toBe(1007);
    // Counted as the 1007 ws sent, not as 1006.
    await expect.poll(async () => (await app.ctx.metrics.connectionsClosed.get()).values.find((v) => v.labels.code === '1007')?.value).toBe(1);
  });

  it('answers frames holding msgpackr extensions (records, RegExp, Error, Date, Set, Map, typed arrays, bigints) with malformed_frame', async () => {
    const extended = new Packr({ moreTypes: true, structuredClone: true, useBigIntExtension: true });
    const values = [/a+/gi, new Error('boom'), new Date(0), new Set([1]), new Map([[1, 2]]), new Uint8Array([1]), new Float64Array([1.5]), 2n ** 70n, new Packr({ useRecords: true, bundleStrings: true })];
    await fc.assert(
      fc.asyncProperty(changeArb, fc.constantFrom(...values.keys()), async (change, i) => {
        const frame = { type: 'sync.batch', id: msgpack.id(), batch_id: 'x', changes: [{ ...change, origin: 'fuzz-m', row: { ...change.row, v: values[i] } }] };
        const bytes = values[i] instanceof Packr ? (values[i] as Packr).pack(frame) : extended.pack(frame);
        msgpack.sendRaw(bytes, true);
        expect((await msgpack.next('error')).code).toBe('malformed_frame');
      }),
      fcParams({ numRuns: 60 }),
    );
    expect(msgpack.closedWith).toBeUndefined();
    expect(await storedFrom('fuzz-m')).toBe(0);
  });

  it('answers random JSON values with an error frame', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (value) => {
        json.sendRaw(JSON.stringify(value) ?? 'null', false);
        expect(['invalid_frame', 'unknown_type']).toContain((await json.next('error')).code);
        msgpack.sendRaw(msgpackCodec.encode(value as never) as Buffer, true);
        expect(['invalid_frame', 'unknown_type', 'malformed_frame']).toContain((await msgpack.next('error')).code);
      }),
      fcParams(RUNS),
    );
  });

  it('answers well-formed but wrong frames (hub frames, broken fields, forged origins) with error frames', async () => {
    const wrong = fc.oneof(
      // Frames only the hub may send (`error` goes both ways).
      hubToAgentArb.filter((f) => f.type !== 'error').map((f) => f as unknown as Record<string, unknown>),
      // A valid frame with one field removed or replaced by a wrong type.
      fc
        .tuple(agentToHubArb, fc.nat(), fc.constantFrom<unknown>(null, 42, 'x', [], {}, true))
        .map(([f, i, junk]) => {
          const keys = Object.keys(f).filter((k) => k !== 'type');
          const key = keys[i % keys.length] as string;
          const out: Record<string, unknown> = { ...f };
          if (i % 2 === 0) delete out[key];
          else out[key] = junk;
          return out;
        })
        // A mutation may leave a valid frame (an optional field removed, an id replaced by another
        // valid id); keep only what must be refused: invalid frames, and batches (forged below).
        .map((f) => (f.type === 'sync.batch' && Array.isArray(f.changes) ? forged(f as unknown as AgentToHub, 'fuzz') : f) as Record<string, unknown>)
        .filter((f) => f.type !== 'error' && (f.type === 'sync.batch' || !parseAgentFrame(f).ok)),
      // Valid batches whose changes claim another origin.
      syncBatchArb.map((f) => forged(f, 'fuzz') as unknown as Record<string, unknown>),
    );
    await fc.assert(
      fc.asyncProperty(wrong, async (frame) => {
        const id = json.id();
        const withId = typeof frame.id === 'string' ? { ...frame, id } : frame;
        json.send(withId);
        const e = await json.next('error');
        if (typeof frame.id === 'string') expect(e.ref).toBe(id);
        expect(['invalid_frame', 'unknown_type', 'forged_origin', 'unknown_target', 'forbidden_target', 'token_invalid']).toContain(e.code);
      }),
      fcParams(RUNS),
    );
    expect(await storedFrom('fuzz')).toBe(0);
    expect(await storedFrom('fuzz-m')).toBe(0);
  });

  it('stores and delivers random valid changes exactly as sent', async () => {
    let seq = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(changeArb, { minLength: 1, maxLength: 5 }), async (changes) => {
        // Valid for this hub: stamped no later than its clock (HLCs beyond it get clock_ahead).
        const now = Date.now();
        const inTime = (hlc: string) => {
          const t = decodeHlc(hlc);
          return t.wall <= now ? hlc : encodeHlc({ wall: t.wall % now, logical: t.logical });
        };
        const mine: Change[] = changes.map((c) => ({ ...c, hlc: inTime(c.hlc), origin: 'good', seq: ++seq }));
        const id = good.id();
        good.send({ type: 'sync.batch', id, batch_id: id, changes: mine });
        const ack = await good.next('sync.ack', (a) => a.batch_id === id);
        const d = await watcher.next('sync.deliver', (x) => x.entries[0]?.[0] === ack.offsets[0]);
        expect(d.entries.map((e) => e[1])).toEqual(mine);
        watcher.applied(ack.offsets.at(-1) as number);
      }),
      fcParams({ numRuns: 200 }),
    );
  });

  it('is still healthy, and stored nothing from the fuzzing branches', async () => {
    expect((await fetch(`${app.url}/health`)).status).toBe(200);
    expect(await storedFrom('fuzz')).toBe(0);
    expect(await storedFrom('fuzz-m')).toBe(0);
    const k = await seedBranch(app.ctx.store, 'fz', 'after');
    const after = await TestAgent.open(wsUrl(app), await tokenFor(app.url, 'fz', 'after', k));
    expect((await after.append('after', 2)).offsets).toHaveLength(2);
  });
});
