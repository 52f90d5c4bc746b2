/**
 * `train_type: dynamic_weight`: Hugging Face's own plan of the run (static.ts: same samples, same order, same steps),
 * with a weighter deciding how much each sample counts. From step warmup_step + 1 on, every micro-batch's training
 * forward sends its per-sample losses (and, when the weighter asks, pooled hidden states of the same forward) to
 * TypeScript through the sidecar's `weigh` request; the weights come back before the backward. The warm-up trains
 * with weights of 1 under the weighter's reduction, so the loss keeps its scale across the switch. Model ops a
 * weighter needs (anchors, a target direction) run between steps (`refresh`), never inside one.
 */
import type { LoadedConfig } from '../config/index.ts'
import { Rng } from '../math/rng.ts'
import type { ResolvedComponent } from '../strategies/presets.ts'
import type { ModelOps } from '../strategies/types.ts'
import type { WeighContext, WeighterInstance, WeightReduction } from '../strategies/weighter.ts'
import type { DriverSummary, TrainDriver } from './driver.ts'
import type { Executor, LoadInfo } from './executor.ts'
import { BridgeModelOps } from './model-ops.ts'
import { staticPassPlan, staticWindows, type StaticWindow } from './static.ts'
import { createComponent, prepareComponent, splitInfo, StrategyError, StrategyRuntime } from './strategy-runtime.ts'
import type { Trainer, TrainerOptions } from './trainer.ts'
import { walk } from './walk.ts'

export type ResolvedWeighter = ResolvedComponent<'weighter'>

export interface WeightRunOptions extends TrainerOptions {
  /** The model handle a weighter's refresh gets; default: the executor's ops. */
  modelOps?: (exec: Executor, info: LoadInfo) => ModelOps
}

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

/** One step's weights as they arrive micro-batch by micro-batch. */
interface StepWeights {
  step: number
  micro: number
  weights: number[]
  indices: number[]
  infos: Record<string, unknown>[]
  ms: number
}

