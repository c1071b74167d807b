/** `hub-broker hub [--config file] [--flag value …]`: runs one hub instance until SIGTERM/SIGINT. */
import { ConfigError, EXIT_CONFIG, loadConfig, SETTINGS } from '../../hub/config.js';

export function help(): string {
  const width = Math.max(...SETTINGS.map((s) => s.flag.length)) + 8;
  const lines = SETTINGS.map((s) => `  ${`${s.flag} <value>`.padEnd(width)}${s.env}; default ${s.defaultText}\n  ${' '.repeat(width)}${s.description}`);
  return [
    'Usage: hub-broker hub [--config file.yaml] [options]',
    '',
    'Runs the relay: HTTP + WebSocket server for branch agents, /auth/token, /health, /ready,',
    '/metrics and the admin API under /admin/. Settings come from the YAML file (keys as in',
    'config/hub.example.yaml), then the environment, then these options (last one wins).',
    'Without REDIS_URL the hub runs as a single instance; with it, several instances share one Redis.',
    '',
    'Options:',
    `  ${'--config <file>'.padEnd(width)}YAML file with settings`,
    `  ${'--help'.padEnd(width)}show this help`,
    ...lines,
    '',
    `Exit codes: 0 after a graceful shutdown (SIGTERM or SIGINT), ${EXIT_CONFIG} for a bad or missing setting`,
    '(one line on stderr names it), 1 when start-up fails otherwise (e.g. the database is unreachable).',
  ].join('\n');
}

export async function run(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    console.log(help());
    return 0;
  }
  let config;
  try {
    config = loadConfig({ argv: args, env: process.env });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`hub-broker hub: invalid setting ${err.message}`);
      return EXIT_CONFIG;
    }
    throw err;
  }
  const { startHub } = await import('../../hub/app.js');
  let app;
  try {
    app = await startHub(config);
  } catch (err) {
    console.error(`hub-broker hub: start-up failed: ${(err as Error).message.split('\n')[0]}`);
    return 1;
  }
  const started = app;
  return new Promise<number>((resolve) => {
    let signalled = false;
    const shutdown = (signal: string) => {
      if (signalled) {
        // A second signal: stop waiting for sockets.
        process.exit(1);
      }
      signalled = true;
      started.ctx.logger.info({ signal }, 'shutting down');
      started.stop().then(
        () => resolve(0),
        (err: unknown) => {
          started.ctx.logger.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
  });
}
