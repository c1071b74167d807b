/**
 * `npm run bench:codec`: encode and decode a 100-change `sync.batch` with each codec, with and
 * without validation; changes per second and bytes per change. Prints a table and replaces the
 * `## Codec` section of docs/benchmarks.md.
 */
import {
  CODECS,
  decodeFrame,
  encodeHlc,
  parseAgentFrame,
  type Change,
  type Codec,
  type SyncBatch,
} from '../protocol/index.js';
import { measure } from './lib/measure.js';
import { loadLine, machineLine, markdownTable, timestamp, writeSection } from './lib/report.js';

const CHANGES = 100;
const ROUNDS = 7;
const ROUND_MS = 400;

/** Deterministic pseudo-random numbers (mulberry32), so every run encodes the same batch. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NAMES = ['Zoë Müller', 'José Núñez', 'Ава Смирнова', '山田 太郎', 'محمد علي', 'Siobhán Ó Briain', 'Łukasz Żak'];

/**
 * A batch as an agent sends it: a `customer` table with the usual column types in PostgreSQL's
 * text form (bigint, text, numeric, timestamptz, boolean, bytea, text[], jsonb), 70 % updates,
 * 20 % inserts, 10 % deletes, three transactions, vectors over three branches.
 */
function sampleBatch(): SyncBatch {
  const rnd = prng(42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const changes: Change[] = [];
  for (let i = 0; i < CHANGES; i++) {
    const id = String(1_000_000 + Math.floor(rnd() * 9_000_000));
    const r = rnd();
    const op = r < 0.7 ? 'update' : r < 0.9 ? 'insert' : 'delete';
    const name = pick(NAMES);
    const row =
      op === 'delete'
        ? null
        : {
            id,
            name,
            email: `${name.split(' ')[0]?.toLowerCase() ?? 'x'}.${id}@example.com`,
            balance: (rnd() * 1e6).toFixed(2),
            credit_limit: '12345678901234567890.123456789',
            active: rnd() < 0.9 ? 't' : 'f',
            created_at: new Date(1.6e12 + rnd() * 1e11).toISOString().replace('T', ' ').replace('Z', '+00'),
            avatar: `\\x${Buffer.from(Array.from({ length: 16 }, () => Math.floor(rnd() * 256))).toString('hex')}`,
            tags: '{vip,"north east"}',
            prefs: JSON.stringify({ newsletter: rnd() < 0.5, lang: pick(['de', 'es', 'ja', 'ar']), limits: [1, 2, 3] }),
            notes: rnd() < 0.5 ? null : 'Prefers delivery before 10:00 — call first ☎',
          };
    changes.push({
      table: 'public.customer',
      op,
      pk: { id },
      row,
      hlc: encodeHlc({ wall: 1_733_000_000_000 + i, logical: i % 3 }),
      vv: { 'store-0042': 10 + i, hq: 3, 'store-0007': 1 + (i % 5) },
      origin: 'store-0042',
      seq: 5_000_000 + i,
      tx: String(900_000 + Math.floor(i / 34)),
      ...(i % 34 === 33 || i === CHANGES - 1 ? { tx_end: true } : {}),
    });
  }
  return { type: 'sync.batch', id: 'bench-1', batch_id: 'bench-batch-1', changes };
}

interface Figures {
  readonly codec: Codec['name'];
  readonly bytesPerChange: number;
  readonly encode: number;
  readonly decode: number;
  readonly decodeValidate: number;
  readonly roundTrip: number;
  readonly roundTripValidate: number;
}

function bench(codec: Codec, batch: SyncBatch): Figures {
  const encoded = codec.encode(batch);
  // What `ws` hands over: a Buffer for binary frames, and for text frames too.
  const frame = typeof encoded === 'string' ? Buffer.from(encoded, 'utf8') : encoded;
  const check = parseAgentFrame((decodeFrame(codec, frame) as { value: unknown }).value);
  if (!check.ok) throw check.error;

  const decode = (): unknown => {
    const r = decodeFrame(codec, frame);
    if (!r.ok) throw r.error;
    return r.value;
  };
  const validate = (value: unknown): unknown => {
    const r = parseAgentFrame(value);
    if (!r.ok) throw r.error;
    return r.value;
  };
  const rate = (fn: () => unknown): number => measure(fn, { rounds: ROUNDS, roundMs: ROUND_MS }).best * CHANGES;
  return {
    codec: codec.name,
    bytesPerChange: frame.length / CHANGES,
    encode: rate(() => codec.encode(batch)),
    decode: rate(decode),
    decodeValidate: rate(() => validate(decode())),
    roundTrip: rate(() => decodeFrame(codec, codec.encode(batch))),
    roundTripValidate: rate(() => {
      const r = decodeFrame(codec, codec.encode(batch));
      return r.ok ? validate(r.value) : undefined;
    }),
  };
}

async function main(): Promise<void> {
  const load = loadLine();
  const batch = sampleBatch();
  const results = CODECS.map((codec) => {
    process.stderr.write(`measuring ${codec.name}…\n`);
    return bench(codec, batch);
  });

  const table = markdownTable(
    [
      'codec',
      'bytes/change',
      'encode',
      'decode',
      'decode + validate',
      'encode + decode',
      'encode + decode + validate',
    ],
    results.map((r) => [
      r.codec,
      Math.round(r.bytesPerChange),
      Math.round(r.encode),
      Math.round(r.decode),
      Math.round(r.decodeValidate),
      Math.round(r.roundTrip),
      Math.round(r.roundTripValidate),
    ]),
  );
  const body = `Command: \`npm run bench:codec\` (bench/codec.ts), run ${timestamp()} on ${machineLine()}.

One \`sync.batch\` of ${CHANGES} changes to a \`customer\` table, as an agent sends it: values in
PostgreSQL's text form (bigint, text with non-Latin names, numeric, timestamptz, boolean, bytea
hex, text[], jsonb), 70 % updates, 20 % inserts, 10 % deletes. Figures are **changes per second**
on one core (a batch per call, × ${CHANGES}); "decode" is \`decodeFrame\` from the bytes \`ws\` hands
over, "validate" adds \`parseAgentFrame\` as the hub does for every frame (the walk over every
value, then for a \`sync.batch\` the quick check of protocol/sync-batch-check.ts, which leaves
only doubtful frames to the zod schema; before it, msgpack decode + validate ran at 64,868
changes/s on the fc-v595 host). Best of ${ROUNDS} rounds of at least ${ROUND_MS} ms after a warm-up (other work on the machine
only slows a round down); ${load}.

${table}`;

  console.log(`\n${table}\n`);
  await writeSection('Codec', body);
  console.log('wrote the "Codec" section of docs/benchmarks.md');
}

await main();
