/**
 * The loss side of a run (dynamic_weight, and dynamic_lego's weighter stages): the sidecar's `weigh` request in the
 * middle of every weighed micro-batch, answered with the product of the active stages' weights (and of a per-sample
 * multiplier, e.g. DoReMi's domain weights), one decision line per weighed step, and the stages' refreshes between
 * steps. One stage and no multiplier is dynamic_weight; its lines are the same either way, plus per-stage summaries
 * when there are several factors.
 */
import { Rng } from '../math/rng.ts'
import type { ModelOps } from '../strategies/types.ts'
import type { WeighContext, WeighEmbeddings, WeighterInstance, WeightReduction } from '../strategies/weighter.ts'
import type { BeforeStep, PassResult } from './driver.ts'
import type { Executor } from './executor.ts'
import type { RunLog } from './runlog.ts'
import { splitInfo, StrategyError, type StrategyRuntime } from './strategy-runtime.ts'

const REDUCTIONS: readonly WeightReduction[] = ['token_mean', 'sample_mean']

/** A step's weights as its decision line summarises them: min, max, mean and the effective sample size. */
export interface WeightSummary {
  min: number
  max: number
  mean: number
  /** (Σw)² / Σw²: how many equally weighted samples the step is worth. */
  ess: number
}

export function summarizeWeights(w: ArrayLike<number>): WeightSummary {
  let min = Infinity
  let max = -Infinity
  let sum = 0
  let sq = 0
  for (let i = 0; i < w.length; i++) {
    const v = w[i]!
    min = Math.min(min, v)
    max = Math.max(max, v)
    sum += v
    sq += v * v
  }
  return { min, max, mean: sum / w.length, ess: sq > 0 ? (sum * sum) / sq : 0 }
}

/** What a weighter returned must be one finite number per row. */
export function checkWeights(got: unknown, rows: number, where: string): Float32Array {
  const w = got as ArrayLike<number> | undefined
  if (w === undefined || w === null || typeof w.length !== 'number' || typeof w === 'string') {
    throw new StrategyError('bad_weights', `${where}: weigh() must return { weights } (a Float32Array)`)
  }
  if (w.length !== rows) throw new StrategyError('bad_weights', `${where}: returned ${w.length} weights for ${rows} samples`)
  const out = Float32Array.from(w)
  const bad = out.findIndex((v) => !Number.isFinite(v))
  if (bad >= 0) throw new StrategyError('bad_weights', `${where}: weight ${bad} is ${w[bad]} (weights must be finite numbers)`)
  return out
}

/** One weighter of the run: weighs the micro-batches of steps after `fromStep` trained ones. */
export interface WeighStage {
  readonly instance: WeighterInstance
  readonly runtime: StrategyRuntime
  readonly fromStep: number
}

/** A per-sample factor besides the weighters' (e.g. a mixer's domain weights); undefined: 1 for every sample. */
export type Multiplier = (indices: Int32Array, step: number) => Float64Array | undefined

export interface WeighSessionOptions {
  readonly stages: readonly WeighStage[]
  readonly seed: number
  readonly runlog: RunLog
  /** Every sample's weight (and loss) in the decision lines. */
  readonly logWeights: boolean
  readonly multiplier?: { readonly name: string; readonly weights: Multiplier }
  /** The decision line's strategy/component when there are several factors (default: the first stage's). */
  readonly label?: { readonly strategy: string; readonly component: string }
}

/** One step's weights as they arrive micro-batch by micro-batch. */
interface StepWeights {
  step: number
  micro: number
  weights: number[]
  indices: number[]
  losses: number[]
  perStage: number[][]
  infos: Record<string, unknown>[]
  ms: number
}

export class WeighSession {
  /** The loss the weights scale, the same for every stage. */
  readonly reduction: WeightReduction
  /** Pooled embeddings every weighed micro-batch sends (one pooling for all stages). */
  readonly embeddings: WeighEmbeddings | undefined
  /** Micro-batches are weighed from the step after this many trained ones. */
  readonly fromStep: number
  private failure: Error | undefined
  private pending: StepWeights | undefined
  private weighedSteps = 0
  private totals = { calls: 0, seconds: 0, opSeconds: 0 }
  private readonly lastRefresh: (number | undefined)[]

