import type { z } from 'zod';
import { ProtocolError } from './errors.js';
import { certainlySyncBatch } from './sync-batch-check.js';
import {
  AgentToHubSchema,
  HubToAgentSchema,
  type AgentToHub,
  type HubToAgent,
} from './messages.js';

export type Result<T> = { ok: true; value: T } | { ok: false; error: ProtocolError };

const AGENT_TYPES: ReadonlySet<string> = new Set(AgentToHubSchema.options.map((o) => o.shape.type.value));
const HUB_TYPES: ReadonlySet<string> = new Set(HubToAgentSchema.options.map((o) => o.shape.type.value));

/** Deeper than any real frame (envelope, entry, change, row, value) plus generous nested JSON. */
export const MAX_FRAME_DEPTH = 64;

const LONE_SURROGATE = /\p{Surrogate}/u;

function fieldOf(path: readonly PropertyKey[]): string {
  return path.map(String).join('.');
}

function unstorableText(s: string): string | undefined {
  if (s.includes('\u0000')) return 'must not contain NUL (U+0000)';
  if (LONE_SURROGATE.test(s)) return 'must be well-formed Unicode (no lone surrogate)';
  return undefined;
}

/**
 * Checks what the schemas do not, before they run: plain JSON data only (a MessagePack frame can
 * also decode to dates, buffers, bigints…), nesting no deeper than `MAX_FRAME_DEPTH` (schema
 * validation recurses, and would overflow the stack on a frame of nested brackets), no
 * `__proto__` key (zod would silently drop it), and strings and keys PostgreSQL can store
 * (text and jsonb reject NUL and lone surrogates, which would make a batch fail on append
 * forever). Returns why the frame is unfit, with `path` left at the offending value, or undefined.
 */
function findUnfit(value: unknown, path: PropertyKey[]): string | undefined {
  switch (typeof value) {
    case 'string':
      return unstorableText(value);
    case 'number':
      // MessagePack carries NaN and infinities; JSON and jsonb do not.
      return Number.isFinite(value) ? undefined : 'must be a finite number';
    case 'boolean':
      return undefined;
    case 'object':
      break;
    default:
      return `must be JSON data, not ${typeof value}`;
  }
  if (value === null) return undefined;
  if (path.length >= MAX_FRAME_DEPTH) return `nested deeper than ${MAX_FRAME_DEPTH} levels`;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      const why = findUnfit(value[i], path);
      if (why) return why;
      path.pop();
    }
    return undefined;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return 'must be JSON data';
  for (const key of Object.keys(value)) {
    path.push(key);
    if (key === '__proto__') return 'is not allowed as a key';
    const badKey = unstorableText(key);
    if (badKey) return `key ${badKey}`;
    const why = findUnfit((value as Record<string, unknown>)[key], path);
    if (why) return why;
    path.pop();
  }
  return undefined;
}

function invalid(path: readonly PropertyKey[], why: string): { ok: false; error: ProtocolError } {
  const field = fieldOf(path);
  return { ok: false, error: new ProtocolError('invalid_frame', `${field || 'frame'}: ${why}`, field) };
}

function parseWith<T>(schema: z.ZodType<T>, accepted: ReadonlySet<string>, data: unknown): Result<T> {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return { ok: false, error: new ProtocolError('invalid_frame', 'frame must be an object', '') };
  }
  const type = (data as { type?: unknown }).type;
  if (typeof type !== 'string') {
    return { ok: false, error: new ProtocolError('invalid_frame', 'type: must be a string', 'type') };
  }
  if (!accepted.has(type)) {
    return {
      ok: false,
      error: new ProtocolError('unknown_type', `type: "${type.slice(0, 40)}" is not accepted here`, 'type'),
    };
  }
  const at: PropertyKey[] = [];
  const unfit = findUnfit(data, at);
  if (unfit) return invalid(at, unfit);
  // The hot frame: accepted as decoded when certainly valid, without the schema's copy.
  if (type === 'sync.batch' && accepted === AGENT_TYPES && certainlySyncBatch(data as Record<string, unknown>)) {
    return { ok: true, value: data as T };
  }
  const parsed = schema.safeParse(data);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issue = parsed.error.issues[0];
  if (!issue) return invalid([], 'invalid');
  // An extra key is reported on its parent object; name the key itself.
  const extra = issue.code === 'unrecognized_keys' ? issue.keys[0] : undefined;
  return invalid(extra === undefined ? issue.path : [...issue.path, extra], issue.message);
}

/** Validates a decoded frame received by the hub. Never throws. */
export function parseAgentFrame(data: unknown): Result<AgentToHub> {
  return parseWith(AgentToHubSchema, AGENT_TYPES, data);
}

/** Validates a decoded frame received by an agent. Never throws. */
export function parseHubFrame(data: unknown): Result<HubToAgent> {
  return parseWith(HubToAgentSchema, HUB_TYPES, data);
}
