import { z } from 'zod';

/** Version of the wire protocol, announced in `hello`. */
export const PROTOCOL_VERSION = 1;

/** DNS-1123 label: tenant and branch ids are Kubernetes names. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Fixed-width hex form of a hybrid logical clock timestamp (see hlc.ts). */
export const HLC_TEXT = /^[0-9a-f]{16}$/;

export const IdSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(DNS_LABEL, 'must be a DNS-1123 label (lowercase letters, digits, "-")');

export const HlcSchema = z.string().regex(HLC_TEXT, 'must be 16 lowercase hex digits');

const Counter = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
const Offset = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** Sparse version vector: branch id → number of writes that branch made to the row. */
export const VersionVectorSchema = z.record(IdSchema, Counter);

/**
 * A column value. Agents send PostgreSQL's text form of every value (exact for numeric,
 * timestamptz, bytea, arrays); the protocol itself carries any JSON value, so big integers
 * and numerics travel as strings and bytea as hex or base64 text.
 */
export const ValueSchema = z.json();
export type Value = z.infer<typeof ValueSchema>;

export const RowSchema = z.record(z.string().min(1).max(63), ValueSchema);

export const OpSchema = z.enum(['insert', 'update', 'delete']);

const Branchish = z.union([IdSchema, z.literal('')]);
/** A column's last write (protocol/merge.ts `Cell`): value, HLC, origin, origin's counter, best writer. */
const CellSchema = z.tuple([ValueSchema, HlcSchema, Branchish, z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER), Branchish]);
const DecimalText = z.string().max(200).regex(/^-?\d+(\.\d+)?$/, 'must be a decimal number');
/** A counter column: its base cell and each branch's sum of changes to that base. */
const CounterSchema = z.strictObject({
  b: CellSchema,
  d: z.record(IdSchema, z.tuple([DecimalText, z.number().int().positive().max(Number.MAX_SAFE_INTEGER), HlcSchema, Branchish])),
});
/** Column state of a row of a column-level table (docs/sync-semantics.md "Column-level tables"). */
export const ColumnStateSchema = z.record(z.string().min(1).max(63), z.union([CellSchema, CounterSchema]));

export const ChangeSchema = z.strictObject({
  /** Schema-qualified table, e.g. `public.customer`. */
  table: z.string().min(3).max(130),
  op: OpSchema,
  /** Primary key columns and values. */
  pk: RowSchema,
  /** The whole new row; null for deletes. */
  row: RowSchema.nullable(),
  /**
   * What the row held before: for an update the old values of the columns it changed, for a
   * delete the whole old row. Routing uses it to tell which branches held the row.
   */
  old: RowSchema.optional(),
  /**
   * Set by the hub only, on a delete: the row left the receiving branch's subset (routing), so
   * the branch removes its copy without a tombstone. An agent sending it is refused.
   */
  evict: z.literal(true).optional(),
  /** Column-level tables: the state of every column as the writer had it (protocol/merge.ts). */
  cols: ColumnStateSchema.optional(),
  hlc: HlcSchema,
  vv: VersionVectorSchema,
  origin: IdSchema,
  /** Per-origin sequence number; with `origin` it identifies the change (idempotence key). */
  seq: Counter,
  /** Source transaction id at the origin; changes with equal (origin, tx) commit together. */
  tx: z.string().min(1).max(40),
  /** Set on the last change of its source transaction within a batch. */
  tx_end: z.boolean().optional(),
});

const MessageId = z.string().min(1).max(64);
const ErrorCode = z.string().min(1).max(64).regex(/^[a-z_]+$/);

export const LimitsSchema = z.strictObject({
  max_frame_bytes: z.number().int().positive(),
  max_changes_per_batch: z.number().int().positive(),
});

export const StrategyNameSchema = z.enum(['last-write-wins', 'branch-priority']);

/** How the tenant merges one table (docs/sync-semantics.md "Column-level tables and counters"). */
export const TableMergeSchema = z.strictObject({
  name: z.string().min(3).max(130),
  merge: z.enum(['row', 'column']),
  additive: z.array(z.string().min(1).max(63)).max(1600),
});

export const TenantPolicySchema = z.strictObject({
  conflict_strategy: StrategyNameSchema,
  /** Highest priority first; used by `branch-priority`. */
  branch_priority: z.array(IdSchema),
  /** Tables the tenant merges by column; sent only when it declares some, so agents can check they agree. */
  tables: z.array(TableMergeSchema).max(10_000).optional(),
});

export const VersionRefSchema = z.strictObject({
  origin: IdSchema,
  hlc: HlcSchema,
  vv: VersionVectorSchema,
  deleted: z.boolean(),
});

