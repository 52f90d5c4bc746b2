/**
 * `dynamic_moe` mixer (docs/algorithms.md#dynamic_moe): for mixture-of-experts models, domains whose expert routing
 * differs most from the others' get more weight. Per domain, the expert loads on fixed held-out rows; Δ_i = mean
 * distance of its normalised load to every domain's; w ← smoothed softmax(log w + ηΔ).
 *
 * Deliberate differences from the Python DataFlex:
 * - Loads come from the executor's router statistics of every MoE layer (any architecture with a router), averaged
 *   over layers after normalising each (`layers: all`, default), or of the last layer only (`layers: last`, what
 *   DataFlex read from LLaMA-MoE's `gate_load`). A model without routers is an error, not a silent uniform load.
 * - Held-out rows are drawn from the run's seeded stream, and held out of every draw of training samples (DataFlex's
 *   split left its sampler able to index past the shrunken domain).
 */
import { z } from 'zod'
import { uniformWithoutReplacement } from '../../math/sampling.ts'
import { defineMixer, type HeldOut } from '../mixer.ts'
import type { RouterLoads } from '../types.ts'
import { MixerError, byName, normalize, stateObject, stateVector, timestamp } from './common.ts'

const NAME = 'dynamic_moe'

export const DynamicMoeParams = z.strictObject({
  eta: z.number().nonnegative().finite().default(10).describe('step size η on the routing divergence Δ'),
  c: z.number().min(0).max(1).default(0.05).describe('smoothing towards uniform: w ← (1−c)·α + c/K'),
  collect_steps: z.int().positive().default(10).describe('eval batches per domain (rows = collect_steps × eval_batch_size)'),
  eval_samples: z.int().positive().default(1000).describe('training rows held out per domain without a mixer_eval_dataset'),
  eval_batch_size: z.int().positive().default(32).describe('rows per eval batch'),
  layers: z.enum(['all', 'last']).default('all').describe('MoE layers whose loads count: all (averaged) or the last one'),
})

/**
 * A domain's per-expert load distribution: each used layer's loads summed over rows [from, to) (default: all),
 * normalised, averaged over layers.
 */
export function domainLoad(r: RouterLoads, layers: 'all' | 'last', from = 0, to = r.loads.rows): Float64Array {
  const { loads, experts } = r
  const first = layers === 'last' ? r.layers - 1 : 0
  const out = new Float64Array(experts)
  for (let l = first; l < r.layers; l++) {
    const sums = new Float64Array(experts)
    for (let row = from; row < to; row++) {
      const base = row * loads.cols + l * experts
      for (let e = 0; e < experts; e++) sums[e] = sums[e]! + loads.data[base + e]!
    }
    let total = 0
    for (let e = 0; e < experts; e++) total += sums[e]!
    for (let e = 0; e < experts; e++) out[e] = out[e]! + (total > 0 ? sums[e]! / total : 1 / experts)
  }
  const used = r.layers - first
  return out.map((v) => v / used)
}

/** Δ_i = mean over all domains j (i included) of ‖O_i − O_j‖₂. */
export function divergence(loads: readonly Float64Array[]): Float64Array {
  const k = loads.length
  return Float64Array.from(loads, (a) => {
    let sum = 0
    for (const b of loads) {
      let sq = 0
      for (let e = 0; e < a.length; e++) sq += (a[e]! - b[e]!) ** 2
      sum += Math.sqrt(sq)
    }
    return sum / k
  })
}

function checkLoads(r: RouterLoads, rows: number, domains: string): RouterLoads {
  const { loads, layers, experts } = r
  if (!(layers > 0 && experts > 0) || loads.rows !== rows || loads.cols !== layers * experts || loads.data.length !== rows * loads.cols) {
    throw new MixerError(NAME, 'bad_model_output', `router loads of domains ${domains}: expected ${rows} rows × (layers·experts), got ${loads.rows}×${loads.cols} for ${layers} layers × ${experts} experts (${loads.data.length} values)`)
  }
  return r
}

