/**
 * `GET /ws`: the JWT is verified here, in the HTTP upgrade handler, so no unauthenticated
 * socket ever exists; refusals are plain HTTP answers (401, 403, 503).
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { codecForSubprotocol, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK } from '../../protocol/index.js';
import { TokenError, type BranchClaims } from '../auth/jwt.js';
import { Connection } from '../connection.js';
import type { HubContext } from '../context.js';
import { Directory } from '../directory.js';
import { UPGRADE_STATUS, type UpgradeRefusal } from '../errors.js';
import { requestPath } from './path.js';
import { errorBody, sourceAddress } from './respond.js';

/** The WebSocket server: limits from the configuration, subprotocol chosen by preference. */
export function createWebSocketServer(ctx: HubContext): WebSocketServer {
  return new WebSocketServer({
    noServer: true,
    clientTracking: false,
    maxPayload: ctx.config.maxFrameBytes,
    perMessageDeflate: ctx.config.perMessageDeflate,
    handleProtocols: (offered) => {
      if (offered.has(SUBPROTOCOL_MSGPACK)) return SUBPROTOCOL_MSGPACK;
      if (offered.has(SUBPROTOCOL_JSON)) return SUBPROTOCOL_JSON;
      return false;
    },
  });
}

function bearer(req: IncomingMessage, url: URL, queryToken: boolean): string | undefined {
  const h = req.headers.authorization;
  if (h && /^bearer /i.test(h)) return h.slice(7).trim() || undefined;
  // Only when allowed (HUB_WS_QUERY_TOKEN), for clients that cannot set headers; the hub never logs it (logger.ts), proxies may.
  return queryToken ? (url.searchParams.get('access_token') ?? undefined) : undefined;
}

function refuse(socket: Duplex, status: number, error: string): void {
  const body = JSON.stringify(errorBody(error, STATUS_CODES[status] ?? 'refused'));
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  socket.destroy();
}

export function createUpgradeHandler(ctx: HubContext, wss: WebSocketServer) {
  let pending = 0;
  const { metrics, config } = ctx;

  const refused = (socket: Duplex, reason: UpgradeRefusal) => {
    metrics.upgradesRefused.inc({ reason });
    refuse(socket, UPGRADE_STATUS[reason], reason);
  };

  return async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    socket.on('error', () => undefined);
    const target = requestPath(req.url);
    if (!target.ok || target.path !== '/ws') return refused(socket, 'not_found');
    const { url } = target;
    if (ctx.draining) return refused(socket, 'draining');
    if (ctx.registry.size + pending >= config.maxConnections) {
      metrics.limitViolations.inc({ limit: 'connections' });
      return refused(socket, 'capacity');
    }
    const token = bearer(req, url, config.wsQueryToken);
    if (!token) {
      metrics.authFailures.inc({ reason: 'token_missing' });
      return refused(socket, 'token_missing');
    }
    pending++;
    let claims: BranchClaims;
    try {
      claims = await ctx.tokens.verify(token);
      const view = await ctx.directory.forConnect(claims.tenantId, claims.branchId);
      if (!Directory.allows(view, claims.branchId)) {
        metrics.authFailures.inc({ reason: 'suspended' });
        return refused(socket, 'suspended');
      }
    } catch (err) {
      if (err instanceof TokenError) {
        metrics.authFailures.inc({ reason: err.reason });
        return refused(socket, err.reason);
      }
      ctx.logger.error({ err }, 'upgrade failed');
      return refused(socket, 'internal');
    } finally {
      pending--;
    }
    if (ctx.draining) return refused(socket, 'draining');
    // The 101 answer and the hello go out in one write: in a reconnect storm the hub spent
    // more time in socket writes than anywhere else, two per connection.
    socket.cork();
    wss.handleUpgrade(req, socket, head, (ws) => {
      const codec = codecForSubprotocol(ws.protocol) ?? codecForSubprotocol(undefined)!;
      metrics.connectionsOpened.inc();
      const conn = new Connection(ctx, ws, {
        tenantId: claims.tenantId,
        branchId: claims.branchId,
        exp: claims.exp,
        codec,
        remoteAddress: sourceAddress(req, config.trustProxy),
      });
      void conn.open().finally(() => socket.uncork());
    });
  };
}
