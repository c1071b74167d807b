/**
 * The HTTP(S) server: `/auth/token`, `/ws` (upgrade), `/health`, `/ready`, `/metrics` and the
 * admin API under `/admin/`. CORS, compression and request logging happen here, once.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { WebSocketServer } from 'ws';
import { handleTokenRequest } from '../auth/token.js';
import type { HubContext } from '../context.js';
import { loggablePath } from '../logger.js';
import { answerClientError, type ParserError } from './client-error.js';
import { requestPath } from './path.js';
import { createAdminHandler } from './admin.js';
import { sendBody, sendError, sendJson, sourceAddress } from './respond.js';
import { readTls, watchTls } from './tls.js';
import { createUpgradeHandler, createWebSocketServer } from './upgrade.js';

export interface Readiness {
  readonly ready: boolean;
  readonly checks: Record<string, { ok: boolean; detail?: string }>;
}

export interface HttpServer {
  readonly server: Server;
  readonly wss: WebSocketServer;
  readonly tls: boolean;
  /** Resolves with the bound port. */
  listen(): Promise<number>;
  /** Stops accepting connections (existing sockets stay open). */
  stopAccepting(): Promise<void>;
  /** Closes everything left, at once. */
  destroy(): void;
}

const CORS_HEADERS = 'authorization, content-type';
const CORS_METHODS = 'GET, POST, PUT, PATCH, DELETE, OPTIONS';

function corsHeaders(origins: readonly string[], origin: string | undefined): Record<string, string> {
  if (!origin || origins.length === 0) return {};
  if (origins.includes('*')) return { 'access-control-allow-origin': '*' };
  if (!origins.includes(origin)) return {};
  return { 'access-control-allow-origin': origin, vary: 'origin' };
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function createServer(ctx: HubContext, readiness: () => Promise<Readiness>): HttpServer {
  const { config, logger, metrics } = ctx;
  const tlsFiles = config.tlsCertFile && config.tlsKeyFile ? { certFile: config.tlsCertFile, keyFile: config.tlsKeyFile } : undefined;
  const admin = createAdminHandler(ctx);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const source = sourceAddress(req, config.trustProxy);
    const cors = corsHeaders(config.corsOrigins, req.headers.origin);
    for (const [k, v] of Object.entries(cors)) res.setHeader(k, v);
    const target = requestPath(req.url);
    if (!target.ok) return sendError(req, res, 400, 'invalid_request', target.message);
    const { path, url } = target;

    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        ...(cors['access-control-allow-origin'] ? { 'access-control-allow-methods': CORS_METHODS, 'access-control-allow-headers': CORS_HEADERS, 'access-control-max-age': '600' } : {}),
      });
      res.end();
      return;
    }
    const get = req.method === 'GET' || req.method === 'HEAD';

    if (path === '/health' && get) {
      sendJson(req, res, 200, { status: 'ok', instance: ctx.instanceId });
      return;
    }
    if (path === '/ready' && get) {
      const r = await readiness();
      sendJson(req, res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', instance: ctx.instanceId, checks: r.checks });
      return;
    }
    if (path === '/metrics' && get) {
      sendBody(req, res, 200, await metrics.registry.metrics(), metrics.registry.contentType);
      return;
    }
    if (path === '/auth/token') {
      if (req.method !== 'POST') return sendError(req, res, 405, 'method_not_allowed', 'use POST', { allow: 'POST' });
      await handleTokenRequest(ctx, req, res, source);
      return;
    }
    if (path === '/admin' || path.startsWith('/admin/')) {
      if (!config.adminToken) return sendError(req, res, 404, 'not_found', 'the admin API is disabled (no HUB_ADMIN_TOKEN)');
      const h = req.headers.authorization;
      const given = h && /^bearer /i.test(h) ? h.slice(7).trim() : '';
      if (!sameSecret(given, config.adminToken)) {
        metrics.authFailures.inc({ reason: 'admin_token' });
        return sendError(req, res, 401, 'unauthorized', 'admin token required', { 'www-authenticate': 'Bearer' });
      }
      await admin(req, res, path, url, source);
      return;
    }
    if (path === '/ws') return sendError(req, res, 426, 'upgrade_required', 'connect with a WebSocket', { upgrade: 'websocket' });
    sendError(req, res, 404, 'not_found', 'no such resource');
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    // Taken now: a request whose body was refused half-read has no socket any more at 'finish'.
    const source = sourceAddress(req, config.trustProxy);
    res.on('finish', () => {
      const path = loggablePath(req.url);
      const quiet = path === '/health' || path === '/ready' || path === '/metrics';
      logger[quiet ? 'debug' : 'info'](
        { req: { method: req.method, url: path }, status: res.statusCode, ms: Math.round(performance.now() - started), source },
        'request',
      );
    });
    handle(req, res).catch((err: unknown) => {
      logger.error({ err, path: loggablePath(req.url) }, 'request failed');
      if (!res.headersSent) sendError(req, res, 500, 'internal', 'internal error');
      else res.destroy();
    });
  };

  const server: Server = tlsFiles ? createHttpsServer(readTls(tlsFiles), onRequest) : createHttpServer(onRequest);
  // Slowloris guard; upgraded sockets are unaffected.
  server.headersTimeout = 20_000;
  server.requestTimeout = 30_000;
  const stopWatching = tlsFiles ? watchTls(server as HttpsServer, tlsFiles, logger) : () => undefined;
  const wss = createWebSocketServer(ctx);
  const upgrade = createUpgradeHandler(ctx, wss);
  server.on('upgrade', (req, socket, head) => {
    upgrade(req, socket, head).catch((err: unknown) => {
      logger.error({ err }, 'upgrade failed');
      socket.destroy();
    });
  });
  server.on('clientError', (err: ParserError, socket) => {
    const status = answerClientError(err, socket);
    if (status === null) return;
    metrics.httpRefused.inc({ status: String(status) });
    logger.debug({ code: err.code, status }, 'request refused by the HTTP parser');
  });

  return {
    server,
    wss,
    tls: tlsFiles !== undefined,
    listen: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        // A reconnect storm brings thousands of connections within seconds. Connections past the
        // kernel's accept queue are dropped, and their TCP retries wait 1, 3, 7, 15 s… while the
        // hub may sit idle. The kernel caps the queue at net.core.somaxconn (4096 by default):
        // raise it on hosts that hold many connections (docs/operations.md).
        server.listen({ port: config.port, host: config.host, backlog: 65535 }, () => {
          server.off('error', reject);
          const addr = server.address();
          resolve(typeof addr === 'object' && addr ? addr.port : config.port);
        });
      }),
    stopAccepting: async () => {
      stopWatching();
      // Upgraded sockets still count as the server's connections, so close() is not awaited here:
      // the app closes the WebSockets itself.
      server.close();
      server.closeIdleConnections();
    },
    destroy: () => {
      stopWatching();
      server.closeAllConnections();
      server.close();
    },
  };
}
