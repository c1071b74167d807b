import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{common,protocol,hub,agent,operator,cli,demo,test}/**/*.test.ts'],
    // Test files run in parallel processes; each gets its own database and Redis prefix
    // from test/support, so they never see each other's data.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    globalSetup: ['test/support/global-setup.ts'],
  },
});
