/** Pieces shared by the built-in selectors: a typed error, model-output checks, state encoding, param helpers. */
import { ComponentError } from '../component-error.ts'
import { z } from 'zod'
import type { LossOptions, Matrix } from '../types.ts'

export type SelectorErrorCode =
  | 'no_eval_data'
  | 'no_finite_losses'
  | 'insufficient_candidates'
  | 'bad_model_output'
  | 'bad_state'

/** A selection that cannot be made (as opposed to bad params, which the registry reports as config errors). */
export class SelectorError extends ComponentError<SelectorErrorCode> {
  override readonly name = 'SelectorError'
}

export function allIndices(n: number): Int32Array {
  const out = new Int32Array(n)
  for (let i = 0; i < n; i++) out[i] = i
  return out
}

export function range(start: number, end: number): Int32Array {
  const out = new Int32Array(Math.max(0, end - start))
  for (let i = 0; i < out.length; i++) out[i] = start + i
  return out
}

/** Model ops run in another process: check what came back before trusting its shape. */
export function checkLosses(selector: string, losses: Float32Array, expected: number): Float32Array {
  if (losses.length !== expected) {
    throw new SelectorError(selector, 'bad_model_output', `losses returned ${losses.length} values for ${expected} samples`)
  }
  return losses
}

export function checkMatrix(selector: string, m: Matrix, rows: number, cols?: number): Matrix {
  if (m.rows !== rows || (cols !== undefined && m.cols !== cols) || m.data.length !== m.rows * m.cols) {
    const want = cols === undefined ? `${rows} rows` : `${rows}×${cols}`
    throw new SelectorError(selector, 'bad_model_output', `expected a ${want} matrix, got ${m.rows}×${m.cols} (${m.data.length} values)`)
  }
  return m
}

/** Typed arrays in checkpoint state: base64 of the little-endian bytes (exact, and ~4× smaller than JSON numbers). */
export function encodeArray(a: Float32Array | Int32Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64')
}

function decodeBytes(s: string, bytesPer: number, what: string): ArrayBuffer {
  const buf = Buffer.from(s, 'base64')
  if (buf.length % bytesPer !== 0) throw new RangeError(`${what}: ${buf.length} bytes is not a whole number of items`)
  return new Uint8Array(buf).buffer
}

export function decodeFloat32(s: string): Float32Array {
  return new Float32Array(decodeBytes(s, 4, 'float32 state'))
}

export function decodeInt32(s: string): Int32Array {
  return new Int32Array(decodeBytes(s, 4, 'int32 state'))
}

/**
 * `cache_dir` as DataFlex's components.yaml gives it. The trainer takes it out of a preset's params before this schema
 * sees them (presets.ts) and uses it as the root of the strategy's cache folder (docs/select.md#configure); listed
 * here so the schema knows the key.
 */
export const cacheDirParam = z
  .string()
  .nullish()
  .describe("root of this preset's cache folder (default <output_dir>/dataflex/cache); handled by the trainer")

/** Python None-defaulted params: `null` or absent. */
export function nullableDefault<T extends z.ZodType>(schema: T) {
  return schema.nullable().default(null)
}

/** DataFlex 1.1's `score_batch_size` of the loss-based selectors, as a cap on rows per forward. */
export const scoreBatchSizeParam = nullableDefault(z.int().positive()).describe(
  'most rows per scoring forward (DataFlex 1.1 key); default: length-sorted batches sized by padded tokens',
)

/** `ModelOps.losses` options from `score_batch_size`. */
export function lossOptions(scoreBatchSize: number | null): LossOptions {
  return scoreBatchSize === null ? {} : { maxBatchRows: scoreBatchSize }
}

/** Milliseconds since `t0` (performance.now), rounded for logs. */
export function since(t0: number): number {
  return Math.round(performance.now() - t0)
}
