/**
 * What moves between hub instances: where each branch is connected, notifications of new log
 * entries, and rate-limit buckets. `memory` serves one instance; `redis` several. Everything an
 * engine holds is rebuildable: losing it may delay delivery (live connections also poll the
 * log head) but never loses an acknowledged change, which lives in PostgreSQL.
 */
import type { ConflictNotify, LogEntry, TriageRequest, TriageResult } from '../../protocol/index.js';
import type { BucketRequest, TakeResult } from '../rate-limit.js';

export interface Location {
  /** Instance id holding the branch's socket. */
  readonly server: string;
  /** Claim generation: a newer connection of the branch has a higher one. */
  readonly gen: number;
  /** When it was claimed (ms, engine clock). */
  readonly at: number;
}

/** New entries in a tenant log: a wake-up that may carry the entries themselves. */
export interface EntriesMessage {
  readonly kind: 'entries';
  readonly tenant: string;
  readonly first: number;
  readonly last: number;
  readonly origin: string;
  readonly target: string | null;
  /** When the append committed (ms), for the end-to-end latency metric. */
  readonly at: number;
  /** Absent when too large to carry: receivers read the log. */
  readonly entries?: readonly LogEntry[];
  /**
   * A tenant with routes: the branches that receive any of the entries. The others only move
   * past the range; an instance holding none of them is sent the range without the entries.
   */
  readonly receivers?: readonly string[];
}

/** Close the branch's connection on the receiving instance if its generation is at most `gen`. */
export interface KickMessage {
  readonly kind: 'kick';
  readonly tenant: string;
  readonly branch: string;
  readonly gen: number;
}

/** Deliver a conflict notification to a branch connected on the receiving instance. */
export interface ConflictMessage {
  readonly kind: 'conflict';
  readonly tenant: string;
  readonly branch: string;
  readonly frame: ConflictNotify;
}

/** A triage request for a branch connected on the receiving instance (hub/triage.ts). */
export interface TriageMessage {
  readonly kind: 'triage';
  readonly tenant: string;
  readonly branch: string;
  readonly frame: TriageRequest;
  /** The instance whose admin API call waits for the answer. */
  readonly replyTo: string;
}

/** The agent's answer, back to the instance that asked. */
export interface TriageReplyMessage {
  readonly kind: 'triage-reply';
  readonly tenant: string;
  readonly branch: string;
  readonly frame: TriageResult;
}

export interface ProbeMessage {
  readonly kind: 'probe';
  readonly nonce: string;
}

export type InstanceMessage = EntriesMessage | KickMessage | ConflictMessage | TriageMessage | TriageReplyMessage | ProbeMessage;

export interface EngineHealth {
  readonly ok: boolean;
  readonly detail: string;
}

/** A branch connection this instance holds, as claimed. */
export interface HeldClaim {
  readonly tenantId: string;
  readonly branchId: string;
  readonly gen: number;
}

export interface Engine {
  readonly kind: 'memory' | 'redis';
  readonly instanceId: string;
  /**
   * Subscribes to this instance's channel; `onMessage` receives what other instances send it.
   * `held` lists the connections this instance holds: an engine whose store lost them (a Redis
   * restart) registers them again, and sends this instance a kick for one that a newer
   * connection elsewhere has replaced meanwhile.
   */
  start(onMessage: (m: InstanceMessage) => void, held?: () => Iterable<HeldClaim>): Promise<void>;
  /** Records that this instance now holds the branch; returns the new generation and the entry it replaced. */
  claim(tenant: string, branch: string): Promise<{ gen: number; previous: Location | null }>;
  /** Removes the entry if it is still this instance's claim of generation `gen`. */
  release(tenant: string, branch: string, gen: number): Promise<void>;
  /** Online branches of a tenant on live instances. */
  locate(tenant: string): Promise<ReadonlyMap<string, Location>>;
  /** Sends to one instance (this one included). Never throws: a lost message only delays delivery. */
  send(server: string, message: InstanceMessage): Promise<void>;
  /** Takes one token from every bucket or none (atomically across instances). Fails open. */
  take(buckets: readonly BucketRequest[], cost?: number): Promise<TakeResult>;
  /** Store reachable and, for pub/sub, the self-probe came back recently. */
  health(): Promise<EngineHealth>;
  /** Releases this instance's claims and disconnects. */
  stop(): Promise<void>;
  /** Drops every connection without cleaning up, as a crash would (tests). */
  kill(): void;
}

/** Where the Redis engine connects: one endpoint, or the primary that Redis Sentinel names. */
export type RedisTarget =
  | { readonly kind: 'url'; readonly url: string }
  | {
      readonly kind: 'sentinel';
      readonly sentinels: readonly { readonly host: string; readonly port: number }[];
      readonly name: string;
      readonly password: string | undefined;
      readonly sentinelPassword: string | undefined;
    };
