/**
 * The engine for several hub instances, on one Redis. Keys (after `REDIS_PREFIX`):
 *   loc:<tenant>            hash branch → "server|gen|at"   where each online branch is connected
 *   gen:<tenant>:<branch>   counter                           claim generations
 *   alive:<instance>        key with a TTL                    instance liveness (its loc entries count only while it exists)
 *   rl:<scope>:<key>        hash {tokens, at}                 token buckets
 *   channel srv:<instance>                                    messages for one instance
 * Claims, releases and buckets are Lua scripts, so they are atomic across instances; a claim
 * always gets a higher generation than the entry it replaces, and a release or the previous
 * holder can never remove or overwrite a newer entry. Redis holds nothing that cannot be
 * rebuilt: the PostgreSQL log is the truth, pub/sub only wakes connections up.
 */
import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../logger.js';
import type { BucketRequest, TakeResult } from '../rate-limit.js';
import type { Engine, EngineHealth, HeldClaim, InstanceMessage, Location, RedisTarget } from './types.js';

const CLAIM = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gen = redis.call('INCR', KEYS[2])
local prev = redis.call('HGET', KEYS[1], ARGV[1])
local pserver, pgen, pat = '', 0, 0
if prev then
  local s, g, a = string.match(prev, '^(.*)|(%d+)|(%d+)$')
  if s then
    pserver = s; pgen = tonumber(g); pat = tonumber(a)
    if pgen >= gen then
      gen = pgen + 1
      redis.call('SET', KEYS[2], gen)
    end
  end
end
redis.call('PEXPIRE', KEYS[2], 604800000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. string.format('%d', gen) .. '|' .. string.format('%.0f', now))
redis.call('PEXPIRE', KEYS[1], 604800000)
return {gen, pserver, pgen, string.format('%.0f', pat)}
`;

const RELEASE = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local s, g = string.match(v, '^(.*)|(%d+)|%d+$')
if s == ARGV[2] and g == ARGV[3] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
`;

const LOCATE = `
local all = redis.call('HGETALL', KEYS[1])
local out = {}
local alive = {}
for i = 1, #all, 2 do
  local v = all[i + 1]
  local s = string.match(v, '^(.*)|%d+|%d+$')
  if s then
    if alive[s] == nil then alive[s] = redis.call('EXISTS', ARGV[1] .. s) == 1 end
    if alive[s] then
      table.insert(out, all[i])
      table.insert(out, v)
    end
  end
end
return out
`;

/**
 * Registers a connection this instance holds again, with its generation, when its entry is gone
 * (Redis restarted, or lost the key); raises the generation counter to at least it, so a later
 * claim still wins. Returns 1 when the entry is there, 2 when written back, 0 when another entry
 * (a newer connection) took its place.
 */
const REASSERT = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
local mine = ARGV[2] .. '|' .. ARGV[3] .. '|'
if v then
  if string.sub(v, 1, string.len(mine)) == mine then return 1 end
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], mine .. string.format('%.0f', now))
redis.call('PEXPIRE', KEYS[1], 604800000)
local g = tonumber(redis.call('GET', KEYS[2]) or '0')
if g < tonumber(ARGV[3]) then redis.call('SET', KEYS[2], ARGV[3]) end
redis.call('PEXPIRE', KEYS[2], 604800000)
return 2
`;

/** Mirrors `takeAll` in rate-limit.ts: all buckets or none. */
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local cost = tonumber(ARGV[1])
local tokens = {}
for i, k in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local v = redis.call('HMGET', k, 'tokens', 'at')
  local tk = tonumber(v[1])
  local at = tonumber(v[2])
  if tk == nil or at == nil then
    tk = burst
    at = now
  end
  local elapsed = now - at
  if elapsed < 0 then elapsed = 0 end
  tk = math.min(burst, tk + elapsed * rate / 1000)
  if tk < cost then
    return {0, i - 1, math.ceil((cost - tk) * 1000 / rate)}
  end
  tokens[i] = tk
end
for i, k in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  redis.call('HSET', k, 'tokens', tostring(tokens[i] - cost), 'at', string.format('%.3f', now))
  redis.call('PEXPIRE', k, math.ceil(burst * 1000 / rate) + 1000)
end
return {1, 0, 0}
`;

/** Entries are carried in a notification only below this size; receivers read the log otherwise. */
const MAX_CARRY_BYTES = 256 * 1024;

export interface RedisEngineOptions {
  readonly target: RedisTarget;
  readonly prefix: string;
  readonly instanceId: string;
  readonly probeIntervalMs: number;
  readonly logger: Logger;
  /** How long an instance's locations stay valid without a liveness refresh. */
  readonly aliveTtlMs?: number;
}

type Cmd = Redis & {
  hbClaim(loc: string, gen: string, branch: string, value: string): Promise<[number, string, number, string]>;
  hbRelease(loc: string, branch: string, server: string, gen: string): Promise<number>;
  hbLocate(loc: string, alivePrefix: string): Promise<string[]>;
  hbReassert(loc: string, genKey: string, branch: string, server: string, gen: string): Promise<number>;
  hbTake(...args: (string | number)[]): Promise<[number, number, number]>;
};

