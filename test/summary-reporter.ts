/**
 * Prints one plain line at the end of a run, `vitest: N passed, N failed, N skipped`, which CI reads
 * (the default reporter's summary is coloured and formatted for people).
 */
import type { Reporter, SerializedError, TestModule } from 'vitest/node'

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>): void {
    let passed = 0
    let failed = 0
    let skipped = 0
    for (const mod of modules) {
      let moduleFailures = 0
      for (const test of mod.children.allTests()) {
        const state = test.result().state
        if (state === 'passed') passed++
        else if (state === 'failed') moduleFailures++
        else skipped++
      }
      // A file that failed outside any test (import error, failing hook) still counts as a failure.
      if (moduleFailures === 0 && mod.state() === 'failed') moduleFailures = 1
      failed += moduleFailures
    }
    failed += unhandledErrors.length
    process.stdout.write(`\nvitest: ${passed} passed, ${failed} failed, ${skipped} skipped\n`)
  }
}
