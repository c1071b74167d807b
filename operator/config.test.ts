import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULTS, loadConfig } from './config.js';

describe('operator configuration', () => {
  it('starts from the defaults', () => {
    expect(loadConfig([], {}).config).toEqual(DEFAULTS);
  });

  it('reads what the chart sets in the environment, then flags, which win', () => {
    const { config } = loadConfig(['--workers', '8', '--watch-namespace=shops'], {
      POD_NAMESPACE: 'hub-broker',
      POD_NAME: 'hub-broker-operator-5d8c-abcde',
      OPERATOR_HUB_IMAGE: 'ghcr.io/example/hub-broker:1.2.3',
      OPERATOR_WORKERS: '2',
      OPERATOR_RESYNC_SECONDS: '600',
      OPERATOR_LEADER_ELECTION: 'false',
      OPERATOR_WATCH_NAMESPACE: '',
    });
    expect(config).toMatchObject({
      namespace: 'hub-broker',
      identity: 'hub-broker-operator-5d8c-abcde',
      hubImage: 'ghcr.io/example/hub-broker:1.2.3',
      workers: 8,
      resyncMs: 600_000,
      leaderElection: false,
      watchNamespace: 'shops',
    });
  });

  it.each([
    [['--workers', 'many'], {}, '--workers: expected a number'],
    [['--workers', '0'], {}, 'workers must be at least 1'],
    [[], { OPERATOR_LEADER_ELECTION: 'maybe' }, 'OPERATOR_LEADER_ELECTION: expected true or false'],
    [['--bogus'], {}, "Unknown option '--bogus'"],
  ])('refuses %j %j', (argv, env, message) => {
    expect(() => loadConfig(argv, env)).toThrow(ConfigError);
    expect(() => loadConfig(argv, env)).toThrow(message);
  });

  it('notices --help', () => {
    expect(loadConfig(['-h'], {}).help).toBe(true);
  });
});