/**
 * A client for the target. Through Sentinel, ioredis asks the sentinels for the primary on
 * every (re)connect, and `failoverDetector` drops the connection as soon as they announce a new
 * one, instead of waiting for the old primary's socket to time out.
 */
export function connectRedis(target: RedisTarget, options: RedisOptions): Redis {
  if (target.kind === 'url') return new Redis(target.url, options);
  return new Redis({
    ...options,
    sentinels: target.sentinels.map((s) => ({ host: s.host, port: s.port })),
    name: target.name,
    ...(target.password === undefined ? {} : { password: target.password }),
    ...(target.sentinelPassword === undefined ? {} : { sentinelPassword: target.sentinelPassword }),
    failoverDetector: true,
  });
}

export class RedisEngine implements Engine {
  readonly kind = 'redis' as const;
  readonly instanceId: string;
  private readonly cmd: Cmd;
  private readonly sub: Redis;
  private readonly p: string;
  private readonly logger: Logger;
  private readonly aliveTtlMs: number;
  private onMessage: (m: InstanceMessage) => void = () => undefined;
  private held: () => Iterable<HeldClaim> = () => [];
  private timers: NodeJS.Timeout[] = [];
  private probe: { nonce: string; sentAt: number } | undefined;
  private lastProbeBack = 0;
  private lastErrorLog = 0;

  constructor(private readonly options: RedisEngineOptions) {
    this.instanceId = options.instanceId;
    this.p = options.prefix;
    this.logger = options.logger;
    this.aliveTtlMs = options.aliveTtlMs ?? 15_000;
    const common = { lazyConnect: true, connectTimeout: 5000 };
    this.cmd = connectRedis(options.target, { ...common, maxRetriesPerRequest: 1, commandTimeout: 2000 }) as Cmd;
    this.sub = connectRedis(options.target, { ...common, maxRetriesPerRequest: null });
    for (const c of [this.cmd, this.sub]) c.on('error', (err: Error) => this.logError(err));
    this.cmd.defineCommand('hbClaim', { numberOfKeys: 2, lua: CLAIM });
    this.cmd.defineCommand('hbRelease', { numberOfKeys: 1, lua: RELEASE });
    this.cmd.defineCommand('hbLocate', { numberOfKeys: 1, lua: LOCATE });
    this.cmd.defineCommand('hbReassert', { numberOfKeys: 2, lua: REASSERT });
    this.cmd.defineCommand('hbTake', { lua: TAKE });
  }

  private channel(server: string): string {
    return `${this.p}srv:${server}`;
  }

  private logError(err: Error): void {
    // ioredis reports every failed reconnect attempt; once every few seconds is enough.
    const now = Date.now();
    if (now - this.lastErrorLog < 5000) return;
    this.lastErrorLog = now;
    this.logger.warn({ err: err.message }, 'redis error');
  }

  async start(onMessage: (m: InstanceMessage) => void, held?: () => Iterable<HeldClaim>): Promise<void> {
    this.onMessage = onMessage;
    if (held) this.held = held;
    await Promise.all([this.cmd.connect(), this.sub.connect()]);
    this.sub.on('message', (_channel: string, payload: string) => this.receive(payload));
    await this.sub.subscribe(this.channel(this.instanceId));
    await this.refreshAlive();
    // After a reconnect (Redis restarted, or failed over, and lost what it held), at once.
    this.cmd.on('ready', () => void this.restore().catch((e: Error) => this.logError(e)));
    this.every(Math.max(1000, Math.floor(this.aliveTtlMs / 3)), () => void this.restore().catch((e: Error) => this.logError(e)));
    this.every(this.options.probeIntervalMs, () => void this.sendProbe());
    await this.sendProbe();
  }

