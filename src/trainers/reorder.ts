/**
 * `train_type: dynamic_reorder`: the flex-epoch schedule of dynamic_select (a warm-up window, then an interval every
 * update_step steps), with a reorder deciding the order of the samples each window trains on (reorder-serve.ts:
 * a static order read as a stream, or a dynamic one rescored as the model trains). Each window is trained in exactly
 * the decided order: consecutive micro-batches of per_device_train_batch_size, no shuffle.
 */
import type { LoadedConfig } from '../config/index.ts'
import { Rng } from '../math/rng.ts'
import type { ResolvedComponent } from '../strategies/presets.ts'
import type { ReorderInstance } from '../strategies/reorder.ts'
import { rawRowsRequest } from '../strategies/reorders/variants.ts'
import type { ModelOps } from '../strategies/types.ts'
import type { DriverSummary, TrainDriver } from './driver.ts'
import type { Executor, LoadInfo } from './executor.ts'
import { BridgeModelOps } from './model-ops.ts'
import { StaticStream, streamFor, type Served, type ServeDeps, type StreamState } from './reorder-serve.ts'
import { flexSchedule, flexWindows } from './select.ts'
import { createComponent, indexFields, prepareComponent, restoreState, StrategyError, StrategyRuntime } from './strategy-runtime.ts'
import type { Trainer, TrainerOptions } from './trainer.ts'
import { microBatchRows, passPlanOf, walk } from './walk.ts'

export type ResolvedReorder = ResolvedComponent<'reorder'>

export interface ReorderRunOptions extends TrainerOptions {
  /** The model handle score sources get; default: the executor's ops. */
  modelOps?: (exec: Executor, info: LoadInfo) => ModelOps
}

/** The mean score of each tenth of an order (fewer parts for a shorter one): the curriculum's shape at a glance. */
export function tenths(scores: ArrayLike<number>): number[] {
  const n = scores.length
  const parts = Math.min(10, n)
  return Array.from({ length: parts }, (_, p) => {
    const from = Math.floor((p * n) / parts)
    const to = Math.floor(((p + 1) * n) / parts)
    let sum = 0
    for (let i = from; i < to; i++) sum += scores[i]!
    return sum / (to - from)
  })
}

/** What order() returned, checked against its contract: a permutation of the given indices, or a prefix of one. */
export function checkOrder(res: unknown, rows: Int32Array, strategy: string, step: number): Int32Array {
  const got = typeof res === 'object' && res !== null ? (res as { order?: unknown }).order : undefined
  if (!(Array.isArray(got) || ArrayBuffer.isView(got))) {
    throw new StrategyError('bad_index', `${strategy}: order() at step ${step} must return { order } (an Int32Array), got ${got === undefined ? 'none' : typeof got}`)
  }
  const order = got as ArrayLike<number>
  if (order.length > rows.length) {
    throw new StrategyError('too_many_indices', `${strategy}: order() at step ${step} returned ${order.length} indices for ${rows.length} given`)
  }
  const left = new Map<number, number>()
  for (const r of rows) left.set(r, (left.get(r) ?? 0) + 1)
  for (let i = 0; i < order.length; i++) {
    const v = order[i]!
    const count = left.get(v) ?? 0
    if (count === 0) {
      const why = rows.includes(v) ? 'repeats an index' : 'is not among the indices it was given'
      throw new StrategyError('bad_index', `${strategy}: order() at step ${step}: entry ${v} at position ${i} ${why} (it must return a permutation of them, or a prefix of one)`)
    }
    left.set(v, count - 1)
  }
  return order instanceof Int32Array ? order : Int32Array.from(order)
}

/** What a stream serves with: the reorder's score source and its order(), at the step and model `at` gives. */
export function serveDeps(instance: ReorderInstance, at: () => { step: number; model: ModelOps }, seed: number, runtime: StrategyRuntime): ServeDeps {
  return {
    score: async (rows) => (instance.scores === undefined ? undefined : instance.scores.scoresFor(rows, at())),
    order: async (rows, scores) => {
      const { step, model } = at()
      const res = await instance.order({ step, indices: rows, scores, rng: Rng.derive(seed, 'reorder', step), model, cacheDir: runtime.cacheDir, log: runtime.log })
      return checkOrder(res as unknown, rows, runtime.strategy, step)
    },
  }
}

/** The pattern laid over a pass of n rows, as ranks (0: the lowest score) in slot order (the `slice` serving plan). */
export function slotPlanOf(deps: ServeDeps): (n: number) => Promise<Int32Array> {
  return (n) => {
    const ranks = Int32Array.from({ length: n }, (_, i) => i)
    return deps.order(ranks, Float64Array.from(ranks))
  }
}

/** How many raw rows the training rows came from and how many preprocessing dropped (apply_at: raw), or null. */
function rawRowsFacts(info: LoadInfo): Record<string, unknown> | null {
  const raw = info.raw_rows
  if (raw === null) return null
  const total = raw.rows.reduce((a, b) => a + b, 0)
  return { datasets: raw.names, rows: raw.rows, total, dropped: total - new Set(raw.index_of_row).size }
}

