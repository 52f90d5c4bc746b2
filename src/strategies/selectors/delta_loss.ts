/**
 * `delta_loss` selector (docs/algorithms.md#delta_loss): a curriculum over the loss improvement Δ_i = ℓ⁰_i − ℓ_i.
 * The first update of a flex-epoch measures ℓ⁰ and selects at random; later updates rank samples by Δ
 * (most improved first) and favour a window that slides along that ranking on a sigmoid schedule.
 *
 * Deliberate differences from the Python DataFlex:
 * - ℓ⁰ is re-measured at the first update of every flex-epoch (DataFlex measured it once per run, so later
 *   flex-epochs started with a delta selection at x = 0).
 * - update_times = 1 is fine: the only update is the initial pass (DataFlex divided by zero on later epochs).
 *   Should a delta pass ever see update_times ≤ 1, x is taken as 1.
 * - ℓ⁰ lives in state()/restore(), not in a JSON file found through a path remembered in memory.
 * - Randomness comes from the run's per-step Rng (ctx.rng), not a fixed seed 42 (+ step).
 * - Non-finite Δ (a non-finite loss) ranks last and counts as "not improved" for the window cut-off.
 * - When more samples are requested than exist, sampling is with replacement (as DataFlex's delta pass);
 *   its initial pass returned fewer than requested instead.
 * - No per-step JSON cache: `cache_dir` only sets where the trainer's cache folder is, and nothing is written there.
 */
import { z } from 'zod'
import { uniformWithReplacement, uniformWithoutReplacement, weightedWithReplacement, weightedWithoutReplacement } from '../../math/sampling.ts'
import { argsortDesc } from '../../math/topk.ts'
import { defineSelector } from '../types.ts'
import {
  SelectorError,
  allIndices,
  cacheDirParam,
  checkLosses,
  decodeFloat32,
  encodeArray,
  lossOptions,
  scoreBatchSizeParam,
  since,
} from './common.ts'

const NAME = 'delta_loss'
/** Sigmoid steepness and out-of-window probability weight: fixed constants in DataFlex. */
const STEEPNESS = 10
const BASE_WEIGHT = 0.025

export const DeltaLossParamsSchema = z.strictObject({
  cache_dir: cacheDirParam,
  window_size: z.number().gt(0).max(1).default(0.2).describe('window width as a fraction of the training set'),
  score_batch_size: scoreBatchSizeParam,
})
export type DeltaLossParams = z.output<typeof DeltaLossParamsSchema>

export interface DeltaWindow {
  /** Schedule position in [0, 1] and its sigmoid. */
  readonly x: number
  readonly sigma: number
  /** Window over ranking positions [start, end), before the Δ<0 cut-off. */
  readonly start: number
  readonly end: number
}

/** Window for update `current` (1-based) of `total` over n ranked samples. */
export function deltaWindow(current: number, total: number, n: number, windowSize: number): DeltaWindow {
  const x = total > 1 ? Math.min(1, Math.max(0, (current - 1) / (total - 1))) : 1
  const sigma = 1 / (1 + Math.exp(-STEEPNESS * (x - 0.5)))
  const width = windowSize * n
  const start = Math.floor(sigma * (n - width))
  const end = Math.min(n, Math.floor(sigma * (n - width) + width))
  return { x, sigma, start, end }
}

export interface DeltaDistribution extends DeltaWindow {
  /** Samples ordered by Δ, largest first (ties by lower index, non-finite last). */
  readonly order: Int32Array
  /** End of the window after cutting at the first Δ < 0. */
  readonly cutEnd: number
  readonly probs: Float64Array
}

/** Sampling distribution of a delta pass: weight 1 inside the window, 0.025 elsewhere, normalised. */
export function deltaProbabilities(delta: ArrayLike<number>, current: number, total: number, windowSize: number): DeltaDistribution {
  const n = delta.length
  const keyed = new Float64Array(n)
  for (let i = 0; i < n; i++) keyed[i] = Number.isFinite(delta[i]!) ? delta[i]! : -Infinity
  const order = argsortDesc(keyed)
  const win = deltaWindow(current, total, n, windowSize)
  let cutEnd = win.end
  for (let p = 0; p < n; p++) {
    if (keyed[order[p]!]! < 0) {
      cutEnd = Math.min(cutEnd, p)
      break
    }
  }
  const probs = new Float64Array(n).fill(BASE_WEIGHT)
  for (let p = win.start; p < cutEnd; p++) probs[order[p]!] = 1
  let total_ = 0
  for (let i = 0; i < n; i++) total_ += probs[i]!
  for (let i = 0; i < n; i++) probs[i] = probs[i]! / total_
  return { ...win, order, cutEnd, probs }
}

