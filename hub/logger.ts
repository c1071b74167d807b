import pino from 'pino';
import type { LogLevel } from './config.js';

/**
 * Paths never written to a log: credentials in headers and bodies, tokens, key hashes.
 * Messages are built from typed values, so these cover every place a secret could appear.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'api_key',
  'apiKey',
  'token',
  'key_hash',
  'keyHash',
  'prev_key_hash',
  'password',
  'adminToken',
  'databaseUrl',
  'redisUrl',
  'redisPassword',
  'redisSentinelPassword',
  'sentinelPassword',
  '*.api_key',
  '*.apiKey',
  '*.token',
  '*.key_hash',
  '*.keyHash',
  '*.password',
  '*.adminToken',
  '*.databaseUrl',
  '*.redisUrl',
  '*.redisPassword',
  '*.redisSentinelPassword',
  '*.sentinelPassword',
];

export type Logger = pino.Logger;

export function createLogger(level: LogLevel, base: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { service: 'hub-broker', ...base },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}

/** A URL for logs: path only, since query strings may carry `access_token`. */
export function loggablePath(url: string | undefined): string {
  if (!url) return '';
  const q = url.indexOf('?');
  return q === -1 ? url : `${url.slice(0, q)}?…`;
}
