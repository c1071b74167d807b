/**
 * fast-check arbitraries for every wire message, shared by the protocol tests and by hub and
 * agent fuzz tests. Everything generated here is valid: it passes `parseAgentFrame` /
 * `parseHubFrame` and survives both codecs unchanged. Test code only; nothing in production
 * imports this folder.
 */
import fc from 'fast-check';
import { encodeHlc, MAX_LOGICAL, type Hlc } from '../hlc.js';
import type {
  AgentToHub,
  AuthRefresh,
  AuthRefreshed,
  Change,
  Conflict,
  ConflictNotify,
  ConflictReport,
  ErrorFrame,
  Hello,
  HubToAgent,
  LogEntry,
  Message,
  Row,
  SnapshotAck,
  SnapshotBegin,
  SnapshotChunk,
  SnapshotEnd,
  SnapshotRequest,
  SnapshotRequired,
  SyncAck,
  SyncApplied,
  SyncBatch,
  SyncDeliver,
  Value,
  VersionRef,
  VersionVector,
  TriageRequest,
  TriageResult,
  CatalogReport,
} from '../messages.js';

const MAX_WALL = 2 ** 48 - 1;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const LONE_SURROGATE = /\p{Surrogate}/u;

/**
 * `fc.record` making plain objects, as decoded frames are: fast-check also makes null-prototype
 * ones, and ignores `noNullPrototype` when `requiredKeys` is given.
 */
const record: typeof fc.record = (model, constraints) =>
  fc.record(model, { ...constraints, noNullPrototype: true }).map((o) => ({ ...o }));

/** Strings of at most `max` UTF-16 units (the schemas count units), any printable unicode. */
function text(min: number, max: number): fc.Arbitrary<string> {
  return fc
    .string({ unit: 'grapheme', minLength: min, maxLength: max })
    .map((s) => (s.length > max ? s.slice(0, max) : s))
    // Slicing may split a surrogate pair or a grapheme; keep only well-formed results.
    .filter((s) => s.length >= min && !LONE_SURROGATE.test(s));
}

/**
 * DNS-1123 labels (tenant and branch ids), biased towards edge cases: one character, 63
 * characters, digits only, and `constructor`, which is a valid label *and* the name of a
 * property every plain JavaScript object inherits.
 */
export const idArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom('a', '0', 'constructor', 'x-1', 'a'.repeat(63), 'z9-9z') },
  { weight: 4, arbitrary: fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/) },
);

export const hlcArb: fc.Arbitrary<Hlc> = record({
  wall: fc.integer({ min: 0, max: MAX_WALL }),
  logical: fc.integer({ min: 0, max: MAX_LOGICAL }),
});

export const hlcStringArb: fc.Arbitrary<string> = hlcArb.map(encodeHlc);

export const counterArb = fc.integer({ min: 1, max: MAX_SAFE });
export const offsetArb = fc.integer({ min: 0, max: MAX_SAFE });

/** Sparse version vectors over arbitrary branch ids. */
export const vvArb: fc.Arbitrary<VersionVector> = fc.dictionary(idArb, counterArb, {
  maxKeys: 5,
  noNullPrototype: true,
});

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

function pgTimestamp(d: Date): string {
  // PostgreSQL's text form of timestamptz with DateStyle=ISO, TimeZone=UTC.
  return d.toISOString().replace('T', ' ').replace('Z', '+00');
}

/** Replaces -0 (which JSON cannot carry) and `__proto__` keys (which the validator rejects). */
function sanitizeJson(v: unknown): Value {
  if (typeof v === 'number') return Object.is(v, -0) ? 0 : v;
  if (Array.isArray(v)) return v.map(sanitizeJson);
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, Value> = {};
    for (const [k, x] of Object.entries(v)) out[k === '__proto__' ? '_proto_' : k] = sanitizeJson(x);
    return out;
  }
  return v as Value;
}

/**
 * One column value, as agents send them (PostgreSQL's text form, or NULL) plus the other
 * JSON values the protocol allows: numbers and nested objects and arrays.
 */
