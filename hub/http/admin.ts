/**
 * The admin API under `/admin/` (tenants, branches, keys, live connections, branch status,
 * audit log); docs/api.md is its reference. `server.ts` has already checked
 * `Authorization: Bearer $HUB_ADMIN_TOKEN` before calling the handler, and answers 404 for every
 * /admin/ path when no admin token is configured. Routes live in `admin/routes.ts`; this shell
 * matches, runs the handler and turns what it returns or throws into a JSON answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HubContext } from '../context.js';
import { DNS_LABEL } from '../../protocol/index.js';
import { HubStore } from '../store/index.js';
import { AdminError, toAdminError } from './admin/request.js';
import { adminRoutes } from './admin/routes.js';
import { createRouter } from './admin/router.js';
import { sendError, sendJson } from './respond.js';

/** Handles one request whose path starts with `/admin/`; `url` is parsed, `source` the client address. */
/** `path` is the request's path as sent (hub/http/path.ts), `url` its parsed form for the query. */
export type HttpHandler = (req: IncomingMessage, res: ServerResponse, path: string, url: URL, source: string) => Promise<void>;

/** Path parameters are checked before any handler runs: ids are what the API creates, nothing else reaches the store. */
function checkParam(name: string, value: string): string | undefined {
  if (name === 'tenant' || name === 'branch') {
    return value.length <= 63 && DNS_LABEL.test(value) ? undefined : `${name} ${JSON.stringify(value.slice(0, 80))}: must be a DNS-1123 label (lowercase letters, digits and "-", at most 63)`;
  }
  if (name === 'id') return /^\d{1,18}$/.test(value) ? undefined : `id ${JSON.stringify(value.slice(0, 80))}: must be a number`;
  return undefined;
}

export function createAdminHandler(ctx: HubContext): HttpHandler {
  // Same pool and argon2 cost as the hub's store; the audit log names `admin` as the source.
  const store = new HubStore(ctx.pool, { argon2: ctx.store.argon2, source: 'admin' });
  const match = createRouter(adminRoutes({ ctx, store }), checkParam);

  const fail = (req: IncomingMessage, res: ServerResponse, e: AdminError) => {
    // A refused body may still be arriving; close the connection rather than read it all.
    if (!req.complete) res.setHeader('connection', 'close');
    sendError(req, res, e.status, e.code, e.message, e.headers);
  };

  return async (req, res, path, url, source) => {
    const m = match(req.method ?? 'GET', path);
    if (m.kind === 'not_found') return fail(req, res, new AdminError(404, 'not_found', 'no such admin resource'));
    if (m.kind === 'bad_param') return fail(req, res, new AdminError(400, 'invalid_request', m.message));
    if (m.kind === 'method_not_allowed') {
      return fail(req, res, new AdminError(405, 'method_not_allowed', `${req.method ?? ''} is not allowed here; use ${m.allow}`, { allow: m.allow }));
    }
    try {
      const reply = await m.handler({ req, url, params: m.params, source });
      sendJson(req, res, reply.status, reply.body, reply.headers);
    } catch (err) {
      const e = toAdminError(err);
      if (!e) throw err; // server.ts logs it and answers 500
      fail(req, res, e);
    }
  };
}
