/**
 * `joint_update_aware` weighter (docs/algorithms.md#joint_update_aware): weights on the simplex that trade alignment
 * with a target direction u against redundancy between the micro-batch's samples,
 *   max_w  sᵀw − (β/2) wᵀSw + τ H(w),  s = Z u, S = Z Zᵀ,
 * solved by the damped fixed point w ← (1−ρ) w + ρ softmax((s − β S w) / τ).
 *
 * As the Python DataFlex: u is the mean raw embedding of the next `target_num_batches` eval batches (batches of
 * `target_batch_size` rows in eval-set order, wrapping around; the whole eval set from its start when ≤ 0), unit-
 * normalised when `embed_normalize`, and refreshed every `target_update_step` steps. Without an eval set u is the
 * mean of the first micro-batch's z rows at each such refresh point, kept until the next one.
 *
 * Deliberate differences from the Python DataFlex:
 * - The micro-batch's embeddings come from its training forward (train mode, no second forward); the same as
 *   DataFlex's extra eval-mode forward when dropout is 0.
 * - The eval target is computed between steps by the executor's embeddings op (eval mode, as DataFlex).
 */
import { z } from 'zod'
import { matVec, meanRows, rowDot } from '../../math/linalg.ts'
import { l2NormalizeRows, softmax } from '../../math/stats.ts'
import { defineWeighter } from '../weighter.ts'
import { embeddingRows, stateIntOrNull, stateObject, stateVectorOrNull, summedLossWeights, WeighterError, type Matrix64 } from './common.ts'

const NAME = 'joint_update_aware'
const NORM_EPS = 1e-12

export const JointUpdateAwareParams = z.strictObject({
  beta: z.number().min(0).finite().default(0.1).describe('β: strength of the redundancy term −(β/2) wᵀSw'),
  tau: z.number().positive().finite().default(0.05).describe('τ: entropy temperature; smaller gives sharper weights'),
  fixed_point_iters: z.int().min(1).default(5).describe('damped fixed-point iterations per micro-batch'),
  damping: z.number().gt(0).max(1).default(1.0).describe('ρ ∈ (0, 1]: w ← (1−ρ) w + ρ softmax(…); 1 is undamped'),
  target_update_step: z.int().min(1).default(50).describe('steps between two refreshes of the target direction u'),
  target_batch_size: z.int().min(1).default(1).describe('eval rows per batch (and per forward) of the target'),
  target_num_batches: z.int().default(1).describe('eval batches averaged per refresh, continuing where the last stopped; ≤ 0: the whole eval set'),
  embed_normalize: z.boolean().default(true).describe('unit-normalise the embeddings z and the target u'),
  pooling: z
    .enum(['last_token', 'mean_pool'])
    .default('last_token')
    .describe('last_token: the last attended position; mean_pool: the mean over the response tokens'),
  embed_layer: z.int().default(-1).describe('hidden-state layer (Python indexing: -1 is the last)'),
  objective_mode: z
    .enum(['full', 'align_only', 'diverse_only', 'uniform'])
    .default('full')
    .describe('full: s − βSw; align_only: s; diverse_only: −βSw; uniform: w = 1/n'),
})

type Params = z.output<typeof JointUpdateAwareParams>

/** The damped fixed point on one micro-batch; `change` is ‖w_k − w_{k−1}‖₁ of the last iteration. */
export function solveWeights(s: Float64Array, gram: Float64Array, p: Pick<Params, 'beta' | 'tau' | 'fixed_point_iters' | 'damping' | 'objective_mode'>): { weights: Float64Array; change: number } {
  const n = s.length
  let w = new Float64Array(n).fill(1 / n)
  if (p.objective_mode === 'uniform') return { weights: w, change: 0 }
  let change = 0
  const g = new Float64Array(n)
  for (let k = 0; k < p.fixed_point_iters; k++) {
    for (let i = 0; i < n; i++) {
      let sw = 0
      if (p.objective_mode !== 'align_only') for (let j = 0; j < n; j++) sw += gram[i * n + j]! * w[j]!
      g[i] = p.objective_mode === 'align_only' ? s[i]! : p.objective_mode === 'diverse_only' ? -p.beta * sw : s[i]! - p.beta * sw
    }
    const proposal = softmax(g, p.tau)
    const next = Float64Array.from(w, (x, i) => (1 - p.damping) * x + p.damping * proposal[i]!)
    change = 0
    for (let i = 0; i < n; i++) change += Math.abs(next[i]! - w[i]!)
    w = next
  }
  return { weights: w, change }
}

/**
 * The eval rows of one target refresh: `count` batches of `batchSize` consecutive rows (the last batch of the set
 * may be shorter) from batch `cursor` on, wrapping around. Rows are returned once each, in visiting order, with how
 * often they were visited (the mean counts a repeated row as often).
 */
