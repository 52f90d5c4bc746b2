/**
 * Temporary folders for tests, removed when the test file ends (test/cleanup.ts, a vitest setup file, registers
 * that), so a full run leaves nothing in the system temp folder.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const created: string[] = []

/** A fresh `dfx-<prefix>-XXXXXX` folder in the system temp folder, removed after this test file. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `dfx-${prefix}-`))
  created.push(dir)
  return dir
}

export function removeTempDirs(): void {
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true, maxRetries: 3 })
}
