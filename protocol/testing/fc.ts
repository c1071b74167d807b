import type fc from 'fast-check';

/**
 * Shared fast-check settings: every property runs at least 1000 times in CI.
 *
 * A failing property reports its counterexample with `{ seed: …, path: "…" }`. To replay exactly
 * that case (no new random runs, no shrinking), run the one test with both values:
 *
 *   FC_SEED=-1819918769 FC_PATH="12:3:0" npx vitest run protocol/convergence.test.ts -t 'converge'
 *
 * `FC_NUM_RUNS` overrides the number of runs, e.g. for a soak: `FC_NUM_RUNS=100000 npx vitest run protocol`.
 */
export function fcParams<T = void>(extra: fc.Parameters<T> = {}): fc.Parameters<T> {
  const env = process.env;
  const params: fc.Parameters<T> = { numRuns: 1000, ...extra };
  if (env.FC_NUM_RUNS) params.numRuns = Number(env.FC_NUM_RUNS);
  if (env.FC_SEED) {
    params.seed = Number(env.FC_SEED);
    if (env.FC_PATH) {
      params.path = env.FC_PATH;
      params.endOnFailure = true;
    }
  }
  return params;
}
