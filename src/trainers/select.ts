/**
 * `train_type: dynamic_select`: walk the flex-epoch schedule (select-schedule.ts) window by window. A warm-up window
 * trains on random indices; a selection window asks the selector for B_g × steps indices at its decision step,
 * with the model exactly as trained so far. Each window is one pass: its indices shuffled (unless
 * disable_shuffling) into micro-batches of per_device_train_batch_size and steps of GA micro-batches, as a
 * DataLoader over Subset(train, indices) with a RandomSampler would. Every decision goes to decisions.jsonl.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { LoadedConfig } from '../config/index.ts'
import { hashArrays } from '../math/hash.ts'
import { Rng } from '../math/rng.ts'
import { uniformWithReplacement } from '../math/sampling.ts'
import type { ResolvedSelector } from '../strategies/presets.ts'
import type { ModelOps, SelectContext, SelectResult, SelectorInstance } from '../strategies/types.ts'
import { canonicalJson } from '../util/canonical-json.ts'
import { passPlanOf, type DriverSummary, type TrainDriver } from './driver.ts'
import type { Executor, LoadInfo } from './executor.ts'
import { BridgeModelOps } from './model-ops.ts'
import type { StepPosition } from './schedule.ts'
import { buildSelectSchedule, type SelectSchedule, type Window } from './select-schedule.ts'

/** Indices are written out in full up to this many; above it only their hash and count. */
export const MAX_LOGGED_INDICES = 4096

export type SelectionErrorCode = 'empty_selection' | 'too_many_indices' | 'bad_index' | 'bad_scores' | 'unsupported'

/** A selector broke the contract (a strategy bug, not a config error: exit 1). */
export class SelectionError extends Error {
  override readonly name = 'SelectionError'
  readonly code: SelectionErrorCode

  constructor(code: SelectionErrorCode, message: string) {
    super(message)
    this.code = code
  }
}

export interface SelectRunOptions {
  log: (line: string) => void
  signal?: AbortSignal
  /** The model handle strategies get; default: the executor's ops. */
  modelOps?: (exec: Executor, info: LoadInfo) => ModelOps
}

// Keys that change where a run writes or how it reports, never what a strategy computes.
const NOT_IN_CACHE_KEY = new Set([
  'output_dir',
  'overwrite_output_dir',
  'overwrite_cache',
  'logging_dir',
  'logging_steps',
  'logging_strategy',
  'logging_first_step',
  'save_steps',
  'save_strategy',
  'save_total_limit',
  'save_only_model',
  'report_to',
  'plot_loss',
  'run_name',
  'preprocessing_num_workers',
  'dataloader_num_workers',
  'ddp_timeout',
])

export interface CacheKeyInput {
  cfg: Pick<LoadedConfig, 'lf' | 'dataflex'>
  selector: Pick<ResolvedSelector, 'key' | 'algorithm' | 'strategy' | 'rawParams' | 'file'>
  numTrain: number
  numEval: number
  seed: number
  cwd?: string
}

/**
 * The strategy's cache folder name: sha256 over the model path, the datasets and their sizes, the strategy (name,
 * params, and the user file's content for custom), the seed and every other training argument that can change
 * what the model is at a decision. Different inputs → a different folder, so stale results are never reused.
 */
export function cacheKey(input: CacheKeyInput): string {
  const { cfg, selector } = input
  const cwd = input.cwd ?? process.cwd()
  const model = cfg.lf['model_name_or_path']
  const modelPath = typeof model === 'string' && existsSync(resolve(cwd, model)) ? resolve(cwd, model) : model
  const training = Object.fromEntries(Object.entries(cfg.lf).filter(([k]) => !NOT_IN_CACHE_KEY.has(k)))
  const material = {
    model: modelPath,
    data: { dataset: cfg.lf['dataset'], eval_dataset: cfg.lf['eval_dataset'], num_train: input.numTrain, num_eval: input.numEval },
    strategy: {
      algorithm: selector.algorithm,
      name: selector.strategy,
      params: selector.rawParams,
      file: selector.file === undefined ? undefined : createHash('sha256').update(readFileSync(selector.file)).digest('hex'),
    },
    seed: input.seed,
    schedule: {
      warmup_step: cfg.dataflex.warmup_step,
      update_step: cfg.dataflex.update_step,
      update_times: cfg.dataflex.update_times,
      train_step: cfg.dataflex.train_step,
    },
    training,
  }
  return createHash('sha256').update(canonicalJson(material)).digest('hex').slice(0, 16)
}

