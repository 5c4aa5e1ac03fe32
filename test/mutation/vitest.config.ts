// The test run Stryker mutates against (test/mutation/stryker.config.json; README "Mutation testing"). It differs
// from vitest.config.ts in two ways Stryker needs: worker threads (its runner's pool), where process.chdir is not
// allowed, so no temp-cwd setup file (the suites named here write nothing relative); and only the suites that
// test the module being mutated, since each mutant reruns them. TIERGATE_MUTATION_TESTS (comma-separated globs)
// picks them; the default covers the money path: prices, usage and ledger rows.
import { defineConfig } from 'vitest/config';

const DEFAULT = [
  'test/unit/price-table.test.ts',
  'test/unit/usage-extraction.test.ts',
  'test/unit/content-encoding.test.ts',
  'test/integration/ledger-rows.test.ts',
  'test/integration/ledger-rollup.test.ts',
  'test/integration/forced-usage.test.ts',
];

export default defineConfig({
  test: {
    include: process.env.TIERGATE_MUTATION_TESTS?.split(',') ?? DEFAULT,
    // TIERGATE_MUTATION_TEST_NAMES (a regex over test names) leaves out tests too slow to rerun for every mutant:
    // e.g. '^(?!.*every byte offset)' for the SSE suite's quadratic split test, over 30 s once sse-parser.ts is
    // instrumented.
    ...(process.env.TIERGATE_MUTATION_TEST_NAMES ? { testNamePattern: process.env.TIERGATE_MUTATION_TEST_NAMES } : {}),
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // As in the main config: the run's temp files under one directory, removed when the run ends. Stryker reruns
    // the suites for every mutant, so without it the suites' spool and ledger directories stayed in /tmp after every rerun.
    globalSetup: ['test/helpers/temp-root.ts'],
  },
});