  private every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    t.unref();
    this.timers.push(t);
  }

  private async refreshAlive(): Promise<void> {
    await this.cmd.set(`${this.p}alive:${this.instanceId}`, String(Date.now()), 'PX', this.aliveTtlMs);
  }

  /**
   * Liveness, then every held connection's entry: written back where it is missing, and a kick
   * to this instance where a newer connection of the branch replaced it meanwhile.
   */
  private async restore(): Promise<void> {
    await this.refreshAlive();
    const claims = [...this.held()];
    const results = await Promise.all(
      claims.map((c) =>
        this.cmd.hbReassert(`${this.p}loc:${c.tenantId}`, `${this.p}gen:${c.tenantId}:${c.branchId}`, c.branchId, this.instanceId, String(c.gen)),
      ),
    );
    const still = new Set([...this.held()].map((c) => `${c.tenantId}\u0000${c.branchId}\u0000${c.gen}`));
    let restored = 0;
    for (const [i, r] of results.entries()) {
      const c = claims[i] as HeldClaim;
      if (Number(r) === 0) this.onMessage({ kind: 'kick', tenant: c.tenantId, branch: c.branchId, gen: c.gen });
      else if (Number(r) === 2) {
        restored++;
        // Closed while its entry was written back: take the entry away again.
        if (!still.has(`${c.tenantId}\u0000${c.branchId}\u0000${c.gen}`)) await this.release(c.tenantId, c.branchId, c.gen);
      }
    }
    if (restored > 0) this.logger.info({ restored }, 'registered connections again in redis (their entries were gone)');
  }

  private receive(payload: string): void {
    let m: InstanceMessage;
    try {
      m = JSON.parse(payload) as InstanceMessage;
    } catch {
      return;
    }
    if (m.kind === 'probe') {
      if (this.probe && m.nonce === this.probe.nonce) this.lastProbeBack = Date.now();
      return;
    }
    this.onMessage(m);
  }

  private async sendProbe(): Promise<void> {
    this.probe = { nonce: randomBytes(6).toString('hex'), sentAt: Date.now() };
    await this.cmd
      .publish(this.channel(this.instanceId), JSON.stringify({ kind: 'probe', nonce: this.probe.nonce }))
      .catch((e: Error) => this.logError(e));
  }

  async claim(tenant: string, branch: string): Promise<{ gen: number; previous: Location | null }> {
    const [gen, server, pgen, pat] = await this.cmd.hbClaim(
      `${this.p}loc:${tenant}`,
      `${this.p}gen:${tenant}:${branch}`,
      branch,
      this.instanceId,
    );
    return { gen: Number(gen), previous: server ? { server, gen: Number(pgen), at: Number(pat) } : null };
  }

  async release(tenant: string, branch: string, gen: number): Promise<void> {
    await this.cmd.hbRelease(`${this.p}loc:${tenant}`, branch, this.instanceId, String(gen));
  }

  async locate(tenant: string): Promise<ReadonlyMap<string, Location>> {
    const flat = await this.cmd.hbLocate(`${this.p}loc:${tenant}`, `${this.p}alive:`);
    const out = new Map<string, Location>();
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const m = /^(.*)\|(\d+)\|(\d+)$/.exec(flat[i + 1] as string);
      if (m) out.set(flat[i] as string, { server: m[1] as string, gen: Number(m[2]), at: Number(m[3]) });
    }
    return out;
  }

  async send(server: string, message: InstanceMessage): Promise<void> {
    if (server === this.instanceId) {
      setImmediate(() => this.onMessage(message));
      return;
    }
    let payload = JSON.stringify(message);
    if (payload.length > MAX_CARRY_BYTES && message.kind === 'entries') {
      const { entries: _dropped, ...wakeUp } = message;
      payload = JSON.stringify(wakeUp);
    }
    await this.cmd.publish(this.channel(server), payload).catch((e: Error) => this.logError(e));
  }

  async take(buckets: readonly BucketRequest[], cost = 1): Promise<TakeResult> {
    const keys = buckets.map((b) => `${this.p}rl:${b.key}`);
    const args: (string | number)[] = [keys.length, ...keys, cost];
    for (const b of buckets) args.push(b.rate.perSecond, b.rate.burst);
    try {
      const [ok, refusedBy, retryAfterMs] = await this.cmd.hbTake(...args);
      return ok === 1 ? { allowed: true } : { allowed: false, refusedBy: Number(refusedBy), retryAfterMs: Number(retryAfterMs) };
    } catch (err) {
      // Fail open: an unreachable Redis must not stop sync; PostgreSQL still bounds the work.
      this.logError(err as Error);
      return { allowed: true };
    }
  }

  async health(): Promise<EngineHealth> {
    if (this.cmd.status !== 'ready' || this.sub.status !== 'ready') {
      return { ok: false, detail: `redis connection ${this.cmd.status}/${this.sub.status}` };
    }
    try {
      await this.cmd.ping();
    } catch (err) {
      return { ok: false, detail: `redis ping failed: ${(err as Error).message}` };
    }
    // A subscription can die silently; our own probe must have come back recently.
    const limit = this.options.probeIntervalMs * 2 + 1000;
    if (Date.now() - this.lastProbeBack > limit) {
      return { ok: false, detail: `pub/sub self-probe not received for ${Date.now() - this.lastProbeBack} ms` };
    }
    return { ok: true, detail: 'redis' };
  }

  async stop(): Promise<void> {
    this.timers.forEach(clearInterval);
    this.timers = [];
    await this.cmd.del(`${this.p}alive:${this.instanceId}`).catch(() => undefined);
    await Promise.all([this.sub.quit().catch(() => undefined), this.cmd.quit().catch(() => undefined)]);
  }

  kill(): void {
    this.timers.forEach(clearInterval);
    this.timers = [];
    this.onMessage = () => undefined;
    this.sub.disconnect();
    this.cmd.disconnect();
  }
}