export const ConflictSchema = z.strictObject({
  /** `concurrent`: two writes resolved by the strategy (the default when absent). `dead-letter`: the
   * incoming change could not be applied at all (e.g. a unique key other than the primary key). */
  kind: z.enum(['concurrent', 'dead-letter']).optional(),
  /** Why a dead-lettered change failed. */
  reason: z.string().max(1024).optional(),
  table: z.string().min(3).max(130),
  pk: RowSchema,
  strategy: StrategyNameSchema,
  winner: VersionRefSchema,
  loser: VersionRefSchema,
  /** Row contents of each side (null for a delete), so the losing branch can see what was overwritten. */
  winner_row: RowSchema.nullable(),
  loser_row: RowSchema.nullable(),
  detected_at: z.string().max(40),
});

// ---------------------------------------------------------------- agent → hub

export const SyncBatchSchema = z.strictObject({
  type: z.literal('sync.batch'),
  id: MessageId,
  batch_id: z.string().min(1).max(64),
  changes: z.array(ChangeSchema).min(1),
  /** One target branch; absent = every other branch of the tenant. */
  to: IdSchema.optional(),
});

export const SyncAppliedSchema = z.strictObject({
  type: z.literal('sync.applied'),
  id: MessageId,
  offset: Offset,
});

export const ConflictReportSchema = z.strictObject({
  type: z.literal('conflict.report'),
  id: MessageId,
  conflict: ConflictSchema,
});

export const SnapshotRequestSchema = z.strictObject({
  type: z.literal('snapshot.request'),
  id: MessageId,
});

/** Flow control: the agent has applied chunk `seq` and can take more. */
export const SnapshotAckSchema = z.strictObject({
  type: z.literal('snapshot.ack'),
  id: MessageId,
  snapshot_id: z.string().min(1).max(64),
  seq: z.number().int().nonnegative(),
});

export const AuthRefreshSchema = z.strictObject({
  type: z.literal('auth.refresh'),
  id: MessageId,
  token: z.string().min(1).max(4096),
});

export const ErrorSchema = z.strictObject({
  type: z.literal('error'),
  id: MessageId,
  code: ErrorCode,
  message: z.string().max(1024),
  /** The id of the frame this error answers, when there is one. */
  ref: MessageId.optional(),
});

// ---------------------------------------------------------------- hub → agent

export const HelloSchema = z.strictObject({
  type: z.literal('hello'),
  id: MessageId,
  protocol: z.number().int().positive(),
  server_id: z.string().min(1).max(128),
  tenant_id: IdSchema,
  branch_id: IdSchema,
  heartbeat_ms: z.number().int().positive(),
  limits: LimitsSchema,
  /** Highest offset the hub knows this branch applied. */
  cursor: Offset,
  /** Highest offset in the tenant log. */
  log_head: Offset,
  /** The branch must bootstrap from a snapshot before it can sync (new, or behind retention). */
  bootstrap: z.boolean(),
  policy: TenantPolicySchema,
  /**
   * Tables this branch may send, as patterns (`schema.table`, `*` matches any run of
   * characters): the tenant's routes. Absent: every table. The hub refuses changes of others.
   */
  send_tables: z.array(z.string().min(1).max(130)).max(1000).optional(),
  token_expires_at: z.string().max(40),
});

export const SyncAckSchema = z.strictObject({
  type: z.literal('sync.ack'),
  id: MessageId,
  batch_id: z.string().min(1).max(64),
  /** Log offset of each change of the batch, in batch order (the original offsets on a resend). */
  offsets: z.array(Offset),
});

export const LogEntrySchema = z.tuple([Offset, ChangeSchema]);

export const SyncDeliverSchema = z.strictObject({
  type: z.literal('sync.deliver'),
  id: MessageId,
  entries: z.array(LogEntrySchema).min(1),
});

export const ConflictNotifySchema = z.strictObject({
  type: z.literal('conflict.notify'),
  id: MessageId,
  /** The branch that detected and reported the conflict. */
  reported_by: IdSchema,
  conflict: ConflictSchema,
});

export const SnapshotBeginSchema = z.strictObject({
  type: z.literal('snapshot.begin'),
  id: MessageId,
  snapshot_id: z.string().min(1).max(64),
  /** The snapshot holds every change up to this log offset; sync continues after it. */
  offset: Offset,
  total_rows: z.number().int().nonnegative(),
});

export const SnapshotChunkSchema = z.strictObject({
  type: z.literal('snapshot.chunk'),
  id: MessageId,
  snapshot_id: z.string().min(1).max(64),
  seq: z.number().int().nonnegative(),
  rows: z.array(ChangeSchema),
});

export const SnapshotEndSchema = z.strictObject({
  type: z.literal('snapshot.end'),
  id: MessageId,
  snapshot_id: z.string().min(1).max(64),
  offset: Offset,
  rows: z.number().int().nonnegative(),
});

/** Sent when a connected branch fell behind retention and must bootstrap again. */
export const SnapshotRequiredSchema = z.strictObject({
  type: z.literal('snapshot.required'),
  id: MessageId,
  reason: z.string().max(256),
});

export const AuthRefreshedSchema = z.strictObject({
  type: z.literal('auth.refreshed'),
  id: MessageId,
  expires_at: z.string().max(40),
});