export const valueArb: fc.Arbitrary<Value> = fc.oneof(
  fc.constant(null),
  // Unicode text: printable graphemes (astral, combining, RTL scripts), never NUL.
  text(0, 40),
  fc.constantFrom(
    'مرحبا بالعالم', // Arabic, right to left
    'שָׁלוֹם', // Hebrew with points
    '\u202Eevil\u202C', // RTL override
    '𝄞 😀 👩‍👩‍👧 🇫🇷', // astral characters, ZWJ sequence, flag
    'e\u0301', // combining accent
    '',
    ' ',
    "quote ' and \" and \\ backslash",
  ),
  // bigint and numeric as strings: exact, beyond what a double holds.
  fc.constantFrom('9223372036854775807', '-9223372036854775808', '12345678901234567890.123456789', 'NaN', '-Infinity'),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String),
  fc
    .tuple(fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }), fc.bigInt({ min: 0n, max: 10n ** 20n }))
    .map(([i, f]) => `${i}.${f}`),
  // timestamps
  fc
    .date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true })
    .map(pgTimestamp),
  fc.date({ noInvalidDate: true, min: new Date(0), max: new Date('2100-01-01T00:00:00Z') }).map((d) => d.toISOString()),
  // bytea: PostgreSQL hex form, and base64
  fc.uint8Array({ maxLength: 32 }).map((b) => `\\x${hex(b)}`),
  fc.constant('\\x00ff'),
  fc.uint8Array({ maxLength: 32 }).map((b) => Buffer.from(b).toString('base64')),
  // booleans and finite numbers (no -0: JSON has none)
  fc.boolean(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => (Object.is(x, -0) ? 0 : x)),
  fc.integer(),
  // nested JSON, raw and as jsonb text
  fc.jsonValue({ maxDepth: 4, stringUnit: 'grapheme' }).map(sanitizeJson),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(sanitizeJson(v))),
);

/** Column names: 1–63 characters, never `__proto__`. */
export const columnArb: fc.Arbitrary<string> = fc.oneof(
  fc.stringMatching(/^[a-z_][a-z0-9_]{0,30}$/).filter((c) => c !== '__proto__'),
  fc.constantFrom('id', 'email', 'naïve', 'größe', 'constructor', 'toString', 'Quoted Name'),
);

export const rowArb: fc.Arbitrary<Row> = fc.dictionary(columnArb, valueArb, {
  minKeys: 1,
  maxKeys: 8,
  noNullPrototype: true,
});

export const pkArb: fc.Arbitrary<Row> = fc.oneof(
  record({ id: fc.oneof(fc.bigInt({ min: 1n, max: 2n ** 63n - 1n }).map(String), fc.uuid()) }),
  fc.dictionary(columnArb, valueArb, { minKeys: 1, maxKeys: 3, noNullPrototype: true }),
);

export const tableArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('public.customer', 'public.order_line', 'sales.invoice'),
  fc.stringMatching(/^[a-z_][a-z0-9_]{0,30}\.[a-z_][a-z0-9_]{0,30}$/),
);

export const opArb = fc.constantFrom('insert', 'update', 'delete' as const);

export const changeArb: fc.Arbitrary<Change> = record(
  {
    table: tableArb,
    op: opArb,
    pk: pkArb,
    row: rowArb,
    hlc: hlcStringArb,
    vv: vvArb,
    origin: idArb,
    seq: counterArb,
    tx: fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }).map(String),
    tx_end: fc.boolean(),
  },
  { requiredKeys: ['table', 'op', 'pk', 'row', 'hlc', 'vv', 'origin', 'seq', 'tx'] },
).map((c) => (c.op === 'delete' ? { ...c, row: null } : c)); // deletes carry no row

const messageIdArb = fc.oneof(fc.uuid(), text(1, 64));
const batchIdArb = fc.oneof(fc.uuid(), text(1, 64));
const timestampArb = fc
  .date({ noInvalidDate: true, min: new Date(0), max: new Date('2100-01-01T00:00:00Z') })
  .map((d) => d.toISOString());
const strategyArb = fc.constantFrom('last-write-wins', 'branch-priority' as const);

export const versionRefArb: fc.Arbitrary<VersionRef> = record({
  origin: idArb,
  hlc: hlcStringArb,
  vv: vvArb,
  deleted: fc.boolean(),
});

export const conflictArb: fc.Arbitrary<Conflict> = record(
  {
    kind: fc.constantFrom('concurrent', 'dead-letter' as const),
    reason: text(0, 200),
    table: tableArb,
    pk: pkArb,
    strategy: strategyArb,
    winner: versionRefArb,
    loser: versionRefArb,
    winner_row: fc.option(rowArb, { nil: null }),
    loser_row: fc.option(rowArb, { nil: null }),
    detected_at: timestampArb,
  },
  { requiredKeys: ['table', 'pk', 'strategy', 'winner', 'loser', 'winner_row', 'loser_row', 'detected_at'] },
);