/** Checks what a selector returned and makes it exactly `want` long (see docs/select.md, "Short selections"). */
export function settleIndices(
  result: SelectResult,
  want: number,
  numTrain: number,
  topUpRng: Rng,
  strategy: string,
): { indices: Int32Array; returned: number; toppedUp: number } {
  const got = result.indices as ArrayLike<number> | undefined
  if (got === undefined || got === null || typeof got.length !== 'number') {
    throw new SelectionError('bad_index', `${strategy}: select() must return { indices } (an Int32Array)`)
  }
  const m = got.length
  if (m === 0) throw new SelectionError('empty_selection', `${strategy}: returned no indices (${want} requested)`)
  if (m > want) throw new SelectionError('too_many_indices', `${strategy}: returned ${m} indices, ${want} requested`)
  for (let i = 0; i < m; i++) {
    const v = got[i]!
    if (!Number.isInteger(v) || v < 0 || v >= numTrain) {
      throw new SelectionError('bad_index', `${strategy}: index ${v} at position ${i} is outside the training set [0, ${numTrain})`)
    }
  }
  if (result.scores !== undefined && result.scores.length !== m) {
    throw new SelectionError('bad_scores', `${strategy}: ${result.scores.length} scores for ${m} indices`)
  }
  const indices = new Int32Array(want)
  for (let i = 0; i < m; i++) indices[i] = got[i]!
  // Short: cycle through the selection again, each round in a fresh seeded order, as DataFlex's loader re-iterates
  // the same subset when it runs out.
  for (let filled = m; filled < want; ) {
    const perm = topUpRng.permutation(m)
    for (let j = 0; j < m && filled < want; j++) indices[filled++] = indices[perm[j]!]!
  }
  return { indices, returned: m, toppedUp: want - m }
}

export interface ScoreSummary {
  min: number
  mean: number
  max: number
  /** Scores that were NaN or ±Inf (left out of min/mean/max). */
  non_finite?: number
}

export function summarizeScores(scores: ArrayLike<number>): ScoreSummary | undefined {
  let min = Infinity
  let max = -Infinity
  let sum = 0
  let n = 0
  for (let i = 0; i < scores.length; i++) {
    const v = scores[i]!
    if (!Number.isFinite(v)) continue
    if (v < min) min = v
    if (v > max) max = v
    sum += v
    n++
  }
  const nonFinite = scores.length - n
  if (n === 0) return scores.length === 0 ? undefined : { min: NaN, mean: NaN, max: NaN, non_finite: nonFinite }
  return { min, mean: sum / n, max, ...(nonFinite > 0 ? { non_finite: nonFinite } : {}) }
}

/** Fisher–Yates with a seeded stream: the order a RandomSampler over Subset(train, indices) would visit. */
export function shuffled(indices: Int32Array, rng: Rng): Int32Array {
  const perm = rng.permutation(indices.length)
  const out = new Int32Array(indices.length)
  for (let i = 0; i < out.length; i++) out[i] = indices[perm[i]!]!
  return out
}

const TIMING_KEY = /^(timing_ms|timings?)$|_(ms|seconds)$/

/**
 * A selector's info as plain JSON, with its timing entries (`timing_ms`, `timings`, `*_ms`, `*_seconds`) split
 * off: everything else in a decision line must be the same run after run.
 */
export function splitInfo(info: Readonly<Record<string, unknown>> | undefined): { info?: Record<string, unknown>; timings?: Record<string, unknown> } {
  if (info === undefined) return {}
  const plain = JSON.parse(
    JSON.stringify(info, (_k, v: unknown) => (ArrayBuffer.isView(v) ? Array.from(v as unknown as ArrayLike<number>) : v)),
  ) as Record<string, unknown>
  const rest: Record<string, unknown> = {}
  const timings: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(plain)) (TIMING_KEY.test(k) ? timings : rest)[k] = v
  return {
    ...(Object.keys(rest).length > 0 ? { info: rest } : {}),
    ...(Object.keys(timings).length > 0 ? { timings } : {}),
  }
}

/** Step positions of a window for the flow callback: the epoch is the fractional flex-epoch. */
function windowSteps(w: Window, s: SelectSchedule): StepPosition[] {
  const E = s.flexEpochLength
  const base = w.flexEpoch * E
  return Array.from({ length: w.steps }, (_, k) => {
    const globalStep = w.firstStep + k
    return {
      globalStep,
      epoch: w.flexEpoch + (globalStep - base) / E,
      endsPass: k === w.steps - 1 && w.endsFlexEpoch,
      maxSteps: s.maxSteps,
    }
  })
}

