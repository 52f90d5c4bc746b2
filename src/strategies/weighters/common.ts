/** Pieces shared by the built-in weighters: a typed error, input checks, the loss mapping and state helpers. */
import { ComponentError } from '../component-error.ts'
import { l2NormalizeRows } from '../../math/stats.ts'
import type { Matrix } from '../types.ts'
import type { WeighContext } from '../weighter.ts'

export type WeighterErrorCode = 'no_eval_set' | 'bad_input' | 'bad_model_output' | 'not_ready' | 'bad_state'

/** A weighting that cannot be done: a missing eval set, a non-finite loss, weights asked for before any refresh. */
export class WeighterError extends ComponentError<WeighterErrorCode> {
  override readonly name = 'WeighterError'
}

/**
 * The Python DataFlex's weighters differentiate Σ_i c_i ℓ_i per micro-batch, divided by GA. Under the
 * `sample_mean` reduction (Σ_i w_i ℓ_i / B_G) that is w_i = c_i · B_G / M_G.
 */
export function summedLossWeights(ctx: WeighContext, c: ArrayLike<number>): Float64Array {
  const scale = ctx.groupSamples / ctx.groupMicro
  return Float64Array.from(c, (x) => x * scale)
}

/** The micro-batch's losses, refused when one is not finite (the sample's position and the step named). */
export function finiteLosses(weighter: string, ctx: WeighContext): Float32Array {
  const losses = ctx.losses
  for (let i = 0; i < losses.length; i++) {
    if (!Number.isFinite(losses[i]!)) {
      throw new WeighterError(weighter, 'bad_input', `loss of sample ${i} (training index ${ctx.indices[i]}) of micro-batch ${ctx.micro} at step ${ctx.step} is ${losses[i]}`)
    }
  }
  return losses
}

export interface Matrix64 {
  readonly data: Float64Array
  readonly rows: number
  readonly cols: number
}

/** A float64 copy of an embeddings matrix with `rows` finite rows, each divided by max(‖row‖, eps) when eps is given. */
export function embeddingRows(weighter: string, m: Matrix | undefined, rows: number, what: string, eps?: number): Matrix64 {
  if (m === undefined) throw new WeighterError(weighter, 'bad_input', `${what}: no embeddings arrived`)
  if (m.rows !== rows || m.data.length !== m.rows * m.cols || m.cols === 0) {
    throw new WeighterError(weighter, 'bad_model_output', `${what}: expected ${rows} embedding rows, got ${m.rows}×${m.cols} (${m.data.length} values)`)
  }
  const data = Float64Array.from(m.data)
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) throw new WeighterError(weighter, 'bad_model_output', `${what}: embedding row ${Math.floor(i / m.cols)} is not finite`)
  }
  if (eps !== undefined) l2NormalizeRows(data, rows, m.cols, eps)
  return { data, rows, cols: m.cols }
}

/** The state object a restore() receives, checked to be an object. */
export function stateObject(weighter: string, state: unknown): Record<string, unknown> {
  if (typeof state !== 'object' || state === null || Array.isArray(state)) throw new WeighterError(weighter, 'bad_state', 'state must be an object')
  return state as Record<string, unknown>
}

/** A state field that must be null or a non-empty list of finite numbers (`length` when given). */
export function stateVectorOrNull(weighter: string, state: Record<string, unknown>, key: string, length?: number): Float64Array | null {
  const v = state[key]
  if (v === null) return null
  const ok = Array.isArray(v) && v.length > 0 && (length === undefined || v.length === length) && v.every((x) => typeof x === 'number' && Number.isFinite(x))
  if (!ok) throw new WeighterError(weighter, 'bad_state', `state.${key} must be null or a list of ${length ?? 'finite'} numbers`)
  return Float64Array.from(v as number[])
}

/** A state field that must be null or an integer ≥ `min`. */
export function stateIntOrNull(weighter: string, state: Record<string, unknown>, key: string, min: number): number | null {
  const v = state[key]
  if (v === null) return null
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new WeighterError(weighter, 'bad_state', `state.${key} must be null or an integer ≥ ${min}`)
  return v
}
