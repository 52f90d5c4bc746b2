/**
 * Atomic writes: the bytes go to a temporary file in the target's folder, then rename() replaces the target in
 * one step, so a selector never reads a half-written .npy and an interrupted prepare leaves the old file intact.
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { encodeNpy, type NpyDtype } from '../strategies/npy.ts'

export function writeAtomic(path: string, bytes: Uint8Array | string): void {
  const dir = dirname(path)
  mkdirSync(dir, { recursive: true })
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`)
  try {
    writeFileSync(tmp, bytes)
    renameSync(tmp, path)
  } catch (err) {
    rmSync(tmp, { force: true })
    throw err
  }
}

export function writeNpyAtomic(
  path: string,
  data: Float32Array | Float64Array | Int32Array,
  shape: readonly number[],
  dtype?: NpyDtype,
): void {
  writeAtomic(path, encodeNpy(data, shape, dtype))
}

/** The JSON record that sits next to `<out>`: `<out>.json`. */
export function metaPath(out: string): string {
  return `${out}.json`
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeAtomic(path, JSON.stringify(value, null, 2) + '\n')
}
