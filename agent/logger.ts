import pino, { type Logger } from 'pino';
import type { LogLevel } from './config.js';

/** Paths that may hold a secret, at any of the depths the agent logs objects. */
export const REDACT = [
  'apiKey',
  'api_key',
  'token',
  'authorization',
  '*.apiKey',
  '*.api_key',
  '*.token',
  '*.authorization',
  '*.*.apiKey',
  '*.*.token',
  'headers.authorization',
  'req.headers.authorization',
  'config.apiKey',
];

/** JSON logs; secrets are replaced before anything is written. */
export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'hub-broker-agent' },
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination ? pino(options, destination) : pino(options);
}
