/**
 * `loss` weighter (docs/algorithms.md#loss-weighter): dynamic loss-based sample reweighting (Sow et al., ICLR 2025).
 * Each micro-batch's losses are mapped onto [−δ, δ], shaped by a strategy and turned into a softmax over the
 * micro-batch, so the samples the strategy favours get more of the loss.
 *
 * Deliberate differences from the Python DataFlex:
 * - The softmax temperature r is a param (`temperature`, default 1); DataFlex fixes r = 1.
 * - A non-finite loss is an error (DataFlex lets NaN through into every weight).
 */
import { z } from 'zod'
import { softmax } from '../../math/stats.ts'
import { defineWeighter } from '../weighter.ts'
import { finiteLosses, summedLossWeights } from './common.ts'

const NAME = 'loss'

export const LossWeighterParams = z.strictObject({
  strategy: z
    .enum(['linupper', 'uniform', 'quadratic', 'extremes'])
    .default('linupper')
    .describe('shape a(ŝ) of the scaled loss ŝ ∈ [−δ, δ]: linupper min(ŝ+δ, δ), uniform ŝ (not uniform weights), quadratic 1 − ŝ²/δ², extremes |ŝ|'),
  delta: z.number().positive().finite().default(1.0).describe('δ: the scaled losses span [−δ, δ]'),
  temperature: z.number().positive().finite().default(1.0).describe('r: weights = softmax(a / r) over the micro-batch (DataFlex fixes r = 1)'),
})

export type LossStrategy = z.output<typeof LossWeighterParams>['strategy']

/** The strategy's value a for each loss of one micro-batch. */
export function strategyValues(losses: ArrayLike<number>, strategy: LossStrategy, delta: number): Float64Array {
  let lo = Infinity
  let hi = -Infinity
  for (let i = 0; i < losses.length; i++) {
    lo = Math.min(lo, losses[i]!)
    hi = Math.max(hi, losses[i]!)
  }
  const den = Math.max(hi - lo, 1e-6)
  return Float64Array.from(losses, (l) => {
    const s = (2 * delta * l) / den - (delta * (hi + lo)) / den
    switch (strategy) {
      case 'linupper':
        return Math.min(s + delta, delta)
      case 'uniform':
        return s
      case 'quadratic':
        return 1 - (s * s) / (delta * delta)
      case 'extremes':
        return Math.abs(s)
    }
  })
}

export const lossWeighter = defineWeighter({
  name: NAME,
  description: 'softmax over the micro-batch of a shaped, range-normalised loss (Sow et al. 2025)',
  params: LossWeighterParams,
  create(params) {
    return {
      reduction: 'sample_mean',
      weigh(ctx) {
        const losses = finiteLosses(NAME, ctx)
        const shares = softmax(strategyValues(losses, params.strategy, params.delta), params.temperature)
        return { weights: summedLossWeights(ctx, shares) }
      },
    }
  },
})
