/** Which hub `hub-broker admin` asks, and with which admin token: flags first, then the environment. */
import { readFileSync } from 'node:fs';
import { AdminClient, adminBaseUrl, isLoopback } from '../../admin-client.js';
import { UsageError, type Flags } from './args.js';

export interface ConnectIo {
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  readonly fetch?: typeof fetch;
}

function adminToken(flags: Flags, io: ConnectIo): string {
  const flag = flags.value('admin-token');
  const file = flags.value('admin-token-file');
  if (flag !== undefined && file !== undefined) throw new UsageError('give --admin-token or --admin-token-file, not both');
  let token: string | undefined;
  if (flag !== undefined) {
    io.err('hub-broker admin: warning: --admin-token is visible to other users in the process list; prefer HUB_ADMIN_TOKEN or --admin-token-file\n');
    token = flag;
  } else if (file !== undefined) {
    try {
      token = readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read --admin-token-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  } else {
    token = io.env.HUB_ADMIN_TOKEN;
  }
  token = token?.trim();
  if (!token) throw new UsageError('no admin token: set HUB_ADMIN_TOKEN or use --admin-token-file');
  return token;
}

export function connect(flags: Flags, io: ConnectIo): AdminClient {
  const rawUrl = flags.value('hub-url') ?? io.env.HUB_URL;
  if (!rawUrl) throw new UsageError('no hub URL: set HUB_URL or use --hub-url');
  let baseUrl;
  try {
    baseUrl = adminBaseUrl(rawUrl);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const token = adminToken(flags, io);
  if (baseUrl.protocol === 'http:' && !isLoopback(baseUrl)) {
    io.err(`hub-broker admin: warning: sending the admin token unencrypted to ${baseUrl.host}; use https outside a trusted network\n`);
  }
  return new AdminClient({ baseUrl, token, ...(io.fetch ? { fetch: io.fetch } : {}) });
}