// ---------------------------------------------------------------- agent → hub

export const syncBatchArb: fc.Arbitrary<SyncBatch> = record(
  {
    type: fc.constant('sync.batch' as const),
    id: messageIdArb,
    batch_id: batchIdArb,
    changes: fc.array(changeArb, { minLength: 1, maxLength: 5 }),
    to: idArb,
  },
  { requiredKeys: ['type', 'id', 'batch_id', 'changes'] },
);

export const syncAppliedArb: fc.Arbitrary<SyncApplied> = record({
  type: fc.constant('sync.applied' as const),
  id: messageIdArb,
  offset: offsetArb,
});

export const conflictReportArb: fc.Arbitrary<ConflictReport> = record({
  type: fc.constant('conflict.report' as const),
  id: messageIdArb,
  conflict: conflictArb,
});

export const snapshotRequestArb: fc.Arbitrary<SnapshotRequest> = record({
  type: fc.constant('snapshot.request' as const),
  id: messageIdArb,
});

export const snapshotAckArb: fc.Arbitrary<SnapshotAck> = record({
  type: fc.constant('snapshot.ack' as const),
  id: messageIdArb,
  snapshot_id: batchIdArb,
  seq: offsetArb,
});

export const authRefreshArb: fc.Arbitrary<AuthRefresh> = record({
  type: fc.constant('auth.refresh' as const),
  id: messageIdArb,
  token: fc.stringMatching(/^[A-Za-z0-9_-]{10,200}\.[A-Za-z0-9_-]{10,400}\.[A-Za-z0-9_-]{10,100}$/),
});

export const errorFrameArb: fc.Arbitrary<ErrorFrame> = record(
  {
    type: fc.constant('error' as const),
    id: messageIdArb,
    code: fc.stringMatching(/^[a-z_]{1,64}$/),
    message: text(0, 300),
    ref: messageIdArb,
  },
  { requiredKeys: ['type', 'id', 'code', 'message'] },
);

// ---------------------------------------------------------------- hub → agent

export const helloArb: fc.Arbitrary<Hello> = record({
  type: fc.constant('hello' as const),
  id: messageIdArb,
  protocol: fc.integer({ min: 1, max: 1000 }),
  server_id: text(1, 128),
  tenant_id: idArb,
  branch_id: idArb,
  heartbeat_ms: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  limits: record({
    max_frame_bytes: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    max_changes_per_batch: fc.integer({ min: 1, max: 100_000 }),
  }),
  cursor: offsetArb,
  log_head: offsetArb,
  bootstrap: fc.boolean(),
  policy: record({ conflict_strategy: strategyArb, branch_priority: fc.array(idArb, { maxLength: 6 }) }),
  token_expires_at: timestampArb,
});

export const syncAckArb: fc.Arbitrary<SyncAck> = record({
  type: fc.constant('sync.ack' as const),
  id: messageIdArb,
  batch_id: batchIdArb,
  offsets: fc.array(offsetArb, { maxLength: 20 }),
});

export const logEntryArb: fc.Arbitrary<LogEntry> = fc.tuple(offsetArb, changeArb);

export const syncDeliverArb: fc.Arbitrary<SyncDeliver> = record({
  type: fc.constant('sync.deliver' as const),
  id: messageIdArb,
  entries: fc.array(logEntryArb, { minLength: 1, maxLength: 5 }),
});

export const conflictNotifyArb: fc.Arbitrary<ConflictNotify> = record({
  type: fc.constant('conflict.notify' as const),
  id: messageIdArb,
  reported_by: idArb,
  conflict: conflictArb,
});

export const snapshotBeginArb: fc.Arbitrary<SnapshotBegin> = record({
  type: fc.constant('snapshot.begin' as const),
  id: messageIdArb,
  snapshot_id: batchIdArb,
  offset: offsetArb,
  total_rows: offsetArb,
});

export const snapshotChunkArb: fc.Arbitrary<SnapshotChunk> = record({
  type: fc.constant('snapshot.chunk' as const),
  id: messageIdArb,
  snapshot_id: batchIdArb,
  seq: offsetArb,
  rows: fc.array(changeArb, { maxLength: 5 }),
});