const StateSchema = z.strictObject({
  version: z.literal(1),
  flex_epoch: z.int().min(0),
  initial_losses: z.string().describe('base64 float32'),
})

export const deltaLossSelector = defineSelector({
  name: NAME,
  description: 'Curriculum over loss improvement since the start of the flex-epoch, with a sliding sigmoid window',
  params: DeltaLossParamsSchema,
  create(params, env) {
    let initial: Float32Array | null = null
    let initialEpoch = -1

    return {
      async select(ctx) {
        const t0 = performance.now()
        const n = ctx.model.numTrain
        const losses = checkLosses(NAME, await ctx.model.losses('train', allIndices(n), lossOptions(params.score_batch_size)), n)
        const lossMs = since(t0)
        const k = ctx.numSamples
        const replacement = k > n
        if (replacement) ctx.log(`${NAME}: ${k} samples requested from ${n}; sampling with replacement`)

        const initialPass = ctx.updateIndex <= 1 || initial === null || initialEpoch !== ctx.flexEpoch
        if (initialPass) {
          if (ctx.updateIndex > 1) {
            ctx.log(`${NAME}: no initial losses for flex-epoch ${ctx.flexEpoch} (update ${ctx.updateIndex}); measuring them now`)
          }
          initial = Float32Array.from(losses)
          initialEpoch = ctx.flexEpoch
          const indices = replacement ? uniformWithReplacement(ctx.rng, n, k) : uniformWithoutReplacement(ctx.rng, n, k)
          const scores = new Float32Array(indices.length)
          for (let i = 0; i < indices.length; i++) scores[i] = losses[indices[i]!]!
          return {
            indices,
            scores,
            metric: 'loss',
            info: { method: 'delta_loss', phase: 'initial', replacement, timing_ms: { losses: lossMs, total: since(t0) } },
          }
        }

        const base = initial
        if (base === null || base.length !== n) {
          throw new SelectorError(NAME, 'bad_state', `initial losses cover ${base?.length ?? 0} samples, the training set has ${n}`)
        }
        const delta = new Float64Array(n)
        for (let i = 0; i < n; i++) delta[i] = base[i]! - losses[i]!
        const dist = deltaProbabilities(delta, ctx.updateIndex, ctx.updateTimes, params.window_size)
        const indices = replacement
          ? weightedWithReplacement(ctx.rng, dist.probs, k)
          : weightedWithoutReplacement(ctx.rng, dist.probs, k)
        const scores = new Float64Array(indices.length)
        for (let i = 0; i < indices.length; i++) scores[i] = delta[indices[i]!]!
        let improved = 0
        for (let i = 0; i < n; i++) if (delta[i]! > 0) improved++
        return {
          indices,
          scores,
          metric: 'delta_loss',
          info: {
            method: 'delta_loss',
            phase: 'delta',
            x: dist.x,
            sigma: dist.sigma,
            window: [dist.start, dist.cutEnd],
            window_uncut_end: dist.end,
            improved,
            replacement,
            timing_ms: { losses: lossMs, total: since(t0) },
          },
        }
      },

      state() {
        if (initial === null) return null
        return { version: 1, flex_epoch: initialEpoch, initial_losses: encodeArray(initial) } satisfies z.input<typeof StateSchema>
      },

      restore(state) {
        if (state === null || state === undefined) {
          initial = null
          initialEpoch = -1
          return
        }
        const parsed = StateSchema.safeParse(state)
        if (!parsed.success) throw new SelectorError(NAME, 'bad_state', `unreadable state: ${parsed.error.message}`)
        let losses: Float32Array
        try {
          losses = decodeFloat32(parsed.data.initial_losses)
        } catch (err) {
          throw new SelectorError(NAME, 'bad_state', 'corrupt initial losses in state', { cause: err })
        }
        if (losses.length !== env.numTrain) {
          throw new SelectorError(NAME, 'bad_state', `state has ${losses.length} initial losses, the training set has ${env.numTrain}`)
        }
        initial = losses
        initialEpoch = parsed.data.flex_epoch
      },
    }
  },
})