export async function runWeight(d: TrainDriver, cfg: LoadedConfig, weighter: ResolvedWeighter, opts: WeightRunOptions): Promise<DriverSummary> {
  const info = d.info
  if (info.world_size > 1) throw new StrategyError('unsupported', `dynamic_weight runs on one process for now (world size ${info.world_size})`)
  const name = weighter.strategy
  const seed = info.seed
  const warmup = cfg.dataflex.warmup_step
  const { plan, windows } = await staticWindows(d, cfg.dataflex.train_step > 0 ? cfg.dataflex.train_step : info.max_steps)
  const runtime = new StrategyRuntime(weighter, cfg, info, d.runlog, opts.log)
  // After the model loaded: ADAPT needs the eval set's size.
  const instance: WeighterInstance = createComponent(weighter, { numTrain: info.num_train, numEval: info.num_eval, seed: info.seed, baseDir: weighter.preset.baseDir })
  const reduction = instance.reduction ?? 'token_mean'
  if (!REDUCTIONS.includes(reduction)) throw new StrategyError('bad_weights', `${name}: reduction must be one of ${REDUCTIONS.join(', ')}, got ${String(reduction)}`)
  const refresh = instance.refresh
  if (refresh !== undefined && !(Number.isInteger(refresh.every) && refresh.every >= 1)) {
    throw new StrategyError('unsupported', `${name}: refresh.every must be a positive integer, got ${String(refresh.every)}`)
  }
  const model = opts.modelOps ? opts.modelOps(d.exec, info) : new BridgeModelOps(d.exec, info)

  d.runlog.writeJson('weight.json', {
    component: weighter.key,
    algorithm: weighter.algorithm,
    strategy: name,
    params: weighter.rawParams,
    inputs: weighter.inputs,
    reduction,
    embeddings: instance.embeddings ?? null,
    refresh_every: refresh?.every ?? null,
    warmup_step: warmup,
    max_steps: plan.maxSteps,
    log_weights: cfg.dataflex.log_weights,
  })

  let failure: Error | undefined
  let pending: StepWeights | undefined
  let weighedSteps = 0
  const flush = (): void => {
    if (pending === undefined) return
    const p = pending
    pending = undefined
    weighedSteps++
    const facts = p.infos.length === 0 ? {} : { info: p.infos.length === 1 ? p.infos[0] : p.infos }
    d.runlog.decision({
      step: p.step,
      kind: 'weight',
      strategy: name,
      component: weighter.key,
      micro_batches: p.micro,
      samples: p.weights.length,
      weights: summarizeWeights(p.weights),
      ...facts,
      ...(cfg.dataflex.log_weights ? { indices: p.indices, sample_weights: p.weights } : {}),
      timings: { weigh_ms: Math.round(p.ms * 1000) / 1000 },
    })
  }

  // The sidecar's request in the middle of a step. A failure is kept and rethrown by the walk (the sidecar only
  // sees that its request failed, and ends the op).
  const unhandle = d.exec.ops.handle('weigh', async (a) => {
    const where = `weighter '${name}' at step ${a.step}, micro-batch ${a.micro}`
    try {
      if (pending !== undefined && pending.step !== a.step) flush()
      const ctx: WeighContext = {
        step: a.step,
        micro: a.micro,
        indices: a.indices,
        losses: a.losses,
        tokens: a.tokens,
        ...(a.embeddings === undefined ? {} : { embeddings: { data: a.embeddings.data, rows: a.embeddings.shape[0]!, cols: a.embeddings.shape[1]! } }),
        groupSamples: a.group_samples,
        groupMicro: a.group_micro,
        rng: Rng.derive(seed, 'weigh', a.step, a.micro),
        log: runtime.log,
      }
      const t0 = performance.now()
      const result = await instance.weigh(ctx)
      const ms = performance.now() - t0
      const weights = checkWeights(result?.weights, a.indices.length, where)
      pending ??= { step: a.step, micro: 0, weights: [], indices: [], infos: [], ms: 0 }
      pending.micro++
      for (let i = 0; i < weights.length; i++) pending.weights.push(weights[i]!)
      for (let i = 0; i < a.indices.length; i++) pending.indices.push(a.indices[i]!)
      const { info: facts } = splitInfo(result.info)
      if (facts !== undefined) pending.infos.push(facts)
      pending.ms += ms
      return { weights }
    } catch (err) {
      failure ??= err instanceof StrategyError ? err : new StrategyError('weighter_failed', `${where}: ${(err as Error)?.message ?? String(err)}`, { cause: err })
      throw failure
    }
  })

  let lastRefresh: number | undefined
  let weigh = { calls: 0, seconds: 0, opSeconds: 0 }
  try {
    await walk(d, {
      maxSteps: plan.maxSteps,
      windows,
      signal: opts.signal,
      phase: (w: StaticWindow) => (w.steps.at(-1)!.globalStep <= warmup ? 'warmup' : 'training'),
      plan: (w) => ({ ...staticPassPlan(d, w, plan, 'static'), reduction, weigh: { fromStep: warmup, ...(instance.embeddings ? { embeddings: instance.embeddings } : {}) } }),
      ...(refresh === undefined
        ? {}
        : {
            beforeStep: {
              // Before the first weighed step, then every `every` steps after the last refresh.
              at: (s: number) => s > warmup && (lastRefresh === undefined || s - 1 - lastRefresh >= refresh.every),
              run: async (s: number) => {
                const done = s - 1
                const t0 = performance.now()
                const facts = await refresh.run({ step: done, model, rng: Rng.derive(seed, 'refresh', done), cacheDir: runtime.cacheDir, log: runtime.log })
                lastRefresh = done
                runtime.decision(
                  { step: done, kind: 'refresh', strategy: name, component: weighter.key },
                  { info: facts?.info, ms: performance.now() - t0, timingKey: 'refresh_ms' },
                )
              },
            },
          }),
      onPass: (_samples, _w, _plan, w) => {
        flush()
        if (w !== undefined) weigh = { calls: weigh.calls + w.calls, seconds: weigh.seconds + w.seconds, opSeconds: weigh.opSeconds + w.opSeconds }
      },
      onCheckpoint: (step) => {
        flush()
        runtime.saveState(instance, step)
      },
    })
  } catch (err) {
    throw failure ?? err
  } finally {
    unhandle()
  }
  flush()
  runtime.saveState(instance, d.stepsTrained)
  return d.finish({
    train_type: 'dynamic_weight',
    component: weighter.key,
    strategy: name,
    weighed_steps: weighedSteps,
    weigh_calls: weigh.calls,
    // The sidecar's view of each round trip (send, TypeScript's weigh, reply), and its share of the training ops.
    weigh_round_trip_ms_mean: weigh.calls > 0 ? (weigh.seconds * 1000) / weigh.calls : null,
    weigh_share_of_training: weigh.opSeconds > 0 ? weigh.seconds / weigh.opSeconds : null,
  })
}

/** `train_type: dynamic_weight`: the weighter preset is resolved (and its inputs found) before the sidecar starts. */
export const weightTrainer: Trainer<ResolvedWeighter> = {
  trainType: 'dynamic_weight',
  description: 'a weighter decides how much each sample of every micro-batch counts (weighters: section)',
  prepare: (cfg, log) => prepareComponent(cfg, 'weighter', log),
  train: (d, cfg, weighter, opts) => runWeight(d, cfg, weighter, opts),
}