export async function runSelect(d: TrainDriver, cfg: LoadedConfig, sel: ResolvedSelector, opts: SelectRunOptions): Promise<DriverSummary> {
  const info = d.info
  if (info.world_size > 1) {
    throw new SelectionError('unsupported', `dynamic_select runs on one process for now (world size ${info.world_size})`)
  }
  const schedule = buildSelectSchedule({
    numTrain: info.num_train,
    perDeviceBatch: info.per_device_train_batch_size,
    gradAccum: info.gradient_accumulation_steps,
    worldSize: info.world_size,
    warmupStep: cfg.dataflex.warmup_step,
    updateStep: cfg.dataflex.update_step,
    updateTimes: cfg.dataflex.update_times,
    trainStep: cfg.dataflex.train_step,
    maxSteps: info.max_steps,
    numTrainEpochs: info.num_train_epochs,
  })
  const seed = info.seed
  const b = info.per_device_train_batch_size
  const ga = info.gradient_accumulation_steps
  const cacheRoot = sel.cacheRoot ?? join(cfg.outputDir, 'dataflex', 'cache')
  const cacheDir = join(cacheRoot, sel.key, cacheKey({ cfg, selector: sel, numTrain: info.num_train, numEval: info.num_eval, seed }))
  mkdirSync(cacheDir, { recursive: true })
  const instance: SelectorInstance = sel.definition.create(sel.params, {
    numTrain: info.num_train,
    numEval: info.num_eval,
    seed,
    baseDir: sel.preset.baseDir,
  })
  const model = opts.modelOps ? opts.modelOps(d.exec, info) : new BridgeModelOps(d.exec, info)
  const strategyLog = (message: string): void => opts.log(`[${sel.key}] ${message}`)

  d.runlog.writeJson('select.json', {
    component: sel.key,
    algorithm: sel.algorithm,
    strategy: sel.strategy,
    params: sel.rawParams,
    inputs: sel.inputs,
    cache_dir: cacheDir,
    num_train: info.num_train,
    num_eval: info.num_eval,
    global_batch: schedule.globalBatch,
    flex_epoch_length: schedule.flexEpochLength,
    update_times: schedule.updateTimes,
    max_steps: schedule.maxSteps,
    windows: schedule.windows.length,
  })

  let selections = 0
  await d.begin(schedule.maxSteps)
  try {
    for (const w of schedule.windows) {
      opts.signal?.throwIfAborted()
      const picked = w.kind === 'warmup' ? warmup(w) : await select(w)
      const order = info.disable_shuffling ? picked : shuffled(picked, Rng.derive(seed, 'shuffle', w.decisionStep))
      const plan = passPlanOf(order, b, Array.from({ length: w.steps }, () => ga), w.flexEpoch, schedule.flexEpochLength * ga, (w.decisionStep - w.flexEpoch * schedule.flexEpochLength) * ga)
      d.report(w.kind === 'warmup' ? 'warmup' : 'training', w.decisionStep)
      const r = await d.trainPass(plan, windowSteps(w, schedule))
      if (r.stopped) break
    }
  } finally {
    d.close()
  }
  return d.finish({ train_type: 'dynamic_select', component: sel.key, strategy: sel.strategy, selections })

  function warmup(w: Window): Int32Array {
    // A fresh draw per flex-epoch (DataFlex reuses one fixed-seed draw in every flex-epoch).
    const indices = uniformWithReplacement(Rng.derive(seed, 'warmup', w.flexEpoch), info.num_train, w.numSamples)
    d.runlog.decision({
      step: w.decisionStep,
      kind: 'plan',
      strategy: 'warmup',
      flex_epoch: w.flexEpoch,
      steps: [w.firstStep, w.lastStep],
      count: indices.length,
      hash: hashArrays(indices),
      ...(indices.length <= MAX_LOGGED_INDICES ? { indices: Array.from(indices) } : {}),
    })
    return indices
  }

  async function select(w: Window): Promise<Int32Array> {
    d.report('selecting', w.decisionStep)
    const ctx: SelectContext = {
      step: w.decisionStep,
      numSamples: w.numSamples,
      updateIndex: w.update,
      updateTimes: w.updateTimes,
      flexEpoch: w.flexEpoch,
      rng: Rng.derive(seed, 'select', w.decisionStep),
      model,
      cacheDir,
      log: strategyLog,
    }
    const t0 = performance.now()
    const result = await instance.select(ctx)
    const selectMs = performance.now() - t0
    const { indices, returned, toppedUp } = settleIndices(result, w.numSamples, info.num_train, Rng.derive(seed, 'topup', w.decisionStep), sel.strategy)
    if (toppedUp > 0) strategyLog(`step ${w.decisionStep}: ${returned} of ${w.numSamples} indices returned; topped up by cycling the selection`)
    const scores = result.scores ? summarizeScores(result.scores) : undefined
    const extra = splitInfo(result.info)
    d.runlog.decision({
      step: w.decisionStep,
      kind: 'select',
      strategy: sel.strategy,
      component: sel.key,
      flex_epoch: w.flexEpoch,
      update: w.update,
      update_times: w.updateTimes,
      steps: [w.firstStep, w.lastStep],
      count: indices.length,
      returned,
      ...(toppedUp > 0 ? { topped_up: toppedUp } : {}),
      hash: hashArrays(indices),
      ...(indices.length <= MAX_LOGGED_INDICES ? { indices: Array.from(indices) } : {}),
      ...(scores ? { scores } : {}),
      ...(extra.info ? { info: extra.info } : {}),
      timings: { select_ms: Math.round(selectMs * 1000) / 1000, ...extra.timings },
    })
    selections++
    return indices
  }
}