export const dynamicMoeMixer = defineMixer({
  name: NAME,
  description: 'dynamic mixing for MoE models: up-weights domains whose expert routing differs most from the others',
  params: DynamicMoeParams,
  create(params, env) {
    const k = env.domains.length
    const names = env.domains.map((d) => d.name)
    let weights: Float64Array = Float64Array.from(env.initial)
    /** Per domain, positions into ctx.heldOut[i].indices chosen at the first update. */
    let chosen: Int32Array[] | undefined

    return {
      heldOut: params.eval_samples,
      async mix(ctx) {
        if (ctx.heldOut.length !== k) throw new MixerError(NAME, 'no_held_out', `expected held-out rows for ${k} domains, got ${ctx.heldOut.length}`)
        if (chosen === undefined) {
          const per = params.collect_steps * params.eval_batch_size
          chosen = ctx.heldOut.map((h: HeldOut, i) => {
            if (h.indices.length === 0) throw new MixerError(NAME, 'no_held_out', `domain '${names[i]}' has no held-out rows (set mixer_eval_dataset or give it at least 2 rows)`)
            return uniformWithoutReplacement(ctx.rng, h.indices.length, Math.min(h.indices.length, per))
          })
        }
        // One router_loads call per split (all domains' rows of the training split together): the executor's fixed
        // cost per call (eval mode, RNG, collation) is paid once, and eval_batch_size rows go through each forward.
        const rows = chosen.map((pick, i) => {
          const h = ctx.heldOut[i]!
          return Int32Array.from(pick, (p) => {
            if (p >= h.indices.length) throw new MixerError(NAME, 'bad_state', `domain '${names[i]}' has ${h.indices.length} held-out rows, fewer than at the first update`)
            return h.indices[p]!
          })
        })
        const gate: Float64Array[] = new Array(k)
        for (const split of new Set(ctx.heldOut.map((h) => h.split))) {
          const members = ctx.heldOut.flatMap((h, i) => (h.split === split ? [i] : []))
          const all = new Int32Array(members.reduce((n, i) => n + rows[i]!.length, 0))
          let at = 0
          for (const i of members) {
            all.set(rows[i]!, at)
            at += rows[i]!.length
          }
          const got = checkLoads(await ctx.model.routerLoads(split, all, { batchSize: params.eval_batch_size }), all.length, members.map((i) => names[i]).join(', '))
          at = 0
          for (const i of members) {
            gate[i] = domainLoad(got, params.layers, at, at + rows[i]!.length)
            at += rows[i]!.length
          }
        }
        const delta = divergence(gate)
        const logits = Float64Array.from(weights, (w, i) => Math.log(w + 1e-10) + params.eta * delta[i]!)
        let top = -Infinity
        for (const x of logits) top = Math.max(top, x)
        const alpha = normalize(logits.map((x) => Math.exp(x - top)))
        weights = normalize(alpha.map((a) => (1 - params.c) * a + params.c / k))
        return {
          proportions: Float64Array.from(weights),
          info: { delta: Array.from(delta), alpha: Array.from(alpha), rows: chosen.map((p) => p.length) },
          records: [
            {
              file: 'dynamic_moe_weights.jsonl',
              record: {
                step: ctx.step,
                timestamp: timestamp(),
                domain_names: names,
                gate_loads: Object.fromEntries(names.map((n, i) => [n, Array.from(gate[i]!)])),
                delta: byName(names, delta),
                alpha: byName(names, alpha),
                new_weights: byName(names, weights),
                eta: params.eta,
                c: params.c,
              },
            },
          ],
        }
      },
      state: () => ({ weights: Array.from(weights), ...(chosen === undefined ? {} : { chosen: chosen.map((p) => Array.from(p)) }) }),
      restore(state) {
        const s = stateObject(NAME, state)
        weights = stateVector(NAME, s, 'weights', k)
        const c = s['chosen']
        if (c === undefined) {
          chosen = undefined
          return
        }
        if (!Array.isArray(c) || c.length !== k) throw new MixerError(NAME, 'bad_state', `state.chosen must be a list of ${k} lists`)
        chosen = c.map((p: unknown, i) => {
          if (!Array.isArray(p) || !p.every((x) => Number.isInteger(x) && x >= 0)) {
            throw new MixerError(NAME, 'bad_state', `state.chosen[${i}] must be a list of row positions`)
          }
          return Int32Array.from(p as number[])
        })
      },
    }
  },
})
