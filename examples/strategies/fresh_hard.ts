/**
 * A selector for `train_type: dynamic_select`, "fresh and hard": at every decision, score a random candidate pool by
 * the current model's loss, discounted by how often each sample was already selected, and keep the best. Hard
 * samples get attention, but no sample is hammered window after window.
 */
import { defineSelector } from 'dataflex-ts'
import { z } from 'zod'

export default defineSelector({
  name: 'fresh_hard',
  description: 'highest loss on a random pool, discounted by how often a sample was already picked',
  params: z.strictObject({
    pool_factor: z.int().min(1).default(4).describe('candidates scored per selected sample'),
    novelty: z.number().min(0).default(1).describe('score = loss / (1 + times_picked)^novelty'),
  }),
  create(params, env) {
    const picked = new Int32Array(env.numTrain)
    return {
      async select(ctx) {
        const poolSize = Math.min(env.numTrain, params.pool_factor * ctx.numSamples)
        // A random candidate pool from this decision's seeded stream.
        const pool = ctx.rng.permutation(env.numTrain).slice(0, poolSize)
        const losses = await ctx.model.losses('train', pool)
        const score = new Float64Array(poolSize)
        for (let i = 0; i < poolSize; i++) {
          const loss = Number.isFinite(losses[i]!) ? losses[i]! : -Infinity
          score[i] = loss / Math.pow(1 + picked[pool[i]!]!, params.novelty)
        }
        // Best scores first; ties by sample index so the choice never depends on sort stability.
        const order = Array.from({ length: poolSize }, (_, i) => i).sort((a, b) => score[b]! - score[a]! || pool[a]! - pool[b]!)
        const take = order.slice(0, ctx.numSamples)
        const indices = Int32Array.from(take, (i) => pool[i]!)
        for (const i of indices) picked[i]! += 1
        ctx.log(`scored ${poolSize} candidates, kept ${indices.length}`)
        return {
          indices,
          scores: Float64Array.from(take, (i) => score[i]!),
          info: { pool: poolSize, repeats: indices.reduce((n, i) => n + (picked[i]! > 1 ? 1 : 0), 0) },
        }
      },
      // What a checkpoint keeps, so that --resume continues with the same counts.
      state: () => ({ picked: Array.from(picked) }),
      restore(state) {
        const saved = (state as { picked?: number[] }).picked
        if (Array.isArray(saved) && saved.length === picked.length) picked.set(saved)
      },
    }
  },
})
