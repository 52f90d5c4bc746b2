/**
 * `ado` mixer (docs/algorithms.md#ado): Adaptive Data Optimization (Jiang et al. 2024). Each domain's training loss
 * is fitted online by a power law in the samples it has had, L_k(n) = ε_k + β_k·n^(−α_k); domains are preferred by
 * how fast the fit says their loss still falls, weighted by the prior and by how much of the recent data they were
 * (credit assignment), then floored for exploration and smoothed over time. No reference model, no extra forward.
 *
 * Not in the Python DataFlex. Differences from the paper's code (github.com/yidingjiang/ado):
 * - The fit is least squares in loss space, exact in (ε, β) ≥ 0 for each α on a grid of step 0.005 in
 *   (0, max_exponent]; theirs is L-BFGS on a Huber loss of log L from 512 starting points, with soft bounds.
 * - Points are the per-step token-mean losses of the domains present in the step, unsmoothed; theirs smooth with a
 *   Savitzky–Golay filter (window 101) and keep every 10th step, imputing absent domains with their last loss.
 * - n is the domain's own sample count (the paper's definition); their code's default counts every domain's samples.
 * - The policy is recomputed at each update (every update_step steps), the fits refitted at each update from
 *   start_step on; the time average treats the window's steps as if each had produced this update's preference.
 */
import { z } from 'zod'
import { defineMixer } from '../mixer.ts'
import { MixerError, normalize, stateObject, stateVector, timestamp } from './common.ts'

const NAME = 'ado'

/** Grid step of the fitted exponent. */
export const EXPONENT_STEP = 0.005

export const AdoParams = z.strictObject({
  prior: z.enum(['natural', 'initial']).default('natural').describe("prior μ: natural (domain sizes) or the run's initial proportions"),
  start_step: z.int().nonnegative().default(1000).describe('first step at which fits are made and the policy used (before: the prior)'),
  ignore_steps: z.int().nonnegative().default(1000).describe('losses of steps ≤ ignore_steps are left out of the fits'),
  min_fit_points: z.int().min(3).default(3).describe('loss points a domain needs before it is fitted'),
  max_exponent: z.number().positive().max(2).default(0.8).describe('largest fitted exponent α'),
  min_exponent: z.number().nonnegative().default(0.05).describe('floor of α in the loss derivative'),
  credit_power: z.number().nonnegative().default(0.5).describe('s in λ_k = h_k^s (h: EMA of the sampled distribution)'),
  history_decay: z.number().min(0).max(1).default(0.9).describe('γ2: h ← γ2·h + (1−γ2)·(step sample shares)'),
  policy_smoothing: z.number().min(0).max(1).default(0.9).describe('γ1: π = γ1·π̄ + (1−γ1)·ρ'),
  min_probability: z.number().min(0).max(1).default(0.01).describe('δ_min: each preference is at least this before renormalising'),
})

export interface PowerLawFit {
  readonly epsilon: number
  readonly beta: number
  readonly alpha: number
  /** Σ of squared residuals. */
  readonly sse: number
}

function sse(n: ArrayLike<number>, y: ArrayLike<number>, eps: number, beta: number, alpha: number): number {
  let s = 0
  for (let t = 0; t < y.length; t++) s += (y[t]! - eps - beta * n[t]! ** -alpha) ** 2
  return s
}

