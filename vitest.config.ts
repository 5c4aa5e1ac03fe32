import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests bind real ports on 127.0.0.1:0; forks keep grpc-js state per file.
    pool: 'forks',
    // The run's temp files all go under one directory, removed at the end (test/helpers/temp-root.ts).
    globalSetup: ['test/helpers/temp-root.ts'],
    // Each test process works in a temp directory: defaults that write relative paths (the ledger) land there.
    setupFiles: ['test/helpers/temp-cwd.ts'],
  },
});
