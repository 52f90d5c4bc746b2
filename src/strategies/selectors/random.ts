/**
 * `random` selector (docs/algorithms.md#random): a uniform draw from the training pool, without the model.
 * DataFlex seeds each draw with `seed + step_id` (seed 42 by default). Here a set `seed` gives
 * Rng.derive(seed, 'random', step), and an unset one uses the decision's own stream (derived from the run seed),
 * so changing the training YAML's `seed:` changes the selections.
 */
import { z } from 'zod'
import { Rng } from '../../math/rng.ts'
import { uniformWithReplacement, uniformWithoutReplacement } from '../../math/sampling.ts'
import { defineSelector } from '../types.ts'

export const RandomParams = z.strictObject({
  seed: z.int().optional().describe('seed of the draws (default: the run seed)'),
  replacement: z.boolean().default(false).describe('draw i.i.d. with replacement instead of a random subset'),
})

export const RANDOM_SELECTOR = defineSelector({
  name: 'random',
  description: 'uniform random samples from the training pool (no model calls)',
  params: RandomParams,
  create(params, env) {
    return {
      async select(ctx) {
        const rng = params.seed === undefined ? ctx.rng : Rng.derive(params.seed, 'random', ctx.step)
        const draw = params.replacement ? uniformWithReplacement : uniformWithoutReplacement
        return { indices: draw(rng, env.numTrain, ctx.numSamples), info: { replacement: params.replacement } }
      },
    }
  },
})

export default RANDOM_SELECTOR