/** Least squares of L = ε + β·n^(−α) with ε, β ≥ 0 (exact for each α) over α ∈ {step, 2·step, …} ≤ maxExponent. */
export function fitPowerLaw(n: ArrayLike<number>, y: ArrayLike<number>, maxExponent: number): PowerLawFit {
  const m = y.length
  let best: PowerLawFit = { epsilon: NaN, beta: NaN, alpha: NaN, sse: Infinity }
  for (let j = 1; j * EXPONENT_STEP <= maxExponent + 1e-12; j++) {
    const alpha = j * EXPONENT_STEP
    let sx = 0
    let sy = 0
    let sxx = 0
    let sxy = 0
    for (let t = 0; t < m; t++) {
      const x = n[t]! ** -alpha
      sx += x
      sy += y[t]!
      sxx += x * x
      sxy += x * y[t]!
    }
    const varX = sxx - (sx * sx) / m
    const beta0 = varX > 0 ? (sxy - (sx * sy) / m) / varX : 0
    const eps0 = (sy - beta0 * sx) / m
    let cand: [number, number][]
    if (beta0 >= 0 && eps0 >= 0) cand = [[eps0, beta0]]
    // The constrained optimum lies on an edge: β = 0 (ε = mean) or ε = 0 (β through the origin).
    else cand = [[Math.max(sy / m, 0), 0], [0, Math.max(sxy / sxx, 0)]]
    for (const [eps, beta] of cand) {
      const e = sse(n, y, eps, beta, alpha)
      if (e < best.sse) best = { epsilon: eps, beta, alpha, sse: e }
    }
  }
  return best
}

interface Points {
  step: number[]
  n: number[]
  loss: number[]
}

