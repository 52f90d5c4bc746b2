/**
 * `static` mixer (docs/algorithms.md#static): the same proportions at every update.
 *
 * Deliberate differences from the Python DataFlex:
 * - `proportions: null` means the run's initial proportions (`init_mixture_proportions`, else uniform), not always
 *   uniform.
 */
import { z } from 'zod'
import { defineMixer } from '../mixer.ts'
import { domainProportions, proportionsParam } from './common.ts'

export const StaticParams = z.strictObject({
  proportions: proportionsParam.describe('one weight per domain, in dataset order, normalised; null: the run\'s initial proportions'),
})

export const staticMixer = defineMixer({
  name: 'static',
  description: 'fixed domain proportions at every update',
  params: StaticParams,
  create(params, env) {
    const proportions = domainProportions('static', 'proportions', params.proportions, env.initial)
    return {
      mix: () => ({ proportions: Float64Array.from(proportions) }),
    }
  },
})
