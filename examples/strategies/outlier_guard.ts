/**
 * A weighter for `train_type: dynamic_weight`, "outlier guard": the plain training loss (every weight 1), except that
 * a sample whose loss exceeds `max_ratio` × a reference loss is weighted down to contribute as if its loss were
 * exactly that bound. One mislabelled or garbled sample then cannot dominate a step's gradient, and ordinary samples
 * train exactly as without a weighter. The reference is the micro-batch's median loss, or (`anchor: eval`) the mean
 * loss on the eval set, measured between steps every `refresh_every` steps.
 */
import { defineWeighter } from 'dataflex-ts'
import { z } from 'zod'

function median(values: Float32Array): number {
  const sorted = Float64Array.from(values).sort()
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export default defineWeighter({
  name: 'outlier_guard',
  description: 'the plain loss, with samples above max_ratio × a reference loss capped at that bound',
  params: z.strictObject({
    max_ratio: z.number().min(1).nullable().default(3).describe('cap a sample loss at max_ratio × the reference; null: every weight 1'),
    anchor: z.enum(['median', 'eval']).default('median').describe("the reference: the micro-batch's median loss, or the eval set's mean loss"),
    refresh_every: z.int().min(1).default(10).describe('anchor eval: steps between measurements of the eval loss'),
  }),
  create(params, env) {
    // Refused here, before training starts: a config error naming the preset.
    if (params.anchor === 'eval' && env.numEval === 0) throw new Error('anchor: eval needs an eval set (set eval_dataset)')
    let evalLoss = Number.NaN
    return {
      // Hugging Face's loss (tokens of the whole accumulation group averaged): weights of 1 change nothing.
      reduction: 'token_mean',
      // Model ops run between optimizer steps, never inside one: before the first weighted step, then every N steps.
      ...(params.anchor === 'eval' && {
        refresh: {
          every: params.refresh_every,
          async run(ctx) {
            const losses = await ctx.model.losses('eval', Int32Array.from({ length: env.numEval }, (_, i) => i))
            evalLoss = losses.reduce((sum, l) => sum + l, 0) / losses.length
            return { info: { eval_loss: evalLoss } }
          },
        },
      }),
      weigh(ctx) {
        const weights = new Float32Array(ctx.losses.length).fill(1)
        if (params.max_ratio === null) return { weights }
        const reference = params.anchor === 'eval' ? evalLoss : median(ctx.losses)
        // A reference of 0 (most samples already perfect) gives no scale to judge the others by.
        const bound = params.max_ratio * reference
        let guarded = 0
        if (bound > 0) {
          for (let i = 0; i < ctx.losses.length; i++) {
            const loss = ctx.losses[i]!
            if (loss > bound) {
              weights[i] = bound / loss
              guarded++
            }
          }
        }
        // `info` goes into the step's decision-log line: keep it to a few small numbers.
        return { weights, info: { guarded } }
      },
      state: () => ({ eval_loss: evalLoss }),
      restore(state) {
        evalLoss = (state as { eval_loss: number | null }).eval_loss ?? Number.NaN
      },
    }
  },
})
