/**
 * A quick yes for valid `sync.batch` frames, the hub's hot path. The zod schema (messages.ts)
 * builds a copy of every object it checks; at full relay load that was 7–9 µs per change, a
 * tenth of the hub's CPU, plus the garbage. This check answers only "certainly valid" or "ask
 * the schema": it must never accept what `SyncBatchSchema` rejects (a property test holds it to
 * that), and on any doubt the schema decides and words the error. It runs after validate.ts's
 * walk of the frame, so every value is plain JSON data and every string storable.
 */
import { DNS_LABEL, HLC_TEXT, type SyncBatch } from './messages.js';

const BATCH_KEYS = new Set(['type', 'id', 'batch_id', 'changes', 'to']);
const CHANGE_KEYS = new Set(['table', 'op', 'pk', 'row', 'hlc', 'vv', 'origin', 'seq', 'tx', 'tx_end', 'old', 'cols']);
const COUNTER_KEYS = new Set(['b', 'd']);
const DECIMAL = /^-?\d+(\.\d+)?$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function text(v: unknown, min: number, max: number): boolean {
  return typeof v === 'string' && v.length >= min && v.length <= max;
}

function id(v: unknown): boolean {
  return text(v, 1, 63) && DNS_LABEL.test(v as string);
}

function counter(v: unknown): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
}

function onlyKeys(o: Record<string, unknown>, allowed: ReadonlySet<string>): boolean {
  for (const k in o) if (!allowed.has(k)) return false;
  return true;
}

/** Column name → value; values are JSON data (checked before), so only the names are looked at. */
function row(v: unknown): boolean {
  if (!isObject(v)) return false;
  for (const k in v) if (k.length < 1 || k.length > 63) return false;
  return true;
}

function versionVector(v: unknown): boolean {
  if (!isObject(v)) return false;
  for (const k in v) if (!id(k) || !counter(v[k])) return false;
  return true;
}

const hlc = (v: unknown): boolean => typeof v === 'string' && HLC_TEXT.test(v);
const branchish = (v: unknown): boolean => v === '' || id(v);

/** A column's cell: [value, hlc, origin, n, best] (protocol/merge.ts). */
function cell(v: unknown): boolean {
  return (
    Array.isArray(v) &&
    v.length === 5 &&
    v[0] !== undefined &&
    hlc(v[1]) &&
    branchish(v[2]) &&
    typeof v[3] === 'number' &&
    Number.isSafeInteger(v[3]) &&
    v[3] >= 0 &&
    branchish(v[4])
  );
}

/** A counter: {b: cell, d: {branch: [sum, n, baseHlc, baseOrigin]}}. */
function counterState(v: unknown): boolean {
  if (!isObject(v) || !onlyKeys(v, COUNTER_KEYS) || !cell(v.b) || !isObject(v.d)) return false;
  for (const k in v.d) {
    const c = v.d[k];
    if (!id(k) || !Array.isArray(c) || c.length !== 4) return false;
    if (!(typeof c[0] === 'string' && c[0].length <= 200 && DECIMAL.test(c[0]) && counter(c[1]) && hlc(c[2]) && branchish(c[3]))) return false;
  }
  return true;
}

function columnState(v: unknown): boolean {
  if (!isObject(v)) return false;
  for (const k in v) if (k.length < 1 || k.length > 63 || !(cell(v[k]) || counterState(v[k]))) return false;
  return true;
}

function change(c: unknown): boolean {
  if (!isObject(c) || !onlyKeys(c, CHANGE_KEYS)) return false;
  return (
    text(c.table, 3, 130) &&
    (c.op === 'insert' || c.op === 'update' || c.op === 'delete') &&
    row(c.pk) &&
    (c.row === null || row(c.row)) &&
    (c.old === undefined || row(c.old)) &&
    (c.cols === undefined || columnState(c.cols)) &&
    typeof c.hlc === 'string' &&
    HLC_TEXT.test(c.hlc) &&
    versionVector(c.vv) &&
    id(c.origin) &&
    counter(c.seq) &&
    text(c.tx, 1, 40) &&
    (c.tx_end === undefined || typeof c.tx_end === 'boolean')
  );
}

/** True only if `SyncBatchSchema` accepts `frame` as it is (false means: let the schema decide). */
export function certainlySyncBatch(frame: Record<string, unknown>): frame is SyncBatch {
  if (frame.type !== 'sync.batch' || !onlyKeys(frame, BATCH_KEYS)) return false;
  if (!text(frame.id, 1, 64) || !text(frame.batch_id, 1, 64)) return false;
  if (frame.to !== undefined && !id(frame.to)) return false;
  const changes = frame.changes;
  if (!Array.isArray(changes) || changes.length === 0) return false;
  for (const c of changes) if (!change(c)) return false;
  return true;
}
