/**
 * Atomic writes: the bytes go to a temporary file in the target's folder, then rename() replaces the target in
 * one step, so a reader never sees a half-written file and an interrupted write leaves the old file intact.
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'

/** Writes `bytes` to `path` atomically, creating the folder if needed. */
export function writeFileAtomic(path: string, bytes: Uint8Array | string): void {
  const dir = dirname(path)
  mkdirSync(dir, { recursive: true })
  // Same folder (rename() cannot cross file systems); pid + random suffix: concurrent writers never share a temp file.
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`)
  try {
    writeFileSync(tmp, bytes)
    renameSync(tmp, path)
  } catch (err) {
    rmSync(tmp, { force: true })
    throw err
  }
}

/** Pretty-printed JSON with a final newline, written atomically. */
export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n')
}