/**
 * A person's action on the dead letters or conflicts of a branch, asked through the hub's admin
 * API (docs/api.md "Dead letters and conflicts"); the agent answers with `triage.result`.
 */
export const TriageRequestSchema = z.strictObject({
  type: z.literal('triage.request'),
  id: MessageId,
  kind: z.enum(['dead-letters', 'conflicts']),
  action: z.enum(['list', 'show', 'retry', 'discard', 'override']),
  /** The dead letter's or conflict's id at the branch; absent for list. */
  target: z.string().regex(/^\d{1,18}$/).optional(),
});

export const TriageResultSchema = z.strictObject({
  type: z.literal('triage.result'),
  /** The request's id. */
  id: MessageId,
  /** `failed`: a retry failed again (the body says why); `refused`: the agent does not take such requests. */
  status: z.enum(['ok', 'not_found', 'failed', 'invalid', 'refused']),
  message: z.string().max(4096),
  body: ValueSchema.optional(),
});

/**
 * The synced tables of the branch as installed: columns with their `format_type()` and the key.
 * Sent once after `hello`; the hub checks route filters against it (hub/catalog.ts).
 */
export const CatalogReportSchema = z.strictObject({
  type: z.literal('catalog.report'),
  id: MessageId,
  tables: z
    .array(
      z.strictObject({
        name: z.string().min(3).max(130),
        columns: z.array(z.strictObject({ name: z.string().min(1).max(63), type: z.string().min(1).max(200) })).min(1).max(1600),
        pk: z.array(z.string().min(1).max(63)).min(1).max(32),
        /** The table's own conflict strategy at this branch, when it overrides the tenant's. */
        strategy: StrategyNameSchema.optional(),
      }),
    )
    .max(1000),
});

/** Every frame an agent may send to the hub. */
export const AgentToHubSchema = z.discriminatedUnion('type', [
  SyncBatchSchema,
  SyncAppliedSchema,
  ConflictReportSchema,
  SnapshotRequestSchema,
  SnapshotAckSchema,
  AuthRefreshSchema,
  TriageResultSchema,
  CatalogReportSchema,
  ErrorSchema,
]);

/** Every frame the hub may send to an agent. */
export const HubToAgentSchema = z.discriminatedUnion('type', [
  HelloSchema,
  SyncAckSchema,
  SyncDeliverSchema,
  ConflictNotifySchema,
  SnapshotBeginSchema,
  SnapshotChunkSchema,
  SnapshotEndSchema,
  SnapshotRequiredSchema,
  AuthRefreshedSchema,
  TriageRequestSchema,
  ErrorSchema,
]);

export type Change = z.infer<typeof ChangeSchema>;
export type Op = z.infer<typeof OpSchema>;
export type Row = z.infer<typeof RowSchema>;
export type VersionVector = z.infer<typeof VersionVectorSchema>;
export type Limits = z.infer<typeof LimitsSchema>;
export type StrategyName = z.infer<typeof StrategyNameSchema>;
export type TenantPolicy = z.infer<typeof TenantPolicySchema>;
export type TableMerge = z.infer<typeof TableMergeSchema>;
export type TriageRequest = z.infer<typeof TriageRequestSchema>;
export type TriageResult = z.infer<typeof TriageResultSchema>;
export type CatalogReport = z.infer<typeof CatalogReportSchema>;
export type VersionRef = z.infer<typeof VersionRefSchema>;
export type Conflict = z.infer<typeof ConflictSchema>;
export type LogEntry = z.infer<typeof LogEntrySchema>;

export type SyncBatch = z.infer<typeof SyncBatchSchema>;
export type SyncApplied = z.infer<typeof SyncAppliedSchema>;
export type ConflictReport = z.infer<typeof ConflictReportSchema>;
export type SnapshotRequest = z.infer<typeof SnapshotRequestSchema>;
export type SnapshotAck = z.infer<typeof SnapshotAckSchema>;
export type AuthRefresh = z.infer<typeof AuthRefreshSchema>;
export type ErrorFrame = z.infer<typeof ErrorSchema>;
export type Hello = z.infer<typeof HelloSchema>;
export type SyncAck = z.infer<typeof SyncAckSchema>;
export type SyncDeliver = z.infer<typeof SyncDeliverSchema>;
export type ConflictNotify = z.infer<typeof ConflictNotifySchema>;
export type SnapshotBegin = z.infer<typeof SnapshotBeginSchema>;
export type SnapshotChunk = z.infer<typeof SnapshotChunkSchema>;
export type SnapshotEnd = z.infer<typeof SnapshotEndSchema>;
export type SnapshotRequired = z.infer<typeof SnapshotRequiredSchema>;
export type AuthRefreshed = z.infer<typeof AuthRefreshedSchema>;

export type AgentToHub = z.infer<typeof AgentToHubSchema>;
export type HubToAgent = z.infer<typeof HubToAgentSchema>;
export type Message = AgentToHub | HubToAgent;
export type MessageType = Message['type'];
