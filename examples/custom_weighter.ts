/**
 * An example user strategy for `train_type: dynamic_weight`, loaded by path from the components config:
 *
 *   weighters:
 *     outlier_guard:
 *       name: custom
 *       params:
 *         path: ../examples/custom_weighter.ts   # the working directory first, then the components file's folder
 *         max_ratio: 3.0
 *
 * "Outlier guard": the plain training loss (every weight 1, the Python DataFlex's template weighter), except that a
 * sample whose loss exceeds `max_ratio` × the micro-batch's median loss is weighted down to contribute as if its
 * loss were exactly that bound. One mislabelled or garbled sample then cannot dominate a step's gradient, and
 * ordinary samples train exactly as without a weighter.
 *
 * `weigh` is called once per micro-batch after the warm-up, with the per-sample losses of the training forward
 * itself; the trainer multiplies each sample's term of the loss by the returned weight. `reduction: 'token_mean'`
 * keeps Hugging Face's loss (tokens of the whole accumulation group averaged), so weights of 1 change nothing.
 *
 * The file needs no runtime imports: the default export is a function that receives zod, defineWeighter and the
 * seeded Rng from DataFlex. The `import type` line below is erased when the file is loaded; it only gives editors
 * the types (from a copy elsewhere, point it at your DataFlex checkout or drop it).
 */
import type { WeighterKit } from '../src/strategies/user-files.ts'

export default ({ z, defineWeighter }: WeighterKit) =>
  defineWeighter({
    name: 'outlier_guard',
    description: 'the plain loss, with samples above max_ratio × the micro-batch median loss capped at that bound',
    params: z.strictObject({
      max_ratio: z.number().min(1).nullable().default(3).describe('cap a sample loss at max_ratio × the median; null: every weight 1'),
    }),
    create(params) {
      return {
        reduction: 'token_mean',
        weigh(ctx) {
          const weights = new Float32Array(ctx.losses.length).fill(1)
          if (params.max_ratio === null) return { weights }
          const sorted = Float64Array.from(ctx.losses).sort()
          const mid = sorted.length >> 1
          const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
          // A median of 0 (most samples already perfect) gives no scale to judge the others by.
          const bound = params.max_ratio * median
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
      }
    },
  })