  constructor(private readonly opts: WeighSessionOptions) {
    const { stages } = opts
    if (stages.length === 0) throw new Error('a weigh session needs a weighter')
    const reductions = new Set(stages.map((s) => s.instance.reduction ?? 'token_mean'))
    // A multiplier weighs whole samples (DoReMi's domain weights are per sample).
    if (opts.multiplier !== undefined) reductions.add('sample_mean')
    for (const s of stages) {
      const r = s.instance.reduction ?? 'token_mean'
      if (!REDUCTIONS.includes(r)) throw new StrategyError('bad_weights', `${s.runtime.strategy}: reduction must be one of ${REDUCTIONS.join(', ')}, got ${String(r)}`)
      const refresh = s.instance.refresh
      if (refresh !== undefined && !(Number.isInteger(refresh.every) && refresh.every >= 1)) {
        throw new StrategyError('unsupported', `${s.runtime.strategy}: refresh.every must be a positive integer, got ${String(refresh.every)}`)
      }
    }
    if (reductions.size > 1) {
      const who = [...stages.map((s) => `${s.runtime.key}: ${s.instance.reduction ?? 'token_mean'}`), ...(opts.multiplier ? [`${opts.multiplier.name}: sample_mean`] : [])]
      throw new StrategyError('unsupported', `the loss-side stages weigh different loss reductions (${who.join(', ')}); their weights can only multiply under one`)
    }
    this.reduction = [...reductions][0]!
    const wanted = stages.flatMap((s) => (s.instance.embeddings === undefined ? [] : [s.instance.embeddings]))
    if (new Set(wanted.map((e) => JSON.stringify(e))).size > 1) {
      throw new StrategyError('unsupported', 'the weighter stages ask for differently pooled embeddings; one forward gives one pooling')
    }
    this.embeddings = wanted[0]
    // A multiplier counts from the first step: every step is weighed, stages before their warm-up end give 1.
    this.fromStep = opts.multiplier !== undefined ? 0 : Math.min(...stages.map((s) => s.fromStep))
    this.lastRefresh = stages.map(() => undefined)
  }

  /** What a pass plan needs to weigh its micro-batches. */
  planFields(): { reduction: WeightReduction; weigh: { fromStep: number; embeddings?: WeighEmbeddings } } {
    return { reduction: this.reduction, weigh: { fromStep: this.fromStep, ...(this.embeddings ? { embeddings: this.embeddings } : {}) } }
  }

  /** Answers the sidecar's `weigh` requests; returns the unsubscribe. */
  install(exec: Executor): () => void {
    return exec.ops.handle('weigh', async (a) => {
      const stages = this.opts.stages
      const where = (i: number): string => `weighter '${stages[i]?.runtime.strategy ?? this.opts.multiplier?.name}' at step ${a.step}, micro-batch ${a.micro}`
      let at = 0
      try {
        if (this.pending !== undefined && this.pending.step !== a.step) this.flush()
        const n = a.indices.length
        const product = new Float32Array(n).fill(1)
        const perStage: Float32Array[] = []
        const infos: Record<string, unknown>[] = []
        let ms = 0
        for (at = 0; at < stages.length; at++) {
          const s = stages[at]!
          // A stage before its own warm-up end counts 1 (another stage already weighs).
          if (a.step <= s.fromStep) {
            perStage.push(new Float32Array(n).fill(1))
            continue
          }
          const ctx: WeighContext = {
            step: a.step,
            micro: a.micro,
            indices: a.indices,
            losses: a.losses,
            tokens: a.tokens,
            ...(a.embeddings === undefined ? {} : { embeddings: { data: a.embeddings.data, rows: a.embeddings.shape[0]!, cols: a.embeddings.shape[1]! } }),
            groupSamples: a.group_samples,
            groupMicro: a.group_micro,
            rng: at === 0 ? Rng.derive(this.opts.seed, 'weigh', a.step, a.micro) : Rng.derive(this.opts.seed, 'weigh', a.step, a.micro, at),
            log: s.runtime.log,
          }
          const t0 = performance.now()
          const result = await s.instance.weigh(ctx)
          ms += performance.now() - t0
          const w = checkWeights(result?.weights, n, where(at))
          perStage.push(w)
          for (let i = 0; i < n; i++) product[i]! *= w[i]!
          const { info: facts } = splitInfo(result.info)
          if (facts !== undefined) infos.push(stages.length > 1 ? { component: s.runtime.key, ...facts } : facts)
        }
        at = stages.length
        if (this.opts.multiplier !== undefined) {
          const extra = this.opts.multiplier.weights(a.indices, a.step)
          perStage.push(extra === undefined ? new Float32Array(n).fill(1) : Float32Array.from(extra))
          if (extra !== undefined) for (let i = 0; i < n; i++) product[i]! *= extra[i]!
        }
        const p = (this.pending ??= { step: a.step, micro: 0, weights: [], indices: [], losses: [], perStage: perStage.map(() => []), infos: [], ms: 0 })
        p.micro++
        for (let i = 0; i < n; i++) {
          p.weights.push(product[i]!)
          p.indices.push(a.indices[i]!)
          p.losses.push(a.losses[i]!)
        }
        perStage.forEach((w, k) => {
          for (let i = 0; i < n; i++) p.perStage[k]!.push(w[i]!)
        })
        p.infos.push(...infos)
        p.ms += ms
        return { weights: product }
      } catch (err) {
        this.failure ??= err instanceof StrategyError ? err : new StrategyError('weighter_failed', `${where(at)}: ${(err as Error)?.message ?? String(err)}`, { cause: err })
        throw this.failure
      }
    })
  }

