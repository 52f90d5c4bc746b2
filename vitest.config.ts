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
    // Generous: tests spawn Python sidecars (torch import) on a 2-core machine.
    testTimeout: 120_000,
    hookTimeout: 90_000,
    teardownTimeout: 15_000,
    reporters: ['default', './test/summary-reporter.ts'],
  },
})
