/**
 * The admin API under `/admin/` (tenants, branches, keys, live connections, branch status).
 * `server.ts` has already checked `Authorization: Bearer $HUB_ADMIN_TOKEN` before calling the
 * handler, and answers 404 for every /admin/ path when no admin token is configured.
 *
 * Placeholder: the admin API is written on top of this module's signature.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HubContext } from '../context.js';
import { sendError } from './respond.js';

/** Handles one request whose path starts with `/admin/`; `url` is parsed, `source` the client address. */
export type HttpHandler = (req: IncomingMessage, res: ServerResponse, url: URL, source: string) => Promise<void>;

export function createAdminHandler(_ctx: HubContext): HttpHandler {
  return async (req, res) => {
    sendError(req, res, 404, 'not_found', 'no such admin resource');
  };
}