  /** The weighter's own failure rather than the sidecar's report of its failed request. */
  rethrow(err: unknown): never {
    throw this.failure ?? err
  }

  /** The pending step's decision line. */
  flush(): void {
    if (this.pending === undefined) return
    const p = this.pending
    this.pending = undefined
    this.weighedSteps++
    const { stages, multiplier } = this.opts
    const factors = [...stages.map((s) => s.runtime.key), ...(multiplier ? [multiplier.name] : [])]
    const label = this.opts.label ?? { strategy: stages[0]!.runtime.strategy, component: stages[0]!.runtime.key }
    const facts = p.infos.length === 0 ? {} : { info: p.infos.length === 1 ? p.infos[0] : p.infos }
    this.opts.runlog.decision({
      step: p.step,
      kind: 'weight',
      strategy: label.strategy,
      component: label.component,
      micro_batches: p.micro,
      samples: p.weights.length,
      weights: summarizeWeights(p.weights),
      ...(factors.length > 1 ? { factors: Object.fromEntries(factors.map((f, k) => [f, summarizeWeights(p.perStage[k]!)])) } : {}),
      ...facts,
      ...(this.opts.logWeights
        ? {
            indices: p.indices,
            sample_weights: p.weights,
            sample_losses: p.losses,
            ...(factors.length > 1 ? { factor_weights: Object.fromEntries(factors.map((f, k) => [f, p.perStage[k]!])) } : {}),
          }
        : {}),
      timings: { weigh_ms: Math.round(p.ms * 1000) / 1000 },
    })
  }

  /** The stages' refreshes: each before its first weighed step, then every `every` steps after its last one. */
  beforeStep(model: ModelOps): BeforeStep | undefined {
    const stages = this.opts.stages
    const due = (i: number, s: number): boolean => {
      const refresh = stages[i]!.instance.refresh
      const last = this.lastRefresh[i]
      return refresh !== undefined && s > stages[i]!.fromStep && (last === undefined || s - 1 - last >= refresh.every)
    }
    if (!stages.some((st) => st.instance.refresh !== undefined)) return undefined
    return {
      at: (s) => stages.some((_, i) => due(i, s)),
      run: async (s) => {
        const done = s - 1
        for (let i = 0; i < stages.length; i++) {
          if (!due(i, s)) continue
          const st = stages[i]!
          const t0 = performance.now()
          const rng = i === 0 ? Rng.derive(this.opts.seed, 'refresh', done) : Rng.derive(this.opts.seed, 'refresh', done, i)
          const facts = await st.instance.refresh!.run({ step: done, model, rng, cacheDir: st.runtime.cacheDir, log: st.runtime.log })
          this.lastRefresh[i] = done
          st.runtime.decision(
            { step: done, kind: 'refresh', strategy: st.runtime.strategy, component: st.runtime.key },
            { info: facts?.info, ms: performance.now() - t0, timingKey: 'refresh_ms' },
          )
        }
      },
    }
  }

  /** After each pass: its pending line, and its `weigh` round trips. */
  onPass(w: PassResult['weigh']): void {
    this.flush()
    if (w !== undefined) this.totals = { calls: this.totals.calls + w.calls, seconds: this.totals.seconds + w.seconds, opSeconds: this.totals.opSeconds + w.opSeconds }
  }

  /** What a resumed run needs: the refresh clocks and the counters. */
  state(): { last_refresh: (number | null)[]; weighed_steps: number; totals: { calls: number; seconds: number; opSeconds: number } } {
    return { last_refresh: this.lastRefresh.map((r) => r ?? null), weighed_steps: this.weighedSteps, totals: { ...this.totals } }
  }

  restore(s: ReturnType<WeighSession['state']>): void {
    s.last_refresh.forEach((r, i) => (this.lastRefresh[i] = r ?? undefined))
    this.weighedSteps = s.weighed_steps
    this.totals = { ...s.totals }
  }

  /** The summary's loss-side fields. */
  summary(): Record<string, number | null> {
    const t = this.totals
    return {
      weighed_steps: this.weighedSteps,
      weigh_calls: t.calls,
      // The sidecar's view of each round trip (send, TypeScript's weigh, reply), and its share of the training ops.
      weigh_round_trip_ms_mean: t.calls > 0 ? (t.seconds * 1000) / t.calls : null,
      weigh_share_of_training: t.opSeconds > 0 ? t.seconds / t.opSeconds : null,
    }
  }
}
