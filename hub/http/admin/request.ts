/**
 * The edge of the admin API: request bodies and query strings become typed values here (or a
 * 400 naming the field), and every failure becomes an `AdminError` with a status and a code.
 */
import type { IncomingMessage } from 'node:http';
import type { z } from 'zod';
import { StoreError } from '../../store/index.js';
import { BODY_ERROR_CODE, BodyError, readJson } from '../respond.js';

/** Admin bodies are small; a long `branchPriority` list is the largest thing in one. */
export const MAX_ADMIN_BODY_BYTES = 64 * 1024;

export type AdminErrorCode =
  | 'invalid_request'
  | 'unauthorized'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'limit_exceeded'
  | 'branch_not_connected'
  | 'branch_timeout'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'internal';

/** A failure answered as `{error: {code, message}}` with `status`. */
export class AdminError extends Error {
  override readonly name = 'AdminError';
  constructor(
    readonly status: number,
    readonly code: AdminErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * StoreError codes as HTTP statuses. `limit_exceeded` (a tenant at its `maxBranches`) is a 409:
 * the request is valid but conflicts with the tenant's current state, and succeeds once a branch
 * is deleted or the limit raised.
 */
const STORE_STATUS: Record<StoreError['code'], { status: number; code: AdminErrorCode }> = {
  not_found: { status: 404, code: 'not_found' },
  conflict: { status: 409, code: 'conflict' },
  limit_exceeded: { status: 409, code: 'limit_exceeded' },
  invalid: { status: 400, code: 'invalid_request' },
};


/** The AdminError for anything a handler threw, or undefined for an unexpected error (a 500). */
export function toAdminError(err: unknown): AdminError | undefined {
  if (err instanceof AdminError) return err;
  if (err instanceof StoreError) {
    const m = STORE_STATUS[err.code];
    return new AdminError(m.status, m.code, err.message);
  }
  if (err instanceof BodyError) return new AdminError(err.status, BODY_ERROR_CODE[err.status], err.message);
  return undefined;
}

export function notFound(message: string): AdminError {
  return new AdminError(404, 'not_found', message);
}

export function badRequest(message: string): AdminError {
  return new AdminError(400, 'invalid_request', message);
}

/** One line naming the first offending field; unknown fields are reported before anything else. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], where: 'body' | 'query' = 'body'): string {
  const noun = where === 'body' ? 'field' : 'query parameter';
  const unknown = issues.find((i) => i.code === 'unrecognized_keys');
  if (unknown && unknown.code === 'unrecognized_keys') {
    const names = unknown.keys.map((k) => `"${[...unknown.path, k].join('.')}"`);
    return `unknown ${noun}${names.length > 1 ? 's' : ''} ${names.join(', ')}`;
  }
  const first = issues[0];
  if (!first) return `invalid ${where}`;
  const path = first.path.join('.');
  return path === '' ? `${where}: ${first.message}` : `${noun} "${path}": ${first.message}`;
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return Number(length) > 0;
  return req.headers['transfer-encoding'] !== undefined;
}

/**
 * Reads and validates a JSON body. A request without a body counts as `{}`, so actions whose
 * fields are all optional (suspend, rotate-key) need none; a body that is there must be valid.
 */
export async function readBody<S extends z.ZodType>(req: IncomingMessage, schema: S): Promise<z.infer<S>> {
  const raw = hasBody(req) ? await readJson(req, MAX_ADMIN_BODY_BYTES) : {};
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw badRequest(describeIssues(parsed.error.issues));
  return parsed.data;
}

/** Validates the query string: unknown or repeated parameters are refused, like unknown body fields. */
export function readQuery<S extends z.ZodType>(url: URL, schema: S): z.infer<S> {
  const raw: Record<string, string> = {};
  for (const [k, v] of url.searchParams) {
    if (k in raw) throw badRequest(`query parameter "${k}" is given more than once`);
    raw[k] = v;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw badRequest(describeIssues(parsed.error.issues, 'query'));
  return parsed.data;
}

/** What a route handler receives. */
export interface AdminCall {
  readonly req: IncomingMessage;
  readonly url: URL;
  /** Decoded path parameters (`:tenant`, `:branch`). */
  readonly params: Readonly<Record<string, string>>;
  /** The client's address, for the request log. */
  readonly source: string;
}

/** What a route handler answers; the shell sends it as JSON. */
export interface Reply {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Record<string, string>;
}

export function param(call: AdminCall, name: string): string {
  const v = call.params[name];
  if (v === undefined) throw new Error(`route has no :${name}`);
  return v;
}