export function targetRows(numEval: number, batchSize: number, cursor: number, count: number): { rows: Int32Array; visits: Float64Array; cursor: number } {
  const numBatches = Math.ceil(numEval / batchSize)
  const visits = new Float64Array(numEval)
  const order: number[] = []
  let at = cursor
  for (let k = 0; k < count; k++) {
    for (let r = at * batchSize; r < Math.min((at + 1) * batchSize, numEval); r++) {
      if (visits[r] === 0) order.push(r)
      visits[r] = visits[r]! + 1
    }
    at = (at + 1) % numBatches
  }
  return { rows: Int32Array.from(order), visits: Float64Array.from(order, (r) => visits[r]!), cursor: at }
}

export const jointUpdateAwareWeighter = defineWeighter({
  name: NAME,
  description: 'entropy-regularised simplex weights: alignment with the eval target minus redundancy in the micro-batch',
  params: JointUpdateAwareParams,
  create(params, env) {
    const numEval = env.numEval
    const numBatches = Math.ceil(numEval / params.target_batch_size)
    const normEps = params.embed_normalize ? NORM_EPS : undefined
    const embeddings = { layer: params.embed_layer, pooling: params.pooling === 'mean_pool' ? 'label_mean' : 'last_token', normalize: false } as const
    let target: Float64Array | null = null
    /** Optimizer steps trained when u was computed. */
    let targetStep: number | null = null
    /** The next eval batch of a refresh. */
    let cursor = 0

    const unitIfNormalized = (u: Float64Array): Float64Array => {
      if (params.embed_normalize) l2NormalizeRows(u, 1, u.length, NORM_EPS)
      return u
    }

    /** Without an eval set: the micro-batch's mean z at each refresh point, kept until the next. */
    const batchTarget = (z: Matrix64, trained: number): Float64Array => {
      if (target === null || targetStep === null || trained - targetStep >= params.target_update_step) {
        target = unitIfNormalized(meanRows(z))
        targetStep = trained
      }
      return target
    }

    return {
      reduction: 'sample_mean',
      embeddings,
      ...(numEval > 0
        ? {
            refresh: {
              every: params.target_update_step,
              async run(ctx) {
                const all = params.target_num_batches <= 0
                const pick = targetRows(numEval, params.target_batch_size, all ? 0 : cursor, all ? numBatches : params.target_num_batches)
                const raw = await ctx.model.embeddings('eval', pick.rows, { ...embeddings, batchSize: params.target_batch_size })
                const e = embeddingRows(NAME, raw, pick.rows.length, `target rows at step ${ctx.step}`)
                const u = new Float64Array(e.cols)
                let visits = 0
                for (let r = 0; r < e.rows; r++) {
                  const v = pick.visits[r]!
                  visits += v
                  for (let c = 0; c < e.cols; c++) u[c] = u[c]! + v * e.data[r * e.cols + c]!
                }
                for (let c = 0; c < e.cols; c++) u[c] = u[c]! / visits
                target = unitIfNormalized(u)
                targetStep = ctx.step
                cursor = pick.cursor
                return { info: { target_rows: visits } }
              },
            },
          }
        : {}),
      weigh(ctx) {
        const n = ctx.losses.length
        const z = embeddingRows(NAME, ctx.embeddings, n, `micro-batch ${ctx.micro} at step ${ctx.step}`, normEps)
        // A lone sample keeps the plain loss, and (as DataFlex) does not set a target.
        if (n <= 1) return { weights: summedLossWeights(ctx, new Float64Array(n).fill(1)) }
        let u: Float64Array
        if (numEval > 0) {
          if (target === null) throw new WeighterError(NAME, 'not_ready', `no target direction at step ${ctx.step}: the weighter was asked for weights before its first refresh`)
          u = target
        } else {
          u = batchTarget(z, ctx.step - 1)
        }
        if (u.length !== z.cols) throw new WeighterError(NAME, 'bad_model_output', `embeddings of ${z.cols} dimensions at step ${ctx.step}, target of ${u.length}`)
        const s = matVec(z, u)
        const gram = new Float64Array(n * n)
        for (let i = 0; i < n; i++) {
          const zi = z.data.subarray(i * z.cols, (i + 1) * z.cols)
          for (let j = 0; j <= i; j++) gram[i * n + j] = gram[j * n + i] = rowDot(z, j, zi)
        }
        const { weights, change } = solveWeights(s, gram, params)
        return { weights: summedLossWeights(ctx, weights), info: { fixed_point_change: change } }
      },
      state: () => ({ target: target === null ? null : Array.from(target), target_step: targetStep, eval_cursor: cursor }),
      restore(state) {
        const s = stateObject(NAME, state)
        const u = stateVectorOrNull(NAME, s, 'target')
        const at = stateIntOrNull(NAME, s, 'target_step', 0)
        const next = s['eval_cursor']
        if ((u === null) !== (at === null)) throw new WeighterError(NAME, 'bad_state', 'state.target and state.target_step must both be set or both be null')
        if (typeof next !== 'number' || !Number.isInteger(next) || next < 0 || next >= Math.max(1, numBatches)) {
          throw new WeighterError(NAME, 'bad_state', `state.eval_cursor must be an integer in [0, ${Math.max(1, numBatches)})`)
        }
        target = u
        targetStep = at
        cursor = next
      },
    }
  },
})
