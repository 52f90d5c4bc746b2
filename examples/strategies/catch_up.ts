/**
 * A mixer for `train_type: dynamic_mix`, "catch up": at every update, measure the model's mean loss on held-out rows
 * of each domain and draw more of the domains it is worst at: p_d ∝ p0_d · exp(L_d / temperature), with a floor of
 * `floor` / k for every domain so none is starved (p0: the run's initial proportions, k: the number of domains).
 */
import { defineMixer } from 'dataflex-ts'
import { z } from 'zod'

export default defineMixer({
  name: 'catch_up',
  description: 'more of the domains with the highest held-out loss: p ∝ p0 · exp(loss / temperature), floored',
  params: z.strictObject({
    temperature: z.number().positive().default(1).describe('softmax temperature of the held-out losses'),
    floor: z.number().min(0).max(1).default(0.2).describe('share spread uniformly over the domains'),
    held_out: z.int().min(1).default(8).describe('rows per domain held out of training to measure the loss on'),
  }),
  create(params, env) {
    const k = env.domains.length
    return {
      // Rows per domain kept out of the training draws; each update receives them as ctx.heldOut.
      heldOut: params.held_out,
      async mix(ctx) {
        const losses = new Float64Array(k)
        for (let d = 0; d < k; d++) {
          const rows = ctx.heldOut[d]!
          const perRow = await ctx.model.losses(rows.split, rows.indices)
          losses[d] = perRow.reduce((sum, l) => sum + l, 0) / perRow.length
        }
        // Subtracting the largest exponent changes nothing after normalising, and keeps exp() finite.
        const top = Math.max(...losses)
        const tilt = Float64Array.from(losses, (l, d) => env.initial[d]! * Math.exp((l - top) / params.temperature))
        const total = tilt.reduce((a, b) => a + b, 0)
        const proportions = Float64Array.from(tilt, (w) => (1 - params.floor) * (w / total) + params.floor / k)
        return { proportions, info: { held_out_loss: Array.from(losses) } }
      },
    }
  },
})
