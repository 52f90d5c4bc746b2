/**
 * `random` mixer (docs/algorithms.md#random-mixer): fresh random proportions at every update, u ~ U(0,1)^k, p = u/Σu.
 *
 * Deliberate differences from the Python DataFlex:
 * - Each update draws anew. DataFlex reseeds NumPy's global generator with the same seed at every call, so its
 *   "random" proportions are identical at every update (and it disturbs every other user of that generator).
 * - `seed` is optional: a set seed draws from Rng.derive(seed, 'random_mixer', step), an unset one from the
 *   decision's own stream (derived from the run seed).
 */
import { z } from 'zod'
import { Rng } from '../../math/rng.ts'
import { defineMixer } from '../mixer.ts'
import { normalize } from './common.ts'

export const RandomMixerParams = z.strictObject({
  seed: z.int().optional().describe('seed of the draws (default: the run seed)'),
})

export const randomMixer = defineMixer({
  name: 'random',
  description: 'random domain proportions, drawn anew at every update (no model calls)',
  params: RandomMixerParams,
  create(params, env) {
    const k = env.domains.length
    return {
      mix(ctx) {
        const rng = params.seed === undefined ? ctx.rng : Rng.derive(params.seed, 'random_mixer', ctx.step)
        const u = new Float64Array(k)
        // U(0,1): 1 − [0,1) keeps every draw positive, so the sum cannot be 0.
        for (let i = 0; i < k; i++) u[i] = 1 - rng.float()
        return { proportions: normalize(u) }
      },
    }
  },
})
