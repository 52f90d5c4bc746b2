/**
 * `loss` selector (docs/algorithms.md#loss): per-sample losses split into low/medium/high buckets by two
 * quantiles; the focused bucket gets `focus_weight` times the weight; p ∝ w^(1/temperature); sample.
 *
 * Deliberate differences from the Python DataFlex:
 * - Randomness comes from the run's per-step Rng (ctx.rng), not a fixed seed 42 + step.
 * - Samples with a non-finite loss get probability exactly 0 (DataFlex's +1e-12 gave them a tiny chance and
 *   kept its "fewer candidates than requested → sample with replacement" switch from ever firing). Finite
 *   samples use w^(1/T) without the ε, a relative change below 1e-12.
 * - The switch to replacement, when it fires, is logged.
 * - No per-step JSON cache: decisions are logged and replayable by the trainer (`cache_dir` only sets where the
 *   trainer's cache folder is; this selector writes nothing there). The trainer saves each selection with its
 *   losses (metric 'loss') in DataFlex's step_N.json layout (selection-file.ts).
 */
import { z } from 'zod'
import { weightedWithReplacement, weightedWithoutReplacement } from '../../math/sampling.ts'
import { quantiles as quantilesOf } from '../../math/stats.ts'
import { defineSelector } from '../types.ts'
import { SelectorError, allIndices, cacheDirParam, checkLosses, lossOptions, scoreBatchSizeParam, since } from './common.ts'

const NAME = 'loss'

const unit = z.number().min(0).max(1)

export const LossParamsSchema = z.strictObject({
  cache_dir: cacheDirParam,
  focus: z.enum(['low', 'medium', 'high']).default('high').describe('the loss bucket to favour'),
  focus_weight: z.number().positive().default(5.0).describe('weight multiplier of the focused bucket'),
  quantiles: z
    .tuple([unit, unit])
    .default([0.33, 0.66])
    .refine(([a, b]) => a <= b, { message: 'quantiles must be ascending, e.g. [0.33, 0.66]' })
    .describe('bucket boundaries as loss quantiles (torch.quantile, linear)'),
  replacement: z.boolean().default(false).describe('sample with replacement'),
  temperature: z.number().positive().default(1.0).describe('p ∝ weight^(1/temperature)'),
  score_batch_size: scoreBatchSizeParam,
})
export type LossParams = z.output<typeof LossParamsSchema>

export interface LossDistribution {
  /** Normalised sampling probabilities, one per sample (0 for non-finite losses). */
  readonly probs: Float64Array
  readonly q1: number
  readonly q2: number
  readonly low: number
  readonly medium: number
  readonly high: number
  readonly nonFinite: number
}

/** The loss selector's sampling distribution over all samples (exported for tests and reports). */
export function probabilities(
  losses: ArrayLike<number>,
  params: Pick<LossParams, 'focus' | 'focus_weight' | 'quantiles' | 'temperature'>,
): LossDistribution {
  const n = losses.length
  const finite = new Float64Array(n)
  let m = 0
  for (let i = 0; i < n; i++) if (Number.isFinite(losses[i]!)) finite[m++] = losses[i]!
  if (m === 0) return { probs: new Float64Array(n), q1: NaN, q2: NaN, low: 0, medium: 0, high: 0, nonFinite: n }
  const qs = quantilesOf(finite.subarray(0, m), params.quantiles)
  const q1 = qs[0]!
  const q2 = qs[1]!
  const focused = params.focus === 'low' ? 0 : params.focus === 'medium' ? 1 : 2
  const inv = 1 / params.temperature
  const boosted = params.focus_weight ** inv
  const probs = new Float64Array(n)
  const counts = [0, 0, 0]
  let total = 0
  for (let i = 0; i < n; i++) {
    const l = losses[i]!
    if (!Number.isFinite(l)) continue
    const bucket = l <= q1 ? 0 : l <= q2 ? 1 : 2
    counts[bucket]!++
    // (1 · focus_weight?)^(1/T): base weight 1 stays 1 under any temperature.
    const w = bucket === focused ? boosted : 1
    probs[i] = w
    total += w
  }
  for (let i = 0; i < n; i++) probs[i] = probs[i]! / total
  return { probs, q1, q2, low: counts[0]!, medium: counts[1]!, high: counts[2]!, nonFinite: n - m }
}

export const lossSelector = defineSelector({
  name: NAME,
  description: 'Sample by per-sample loss, favouring the low, medium or high loss bucket',
  params: LossParamsSchema,
  create(params) {
    return {
      async select(ctx) {
        const t0 = performance.now()
        const n = ctx.model.numTrain
        const losses = checkLosses(NAME, await ctx.model.losses('train', allIndices(n), lossOptions(params.score_batch_size)), n)
        const lossMs = since(t0)
        const dist = probabilities(losses, params)
        const candidates = n - dist.nonFinite
        if (candidates === 0) throw new SelectorError(NAME, 'no_finite_losses', `all ${n} losses are non-finite`)
        let replacement = params.replacement
        if (!replacement && ctx.numSamples > candidates) {
          ctx.log(`loss: ${ctx.numSamples} samples requested but only ${candidates} have a finite loss; sampling with replacement`)
          replacement = true
        }
        const indices = replacement
          ? weightedWithReplacement(ctx.rng, dist.probs, ctx.numSamples)
          : weightedWithoutReplacement(ctx.rng, dist.probs, ctx.numSamples)
        const scores = new Float32Array(indices.length)
        for (let i = 0; i < indices.length; i++) scores[i] = losses[indices[i]!]!
        return {
          indices,
          scores,
          metric: 'loss',
          info: {
            method: 'loss',
            focus: params.focus,
            focus_weight: params.focus_weight,
            temperature: params.temperature,
            quantiles: [dist.q1, dist.q2],
            buckets: { low: dist.low, medium: dist.medium, high: dist.high },
            non_finite: dist.nonFinite,
            replacement,
            timing_ms: { losses: lossMs, total: since(t0) },
          },
        }
      },
    }
  },
})
