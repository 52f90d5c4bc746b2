/**
 * `odm` mixer (docs/algorithms.md#odm): Online Data Mixing (Albalak et al. 2023), Exp3 over domains with an
 * exponential moving average of loss rewards.
 *
 * Deliberate differences from the Python DataFlex:
 * - The reward of a domain is its token-weighted mean training loss over every step since the last update, each
 *   sample's loss credited to its own domain. DataFlex used the loss of the last micro-batch only, credited to the
 *   domain of its first sample.
 * - `reward_estimator: full_information` (default) adds the reward unweighted. The paper's bandit estimator r/π
 *   (`importance_weighted`, DataFlex's only form) assumes one domain observed per round; with mixed windows every
 *   drawn domain is observed, and dividing by π inflates the rewards of rare domains. π is the policy the window
 *   was drawn with.
 * - No clip of R̂ to ±1e4, nor of the softmax exponent to [−5, 0] (the softmax subtracts its maximum instead, which
 *   changes nothing but overflow); no 1e−8 floor on π. A non-finite policy still resets to the initial proportions
 *   and clears R̂.
 * - `reward_scale` and `min_exploration_rate` can be set (DataFlex's registry never passed them on).
 */
import { z } from 'zod'
import { softmax } from '../../math/stats.ts'
import { defineMixer } from '../mixer.ts'
import { domainProportions, proportionsParam, stateObject, stateVector, timestamp, MixerError } from './common.ts'

const NAME = 'odm'

export const OdmParams = z.strictObject({
  alpha: z.number().min(0).max(1).default(0.9).describe('EMA weight of the past rewards: R̂ ← α·R̂ + (1−α)·r'),
  warmup_steps: z.int().nonnegative().default(2000).describe('global steps during which the initial proportions are kept'),
  reward_scale: z.number().positive().finite().default(15).describe('reward r = reward_scale × domain training loss'),
  min_exploration_rate: z.number().min(0).max(1).default(0.03).describe('floor ε_min of the exploration rate'),
  initial_proportions: proportionsParam.describe("proportions during the warm-up and the policy's start; null: the run's initial proportions"),
  reward_estimator: z
    .enum(['full_information', 'importance_weighted'])
    .default('full_information')
    .describe('full_information: r as observed; importance_weighted: r/π (the paper\'s bandit estimator)'),
})

/** The exploration rate after `t` post-warm-up steps with K domains. */
export function explorationRate(t: number, k: number, floor: number): number {
  return t <= 0 ? 1 / k : Math.max(floor, Math.min(1 / k, Math.sqrt(Math.log(k) / (k * t))))
}

export const odmMixer = defineMixer({
  name: NAME,
  description: 'Online Data Mixing: Exp3 over domains, rewarded by their training loss (EMA)',
  params: OdmParams,
  create(params, env) {
    const k = env.domains.length
    const names = env.domains.map((d) => d.name)
    const initial = domainProportions(NAME, 'initial_proportions', params.initial_proportions, env.initial)
    let policy: Float64Array = Float64Array.from(initial)
    let rewards: Float64Array = new Float64Array(k)
    let epsilon = 1 / k

    return {
      mix(ctx) {
        if (ctx.step <= params.warmup_steps) return { proportions: Float64Array.from(initial), info: { warmup: true } }
        const observed: string[] = []
        for (let d = 0; d < k; d++) {
          if (!(ctx.window.samples[d]! > 0 && ctx.window.tokens[d]! > 0)) continue
          let r = params.reward_scale * ctx.domainLosses[d]!
          if (params.reward_estimator === 'importance_weighted') r /= Math.max(policy[d]!, 1e-8)
          rewards[d] = params.alpha * rewards[d]! + (1 - params.alpha) * r
          observed.push(names[d]!)
        }
        const previous = epsilon
        epsilon = explorationRate(ctx.step - params.warmup_steps, k, params.min_exploration_rate)
        const soft = softmax(rewards.map((r) => previous * r))
        const explore = Math.max(0, 1 - k * epsilon)
        let next = soft.map((p) => explore * p + epsilon)
        let total = 0
        for (let d = 0; d < k; d++) total += next[d]!
        next = next.map((p) => p / total)
        let reset = false
        if (!next.every(Number.isFinite)) {
          ctx.log(`odm: non-finite policy at step ${ctx.step} (rewards ${Array.from(rewards).join(', ')}); reset to the initial proportions and cleared the rewards`)
          next = Float64Array.from(initial)
          rewards = new Float64Array(k)
          reset = true
        }
        policy = next
        return {
          proportions: Float64Array.from(policy),
          info: { estimated_rewards: Array.from(rewards), exploration_rate: epsilon, observed, ...(reset ? { reset } : {}) },
          records: [
            {
              file: 'odm_weights.jsonl',
              record: {
                step: ctx.step,
                timestamp: timestamp(),
                domain_names: names,
                domain_weights: Array.from(policy),
                estimated_rewards: Array.from(rewards),
                exploration_rate: epsilon,
                alpha: params.alpha,
              },
            },
          ],
        }
      },
      state: () => ({ policy: Array.from(policy), rewards: Array.from(rewards), epsilon }),
      restore(state) {
        const s = stateObject(NAME, state)
        const eps = s['epsilon']
        if (typeof eps !== 'number' || !(eps >= 0 && eps <= 1)) throw new MixerError(NAME, 'bad_state', 'state.epsilon must be a number in [0, 1]')
        policy = stateVector(NAME, s, 'policy', k)
        rewards = stateVector(NAME, s, 'rewards', k)
        epsilon = eps
      },
    }
  },
})