export async function runReorder(d: TrainDriver, cfg: LoadedConfig, r: ResolvedReorder, opts: ReorderRunOptions): Promise<DriverSummary> {
  const info = d.info
  const schedule = flexSchedule(info, cfg)
  const seed = info.seed
  const b = microBatchRows(info)
  const ga = info.gradient_accumulation_steps
  const runtime = new StrategyRuntime(r, cfg, info, d.runlog, opts.log)
  // After the model loaded: scores must match the preprocessed rows.
  const instance: ReorderInstance = createComponent(r, { numTrain: info.num_train, seed: info.seed, baseDir: r.preset.baseDir, rawRows: info.raw_rows })
  const serving = instance.serving ?? { variant: 'static' as const }
  const model = opts.modelOps ? opts.modelOps(d.exec, info) : new BridgeModelOps(d.exec, info)

  let step = 0
  const deps = serveDeps(instance, () => ({ step, model }), seed, runtime)
  const all = Int32Array.from({ length: info.num_train }, (_, i) => i)
  const saved = opts.resume?.trainer as { reorder: unknown; stream: StreamState; orders: number } | undefined
  const stream = streamFor(serving, all, slotPlanOf(deps), saved?.stream)
  if (saved !== undefined) restoreState(instance, saved.reorder, r.strategy)

  d.runlog.writeJson('reorder.json', {
    component: r.key,
    algorithm: r.algorithm,
    strategy: r.strategy,
    params: r.rawParams,
    inputs: r.inputs,
    serving,
    pattern: instance.pattern ?? null,
    score_source: instance.scores?.name ?? null,
    num_train: info.num_train,
    raw_rows: rawRowsFacts(info),
    global_batch: schedule.globalBatch,
    flex_epoch_length: schedule.flexEpochLength,
    update_times: schedule.updateTimes,
    max_steps: schedule.maxSteps,
    windows: schedule.windows.length,
  })
  const state = { state: () => ({ reorder: instance.state?.() ?? null, stream: stream.state(), orders }) }

  let orders = saved?.orders ?? 0
  const windows = flexWindows(schedule)
  await walk(d, {
    maxSteps: schedule.maxSteps,
    windows,
    signal: opts.signal,
    phase: ({ window }) => (window.kind === 'warmup' ? 'warmup' : 'training'),
    ...(opts.resume === undefined ? {} : { resume: opts.resume }),
    checkpoint: () => state.state(),
    plan: async ({ window: w }) => {
      step = w.decisionStep
      d.report('reordering', w.decisionStep)
      const t0 = performance.now()
      const k = w.numSamples
      let served: Served
      if (stream instanceof StaticStream) served = await stream.take(k, deps)
      else served = w.kind === 'warmup' ? stream.warmup(k, Rng.derive(seed, 'warmup', w.flexEpoch)) : await stream.next(k, deps)
      const ms = performance.now() - t0
      if (served.indices.length !== k) throw new StrategyError('empty_selection', `${r.strategy}: served ${served.indices.length} of ${k} samples at step ${w.decisionStep}`)
      orders++
      runtime.decision(
        {
          step: w.decisionStep,
          kind: 'reorder',
          strategy: r.strategy,
          component: r.key,
          variant: serving.variant,
          pattern: instance.pattern ?? null,
          window: w.kind,
          flex_epoch: w.flexEpoch,
          steps: [w.firstStep, w.lastStep],
          rescored: served.rescored,
          ...indexFields(served.indices),
          ...(served.scores === undefined ? {} : { score_tenths: tenths(served.scores) }),
        },
        { scores: served.scores, ms, timingKey: 'reorder_ms' },
      )
      const microDone = (w.decisionStep - w.flexEpoch * schedule.flexEpochLength) * ga
      // The decided order is the training order: no shuffle.
      return passPlanOf(served.indices, b, Array.from({ length: w.steps }, () => ga), w.flexEpoch, schedule.flexEpochLength * ga, microDone)
    },
  })
  runtime.saveState(state, d.stepsTrained)
  return d.finish({ train_type: 'dynamic_reorder', component: r.key, strategy: r.strategy, orders })
}

/** `train_type: dynamic_reorder`: the reorder preset is resolved (and its inputs found) before the sidecar starts. */
export const reorderTrainer: Trainer<ResolvedReorder> = {
  trainType: 'dynamic_reorder',
  description: 'a reorder decides the order of the samples of each window (reorders: section)',
  prepare: (cfg, log) => prepareComponent(cfg, 'reorder', log),
  loadExtras: (_cfg, r) => {
    const raw = rawRowsRequest(r.definition, r.params)
    return raw === undefined ? {} : { raw_rows: raw }
  },
  train: (d, cfg, reorder, opts) => runReorder(d, cfg, reorder, opts),
}