export const snapshotEndArb: fc.Arbitrary<SnapshotEnd> = record({
  type: fc.constant('snapshot.end' as const),
  id: messageIdArb,
  snapshot_id: batchIdArb,
  offset: offsetArb,
  rows: offsetArb,
});

export const snapshotRequiredArb: fc.Arbitrary<SnapshotRequired> = record({
  type: fc.constant('snapshot.required' as const),
  id: messageIdArb,
  reason: text(0, 256),
});

export const authRefreshedArb: fc.Arbitrary<AuthRefreshed> = record({
  type: fc.constant('auth.refreshed' as const),
  id: messageIdArb,
  expires_at: timestampArb,
});

export const triageRequestArb: fc.Arbitrary<TriageRequest> = record(
  {
    type: fc.constant('triage.request' as const),
    id: messageIdArb,
    kind: fc.constantFrom('dead-letters' as const, 'conflicts' as const),
    action: fc.constantFrom('list' as const, 'show' as const, 'retry' as const, 'discard' as const, 'override' as const),
    target: fc.integer({ min: 1, max: 1_000_000 }).map(String),
  },
  { requiredKeys: ['type', 'id', 'kind', 'action'] },
);

export const triageResultArb: fc.Arbitrary<TriageResult> = record(
  {
    type: fc.constant('triage.result' as const),
    id: messageIdArb,
    status: fc.constantFrom('ok' as const, 'not_found' as const, 'failed' as const, 'invalid' as const, 'refused' as const),
    message: text(0, 200),
    body: valueArb,
  },
  { requiredKeys: ['type', 'id', 'status', 'message'] },
);

const tableNameArb = fc.tuple(fc.stringMatching(/^[a-z_][a-z0-9_]{0,20}$/), fc.stringMatching(/^[a-z_][a-z0-9_]{0,20}$/)).map(([a, b]) => `${a}.${b}`);
const columnNameArb = fc.stringMatching(/^[a-z_][a-z0-9_]{0,30}$/);

export const catalogReportArb: fc.Arbitrary<CatalogReport> = record({
  type: fc.constant('catalog.report' as const),
  id: messageIdArb,
  tables: fc.array(
    record({
      name: tableNameArb,
      columns: fc.array(record({ name: columnNameArb, type: fc.constantFrom('integer', 'text', 'boolean', 'numeric(10,2)', 'timestamp with time zone') }), { minLength: 1, maxLength: 6 }),
      pk: fc.array(columnNameArb, { minLength: 1, maxLength: 2 }),
    }),
    { maxLength: 4 },
  ),
});

/** One arbitrary per message type, keyed by type, for tests that must cover every type. */
export const agentToHubArbs: { readonly [T in AgentToHub['type']]: fc.Arbitrary<Extract<AgentToHub, { type: T }>> } = {
  'sync.batch': syncBatchArb,
  'sync.applied': syncAppliedArb,
  'conflict.report': conflictReportArb,
  'snapshot.request': snapshotRequestArb,
  'snapshot.ack': snapshotAckArb,
  'auth.refresh': authRefreshArb,
  'triage.result': triageResultArb,
  'catalog.report': catalogReportArb,
  error: errorFrameArb,
};

export const hubToAgentArbs: { readonly [T in HubToAgent['type']]: fc.Arbitrary<Extract<HubToAgent, { type: T }>> } = {
  hello: helloArb,
  'sync.ack': syncAckArb,
  'sync.deliver': syncDeliverArb,
  'conflict.notify': conflictNotifyArb,
  'snapshot.begin': snapshotBeginArb,
  'snapshot.chunk': snapshotChunkArb,
  'snapshot.end': snapshotEndArb,
  'snapshot.required': snapshotRequiredArb,
  'auth.refreshed': authRefreshedArb,
  'triage.request': triageRequestArb,
  error: errorFrameArb,
};

export const agentToHubArb: fc.Arbitrary<AgentToHub> = fc.oneof(...Object.values(agentToHubArbs));
export const hubToAgentArb: fc.Arbitrary<HubToAgent> = fc.oneof(...Object.values(hubToAgentArbs));
export const messageArb: fc.Arbitrary<Message> = fc.oneof(agentToHubArb, hubToAgentArb);
