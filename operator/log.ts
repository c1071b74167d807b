/** JSON logs (pino). Keys and tokens never reach a log line: the operator does not log them, and redaction catches slips. */
import { pino, type Logger } from 'pino';

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { component: 'hub-broker-operator' },
    redact: {
      paths: ['apiKey', '*.apiKey', 'API_KEY', '*.API_KEY', '*.data.API_KEY', 'token', '*.token', 'password', '*.password', 'databaseUrl', '*.databaseUrl'],
      censor: '[redacted]',
    },
  });
}
