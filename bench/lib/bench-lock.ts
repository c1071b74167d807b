/**
 * One benchmark at a time on a machine: the benchmark re-runs its own command under
 * `flock /tmp/hub-broker-bench.lock` (unless HUB_BENCH_LOCKED=1, set for that re-run), so two
 * benchmarks started together never measure each other.
 */
import { spawnSync } from 'node:child_process';

export const BENCH_LOCK = '/tmp/hub-broker-bench.lock';

/**
 * Runs `main` under the lock and exits with its outcome; on an error prints it and runs
 * `cleanup` (children and databases the benchmark started) first.
 */
export async function runUnderBenchLock(main: () => Promise<void>, cleanup: () => Promise<void>): Promise<void> {
  if (process.env.HUB_BENCH_LOCKED !== '1') {
    const probe = spawnSync('flock', ['-n', BENCH_LOCK, 'true']);
    if (probe.status !== 0) console.error(`waiting for ${BENCH_LOCK} (another benchmark is running)…`);
    const r = spawnSync('flock', [BENCH_LOCK, process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
      stdio: 'inherit',
      env: { ...process.env, HUB_BENCH_LOCKED: '1' },
    });
    if (r.error) {
      console.error(`cannot run flock (${r.error.message}); set HUB_BENCH_LOCKED=1 to run without the lock`);
      process.exitCode = 1;
    } else {
      process.exitCode = r.status ?? 1;
    }
    return;
  }
  await main().catch(async (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    await cleanup();
    process.exitCode = 1;
  });
  // Nothing of ours is left running; keep-alive sockets of fetch must not hold the exit.
  process.exit(process.exitCode ?? 0);
}
