import type { z } from 'zod';
import { ProtocolError } from './errors.js';
import {
  AgentToHubSchema,
  HubToAgentSchema,
  type AgentToHub,
  type HubToAgent,
} from './messages.js';

export type Result<T> = { ok: true; value: T } | { ok: false; error: ProtocolError };

const AGENT_TYPES: ReadonlySet<string> = new Set(AgentToHubSchema.options.map((o) => o.shape.type.value));
const HUB_TYPES: ReadonlySet<string> = new Set(HubToAgentSchema.options.map((o) => o.shape.type.value));

function fieldOf(path: readonly PropertyKey[]): string {
  return path.map(String).join('.');
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
  const parsed = schema.safeParse(data);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issue = parsed.error.issues[0];
  const field = issue ? fieldOf(issue.path) : '';
  const message = issue ? issue.message : 'invalid';
  return { ok: false, error: new ProtocolError('invalid_frame', `${field || 'frame'}: ${message}`, field) };
}

/** Validates a decoded frame received by the hub. Never throws. */
export function parseAgentFrame(data: unknown): Result<AgentToHub> {
  return parseWith(AgentToHubSchema, AGENT_TYPES, data);
}

/** Validates a decoded frame received by an agent. Never throws. */
export function parseHubFrame(data: unknown): Result<HubToAgent> {
  return parseWith(HubToAgentSchema, HUB_TYPES, data);
}