export const adoMixer = defineMixer({
  name: NAME,
  description: 'Adaptive Data Optimization: per-domain power-law fits of the training loss steer the mixture (no reference model)',
  params: AdoParams,
  create(params, env) {
    const k = env.domains.length
    const names = env.domains.map((d) => d.name)
    if (params.min_probability * k > 1) {
      throw new MixerError(NAME, 'bad_params', `min_probability ${params.min_probability} × ${k} domains exceeds 1`)
    }
    const totalSize = env.domains.reduce((a, d) => a + d.size, 0)
    if (params.prior === 'natural' && !(totalSize > 0)) throw new MixerError(NAME, 'bad_params', "prior 'natural' needs domains with samples")
    const prior = params.prior === 'natural' ? normalize(env.domains.map((d) => d.size)) : Float64Array.from(env.initial)

    let credit: Float64Array = Float64Array.from(prior)
    let average: Float64Array = Float64Array.from(prior)
    let policy: Float64Array = Float64Array.from(prior)
    let points: Points[] = names.map(() => ({ step: [], n: [], loss: [] }))
    let fits: (PowerLawFit | null)[] = names.map(() => null)

    return {
      mix(ctx) {
        // The window's steps, in order: credit EMA per step, loss points with each domain's count through that step.
        const after = Float64Array.from(ctx.seen)
        const counts = ctx.steps.map(() => new Float64Array(k))
        for (let j = ctx.steps.length - 1; j >= 0; j--) {
          for (let d = 0; d < k; d++) {
            counts[j]![d] = after[d]!
            after[d] = after[d]! - ctx.steps[j]!.samples[d]!
          }
        }
        ctx.steps.forEach((s, j) => {
          let total = 0
          for (let d = 0; d < k; d++) total += s.samples[d]!
          if (total > 0) credit = credit.map((h, d) => params.history_decay * h + ((1 - params.history_decay) * s.samples[d]!) / total)
          if (s.step <= params.ignore_steps) return
          for (let d = 0; d < k; d++) {
            const loss = s.lossSum[d]! / s.tokens[d]!
            if (!(s.samples[d]! > 0 && s.tokens[d]! > 0 && Number.isFinite(loss))) continue
            points[d]!.step.push(s.step)
            points[d]!.n.push(counts[j]![d]!)
            points[d]!.loss.push(loss)
          }
        })

        const refit = ctx.step >= params.start_step
        if (refit) {
          fits = fits.map((old, d) => {
            const p = points[d]!
            if (p.loss.length < params.min_fit_points) return old
            const fit = fitPowerLaw(p.n, p.loss, params.max_exponent)
            return Number.isFinite(fit.sse) ? fit : old
          })
        }

        const previousStep = ctx.step - ctx.steps.length
        let preference: Float64Array | undefined
        let reason: string | undefined
        if (!refit) reason = `before start_step ${params.start_step}`
        else if (fits.some((f) => f === null)) reason = `not every domain has ${params.min_fit_points} loss points after step ${params.ignore_steps} yet`
        else {
          const raw = Float64Array.from(fits, (f, d) => {
            const n = ctx.seen[d]!
            const reducible = f!.beta * n ** -f!.alpha
            const slope = (Math.max(f!.alpha, params.min_exponent) * reducible) / n
            return prior[d]! * credit[d]! ** params.credit_power * slope
          })
          const total = raw.reduce((a, b) => a + b, 0)
          if (total > 0 && Number.isFinite(total)) preference = normalize(normalize(raw).map((r) => Math.max(r, params.min_probability)))
          else reason = 'the fitted losses no longer fall in any domain'
        }
        if (preference !== undefined) {
          const q = preference
          policy = average.map((a, d) => params.policy_smoothing * a + (1 - params.policy_smoothing) * q[d]!)
          average = average.map((a, d) => ((previousStep + 1) * a + (ctx.step - previousStep) * q[d]!) / (ctx.step + 1))
        } else {
          ctx.log(`ado: keeping the current policy at step ${ctx.step}: ${reason}`)
        }
        const fitInfo = Object.fromEntries(
          names.map((name, d) => [name, fits[d] === null ? null : { epsilon: fits[d]!.epsilon, beta: fits[d]!.beta, alpha: fits[d]!.alpha, points: points[d]!.loss.length }]),
        )
        return {
          proportions: Float64Array.from(policy),
          info: { fits: fitInfo, credit: Array.from(credit), ...(preference === undefined ? { kept: reason } : { preference: Array.from(preference) }) },
          records: [
            {
              file: 'ado_weights.jsonl',
              record: {
                step: ctx.step,
                timestamp: timestamp(),
                domain_names: names,
                domain_weights: Array.from(policy),
                preference: preference === undefined ? null : Array.from(preference),
                credit: Array.from(credit),
                fits: fitInfo,
              },
            },
          ],
        }
      },
      state: () => ({
        credit: Array.from(credit),
        average: Array.from(average),
        policy: Array.from(policy),
        points: points.map((p) => ({ step: [...p.step], n: [...p.n], loss: [...p.loss] })),
        fits: fits.map((f) => (f === null ? null : { ...f })),
      }),
      restore(state) {
        const s = stateObject(NAME, state)
        const pts = s['points']
        const fs = s['fits']
        if (!Array.isArray(pts) || pts.length !== k || !Array.isArray(fs) || fs.length !== k) {
          throw new MixerError(NAME, 'bad_state', `state.points and state.fits must be lists of ${k} entries`)
        }
        credit = stateVector(NAME, s, 'credit', k)
        average = stateVector(NAME, s, 'average', k)
        policy = stateVector(NAME, s, 'policy', k)
        points = pts.map((p: unknown, d) => {
          const o = stateObject(NAME, p)
          const len = Array.isArray(o['loss']) ? o['loss'].length : -1
          const list = (key: string) => Array.from(stateVector(NAME, o, key, len))
          if (len < 0) throw new MixerError(NAME, 'bad_state', `state.points[${d}].loss must be a list`)
          return { step: list('step'), n: list('n'), loss: list('loss') }
        })
        fits = fs.map((f: unknown) => {
          if (f === null) return null
          const o = stateObject(NAME, f)
          const [epsilon, beta, alpha, e] = ['epsilon', 'beta', 'alpha', 'sse'].map((key) => o[key])
          if (![epsilon, beta, alpha, e].every((v) => typeof v === 'number')) throw new MixerError(NAME, 'bad_state', 'state.fits entries need epsilon, beta, alpha, sse')
          return { epsilon, beta, alpha, sse: e } as PowerLawFit
        })
      },
    }
  },
})
