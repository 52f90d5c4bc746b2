/**
 * `doremi` mixer (docs/algorithms.md#doremi): DoReMi's step 2 (Xie et al. 2023, Algorithm 1). Domain weights α are
 * updated by exponentiated gradient ascent on each domain's excess loss over a reference model; the proxy samples
 * domains uniformly and the weights act on the loss (`lossWeights`).
 *
 * Deliberate differences from the Python DataFlex:
 * - λ is the excess loss over every trained token since the last update (the trainer's per-micro-batch excess sums),
 *   not over one micro-batch recomputed after the step.
 * - No centring of λ and no clip at ±5 (the paper has neither; centring cancels in the normalisation anyway when
 *   every domain is present). A domain with no sample in the window takes the mean λ of the present ones, so its
 *   weight moves only through the normalisation (DataFlex gave it 0 after centring).
 * - Loss weights are k·α (1 for every domain while α is uniform): DataFlex multiplied by α itself, which scales the
 *   loss by about 1/k.
 */
import { z } from 'zod'
import { defineMixer } from '../mixer.ts'
import { MixerError, pyFloat, stateObject, stateVector, stateVectors, timestamp } from './common.ts'

const NAME = 'doremi'

export const DoremiParams = z.strictObject({
  reference_model_path: z
    .string()
    .min(1)
    .meta({ path: 'model' })
    .nullable()
    .default(null)
    .describe("DoReMi step 1's model (a local folder); null: λ is the plain training loss"),
  reweight_eta: z.number().positive().finite().default(1.0).describe('step size η of the domain-weight update'),
  reweight_eps: z.number().min(0).max(1).default(1e-3).describe('smoothing c towards uniform: α ← (1−c)·α\'/Σα\' + c/k'),
})

/** One DoReMi update: λ (absent domains imputed with the mean of the present ones) and the new α. */
export function doremiStep(alpha: Float64Array, scores: Float64Array, present: readonly boolean[], eta: number, c: number): { lambda: Float64Array; alpha: Float64Array } {
  const k = alpha.length
  let sum = 0
  let n = 0
  for (let i = 0; i < k; i++) if (present[i]) (sum += scores[i]!), n++
  const fill = sum / n
  const lambda = Float64Array.from(scores, (s, i) => (present[i] ? s : fill))
  // exp(η(λ − max λ)): the shift cancels in the normalisation and keeps exp from overflowing.
  let top = -Infinity
  for (let i = 0; i < k; i++) top = Math.max(top, lambda[i]!)
  const raw = Float64Array.from(alpha, (a, i) => a * Math.exp(eta * (lambda[i]! - top)))
  let total = 0
  for (let i = 0; i < k; i++) total += raw[i]!
  return { lambda, alpha: Float64Array.from(raw, (a) => ((1 - c) * a) / total + c / k) }
}

export const doremiMixer = defineMixer({
  name: NAME,
  description: "DoReMi: domain weights by exponentiated excess loss over a reference model, applied to the loss; uniform sampling",
  params: DoremiParams,
  create(params, env) {
    const k = env.domains.length
    const names = env.domains.map((d) => d.name)
    let alpha: Float64Array = new Float64Array(k).fill(1 / k)
    let history: Float64Array[] = []
    const uniform = () => new Float64Array(k).fill(1 / k)

    const average = (): Float64Array => {
      if (history.length === 0) return Float64Array.from(alpha)
      const mean = new Float64Array(k)
      for (const a of history) for (let i = 0; i < k; i++) mean[i] = mean[i]! + a[i]! / history.length
      let total = 0
      for (let i = 0; i < k; i++) total += mean[i]!
      return mean.map((m) => m / total)
    }

    return {
      ...(params.reference_model_path === null ? {} : { referenceModel: params.reference_model_path }),
      mix(ctx) {
        const w = ctx.window
        const excess = params.reference_model_path === null ? undefined : w.excessSum
        if (params.reference_model_path !== null && excess === undefined) {
          throw new MixerError(NAME, 'bad_model_output', 'a reference model is set but the window carries no excess losses')
        }
        if (excess === undefined && history.length === 0) ctx.log('doremi: no reference model; λ is the plain token-mean training loss')
        const present = Array.from(w.tokens, (t) => t > 0)
        if (!present.some(Boolean)) {
          ctx.log('doremi: no trained tokens since the last update; domain weights unchanged')
          return { proportions: uniform(), info: { skipped: 'empty window' } }
        }
        const sums = excess ?? w.lossSum
        const scores = Float64Array.from(sums, (s, i) => (present[i] ? s / w.tokens[i]! : 0))
        const next = doremiStep(alpha, scores, present, params.reweight_eta, params.reweight_eps)
        alpha = next.alpha
        history.push(Float64Array.from(alpha))
        return {
          proportions: uniform(),
          info: { domain_weights: Array.from(alpha), scores: Array.from(next.lambda), excess: excess !== undefined, absent: present.filter((p) => !p).length },
          records: [
            {
              file: 'doremi_weights.jsonl',
              record: { step: ctx.step, timestamp: timestamp(), domain_names: names, domain_weights: Array.from(alpha), perdomain_scores: Array.from(next.lambda) },
            },
          ],
        }
      },
      lossWeights: () => (history.length === 0 ? undefined : alpha.map((a) => a * k)),
      finish() {
        const avg = average()
        const json = { description: 'DoReMi Step 2: average domain weights for Step 3', update_times: history.length, domain_names: names, average_weights: Array.from(avg) }
        const lines = ['# DoReMi Step 3 proportions', `# proportions: [${Array.from(avg, pyFloat).join(', ')}]`, ...names.map((n, i) => `${n}: ${avg[i]!.toFixed(6)}`)]
        return { 'doremi_average_weights.json': JSON.stringify(json, null, 2), 'doremi_step3_proportions.txt': lines.join('\n') + '\n' }
      },
      state: () => ({ alpha: Array.from(alpha), history: history.map((a) => Array.from(a)) }),
      restore(state) {
        const s = stateObject(NAME, state)
        alpha = stateVector(NAME, s, 'alpha', k)
        history = stateVectors(NAME, s, 'history', k)
      },
    }
  },
})
