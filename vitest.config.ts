import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  // Example strategies import their helpers as users do: from the package (tsconfig.json maps it the same way).
  resolve: { alias: { 'dataflex-ts': fileURLToPath(new URL('./src/index.ts', import.meta.url)) } },
  test: {
    // The example strategies' unit tests run with the rest (docs/authoring.md).
    include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
    // Removes each test file's temporary folders when it ends.
    setupFiles: ['./test/cleanup.ts'],
    // forks, not threads: a zeromq socket torn down inside a worker thread can abort the whole run.
    pool: 'forks',
    // One torch thread per sidecar: test files train several sidecars at once on 2 cores, and OpenMP threads that
    // spin-wait for a busy core make an oversubscribed run 2-3x slower (test/reorder-e2e.test.ts: 240 s -> 111 s).
    // A value the caller sets wins.
    env: { OMP_NUM_THREADS: process.env['OMP_NUM_THREADS'] ?? '1' },
    // Generous: tests spawn Python sidecars (torch import) on a 2-core machine.
    testTimeout: 120_000,
    hookTimeout: 90_000,
    teardownTimeout: 15_000,
    reporters: ['default', './test/summary-reporter.ts'],
  },
})
