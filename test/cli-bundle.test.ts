// The CLI runs from an esbuild bundle of src/ that rebuilds itself when a source changes (bin/cli-bundle.mjs).
import { statSync, utimesSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { bundleIsFresh, cliBundle } from '../bin/cli-bundle.mjs'
import { REPO_ROOT } from '../src/bridge/python.ts'

describe('CLI bundle', () => {
  it('is stale exactly while an input differs from what it was built from', async () => {
    const url = await cliBundle()
    expect(url).toMatch(/\/dist\/cli\/main\.mjs$/)
    expect(bundleIsFresh()).toBe(true)
    const input = join(REPO_ROOT, 'src', 'cli', 'main.ts')
    const { atime, mtime } = statSync(input)
    // Back in time, so no build records it as "edited during the build"; the content is untouched.
    utimesSync(input, atime, new Date(mtime.getTime() - 5000))
    expect(bundleIsFresh()).toBe(false)
    await cliBundle()
    expect(bundleIsFresh()).toBe(true)
  })
})
