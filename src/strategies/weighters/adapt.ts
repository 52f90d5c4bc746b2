/**
 * `adapt` weighter (docs/algorithms.md#adapt): ADAPT online reweighting. A sample's weight is a tempered sigmoid of
 * its mean cosine similarity to the eval set (the anchors), from position-weighted mean-pooled last hidden states.
 * Since the mean of ⟨φ, A_m⟩ over the anchors is ⟨φ, ā⟩, only the anchors' mean ā is kept.
 *
 * Deliberate differences from the Python DataFlex:
 * - The micro-batch's embeddings come from its training forward (train mode, no second forward); the same as
 *   DataFlex's extra no-grad forward when dropout is 0.
 * - The anchors are embedded in eval mode once per refresh, before the step (DataFlex embeds them in train mode, on
 *   every micro-batch of a refresh step and on every process), and a refresh comes `refresh_interval` steps after
 *   the previous one (DataFlex: at every global step divisible by it).
 * - `reduce: mean` turns the weights into absolute weights on the plain mean; `sum` (default) is DataFlex's sum.
 */
import { z } from 'zod'
import { meanRows, rowDot } from '../../math/linalg.ts'
import { defineWeighter } from '../weighter.ts'
import { embeddingRows, stateIntOrNull, stateObject, stateVectorOrNull, summedLossWeights, WeighterError } from './common.ts'

const NAME = 'adapt'

export const AdaptParams = z.strictObject({
  tau: z.number().positive().finite().default(1.0).describe('temperature τ: a = sigmoid(score / τ); smaller separates the weights more'),
  refresh_interval: z.int().min(1).default(50).describe('steps between two refreshes of the anchors with the current model'),
  anchor_batch_size: z.int().min(1).default(8).describe('eval rows per forward when embedding the anchors'),
  clip: z.number().positive().finite().nullable().default(null).describe('upper bound on a sample weight a ∈ (0, 1); null: none'),
  eps: z.number().positive().finite().default(1e-8).describe('floor of the norms an embedding is divided by'),
  reduce: z
    .enum(['sum', 'mean'])
    .default('sum')
    .describe("sum: DataFlex's loss Σ a_i ℓ_i per micro-batch; mean: a_i weights the plain mean of the sample losses"),
})

/** Position-weighted mean pooling of the last layer, normalised here with ADAPT's own eps. */
const EMBEDDINGS = { layer: -1, pooling: 'position_weighted', normalize: false } as const

export const adaptWeighter = defineWeighter({
  name: NAME,
  description: 'ADAPT: sigmoid of the mean cosine similarity of a sample to the eval-set anchors',
  params: AdaptParams,
  create(params, env) {
    if (env.numEval === 0) throw new WeighterError(NAME, 'no_eval_set', 'ADAPT needs an eval set as its anchors: set eval_dataset in the training config')
    const numEval = env.numEval
    let anchorMean: Float64Array | null = null
    let refreshedAt: number | null = null

    return {
      reduction: 'sample_mean',
      embeddings: EMBEDDINGS,
      refresh: {
        every: params.refresh_interval,
        async run(ctx) {
          const indices = Int32Array.from({ length: numEval }, (_, i) => i)
          const raw = await ctx.model.embeddings('eval', indices, { ...EMBEDDINGS, batchSize: params.anchor_batch_size })
          const anchors = embeddingRows(NAME, raw, numEval, `anchors at step ${ctx.step}`, params.eps)
          anchorMean = meanRows(anchors)
          refreshedAt = ctx.step
          return { info: { anchors: numEval } }
        },
      },
      weigh(ctx) {
        if (anchorMean === null) throw new WeighterError(NAME, 'not_ready', `no anchors at step ${ctx.step}: the weighter was asked for weights before its first refresh`)
        const n = ctx.losses.length
        const phi = embeddingRows(NAME, ctx.embeddings, n, `micro-batch ${ctx.micro} at step ${ctx.step}`, params.eps)
        if (phi.cols !== anchorMean.length) {
          throw new WeighterError(NAME, 'bad_model_output', `embeddings of ${phi.cols} dimensions at step ${ctx.step}, anchors of ${anchorMean.length}`)
        }
        const tau = Math.max(params.tau, params.eps)
        const a = new Float64Array(n)
        let scoreSum = 0
        for (let b = 0; b < n; b++) {
          const score = rowDot(phi, b, anchorMean)
          scoreSum += score
          const w = 1 / (1 + Math.exp(-score / tau))
          a[b] = params.clip === null ? w : Math.min(w, params.clip)
        }
        return {
          weights: params.reduce === 'sum' ? summedLossWeights(ctx, a) : a,
          info: { mean_score: scoreSum / n },
        }
      },
      state: () => ({ anchor_mean: anchorMean === null ? null : Array.from(anchorMean), refreshed_at: refreshedAt }),
      restore(state) {
        const s = stateObject(NAME, state)
        const mean = stateVectorOrNull(NAME, s, 'anchor_mean')
        const at = stateIntOrNull(NAME, s, 'refreshed_at', 0)
        if ((mean === null) !== (at === null)) throw new WeighterError(NAME, 'bad_state', 'state.anchor_mean and state.refreshed_at must both be set or both be null')
        anchorMean = mean
        refreshedAt = at
      },
    }
  },
})
