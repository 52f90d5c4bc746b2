/**
 * `train_type: dynamic_select`: walk the flex-epoch schedule (select-schedule.ts) window by window. A warm-up window
 * trains on random indices; a selection window asks the selector for B_g × steps indices at its decision step,
 * with the model exactly as trained so far. Each window is one pass: its indices shuffled (unless
 * disable_shuffling) into micro-batches of per_device_train_batch_size and steps of GA micro-batches, as a
 * DataLoader over Subset(train, indices) with a RandomSampler would. Every decision goes to decisions.jsonl; a
 * selection with scores also to `dataflex/selections/step_<N>.json` (selection-file.ts).
 */
import { join } from 'node:path'
import type { LoadedConfig } from '../config/index.ts'
import { Rng } from '../math/rng.ts'
import { uniformWithReplacement } from '../math/sampling.ts'
import type { ResolvedSelector } from '../strategies/presets.ts'
import { DEFAULT_METRIC, SELECTIONS_DIR, selectionFileName, writeSelectionFile } from '../strategies/selection-file.ts'
import type { ModelOps, SelectContext, SelectResult, SelectorInstance } from '../strategies/types.ts'
import type { DriverSummary, TrainDriver } from './driver.ts'
import type { Executor, LoadInfo } from './executor.ts'
import { BridgeModelOps } from './model-ops.ts'
import type { StepPosition } from './schedule.ts'
import { buildSelectSchedule, type SelectSchedule, type Window } from './select-schedule.ts'
import { checkIndices, createComponent, indexFields, prepareComponent, restoreState, StrategyError, StrategyRuntime } from './strategy-runtime.ts'
import type { Trainer, TrainerOptions } from './trainer.ts'
import { microBatchRows, passPlanOf, shuffled, walk } from './walk.ts'

export interface SelectRunOptions extends TrainerOptions {
  /** The model handle strategies get; default: the executor's ops. */
  modelOps?: (exec: Executor, info: LoadInfo) => ModelOps
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
    throw new StrategyError('bad_index', `${strategy}: select() must return { indices } (an Int32Array)`)
  }
  const m = got.length
  if (m === 0) throw new StrategyError('empty_selection', `${strategy}: returned no indices (${want} requested)`)
  if (m > want) throw new StrategyError('too_many_indices', `${strategy}: returned ${m} indices, ${want} requested`)
  checkIndices(got, numTrain, strategy)
  if (result.scores !== undefined && result.scores.length !== m) {
    throw new StrategyError('bad_scores', `${strategy}: ${result.scores.length} scores for ${m} indices`)
  }
  // It names a JSON key of the run's selection files.
  const metric = result.metric as unknown
  if (metric !== undefined && (typeof metric !== 'string' || metric === '')) {
    throw new StrategyError('bad_scores', `${strategy}: metric must be a non-empty string (the scores' name), got ${JSON.stringify(metric)}`)
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

/** The schedule's windows as the walker takes them, each with its steps' flow-callback positions. */
export function flexWindows(schedule: SelectSchedule): { window: Window; decisionStep: number; steps: StepPosition[] }[] {
  return schedule.windows.map((w) => ({ window: w, decisionStep: w.decisionStep, steps: windowSteps(w, schedule) }))
}

/** The flex-epoch schedule of the run's keys (dynamic_select's, and dynamic_reorder's). */
export function flexSchedule(info: LoadInfo, cfg: LoadedConfig): SelectSchedule {
  return buildSelectSchedule({
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
}

export async function runSelect(d: TrainDriver, cfg: LoadedConfig, sel: ResolvedSelector, opts: SelectRunOptions): Promise<DriverSummary> {
  const info = d.info
  const schedule = flexSchedule(info, cfg)
  const seed = info.seed
  const b = microBatchRows(info)
  const ga = info.gradient_accumulation_steps
  const runtime = new StrategyRuntime(sel, cfg, info, d.runlog, opts.log)
  const instance: SelectorInstance = createComponent(sel, {
    numTrain: info.num_train,
    numEval: info.num_eval,
    seed,
    baseDir: sel.preset.baseDir,
  })
  const model = opts.modelOps ? opts.modelOps(d.exec, info) : new BridgeModelOps(d.exec, info)

  d.runlog.writeJson('select.json', {
    component: sel.key,
    algorithm: sel.algorithm,
    strategy: sel.strategy,
    params: sel.rawParams,
    inputs: sel.inputs,
    cache_dir: runtime.cacheDir,
    num_train: info.num_train,
    num_eval: info.num_eval,
    global_batch: schedule.globalBatch,
    flex_epoch_length: schedule.flexEpochLength,
    update_times: schedule.updateTimes,
    max_steps: schedule.maxSteps,
    windows: schedule.windows.length,
    // The report counts each selection per dataset of `dataset` (rows null when not known, with the reason).
    datasets: info.dataset_rows,
  })

  let selections = 0
  if (opts.resume !== undefined) {
    const saved = opts.resume.trainer as { selections: number; instance: unknown }
    selections = saved.selections
    restoreState(instance, saved.instance, sel.strategy)
  }
  const windows = flexWindows(schedule)
  await walk(d, {
    maxSteps: schedule.maxSteps,
    windows,
    signal: opts.signal,
    phase: ({ window }) => (window.kind === 'warmup' ? 'warmup' : 'training'),
    ...(opts.resume === undefined ? {} : { resume: opts.resume }),
    checkpoint: () => ({ selections, instance: instance.state?.() ?? null }),
    plan: async ({ window: w }) => {
      const picked = w.kind === 'warmup' ? warmup(w) : await select(w)
      const order = info.disable_shuffling ? picked : shuffled(picked, Rng.derive(seed, 'shuffle', w.decisionStep))
      const microDone = (w.decisionStep - w.flexEpoch * schedule.flexEpochLength) * ga
      return passPlanOf(order, b, Array.from({ length: w.steps }, () => ga), w.flexEpoch, schedule.flexEpochLength * ga, microDone)
    },
  })
  runtime.saveState(instance, d.stepsTrained)
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
      ...indexFields(indices),
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
      cacheDir: runtime.cacheDir,
      log: runtime.log,
    }
    const t0 = performance.now()
    const result = await instance.select(ctx)
    const ms = performance.now() - t0
    const { indices, returned, toppedUp } = settleIndices(result, w.numSamples, info.num_train, Rng.derive(seed, 'topup', w.decisionStep), sel.strategy)
    if (toppedUp > 0) runtime.log(`step ${w.decisionStep}: ${returned} of ${w.numSamples} indices returned; topped up by cycling the selection`)
    // The selection's own indices (before any top-up) with their scores, for a later reorder's cached_selection.
    if (result.scores !== undefined) {
      writeSelectionFile(join(d.runlog.outputDir, SELECTIONS_DIR), {
        step: w.decisionStep,
        indices: result.indices,
        scores: result.scores,
        metric: result.metric ?? DEFAULT_METRIC,
        strategy: sel.strategy,
        component: sel.key,
      })
    }
    runtime.decision(
      {
        step: w.decisionStep,
        kind: 'select',
        strategy: sel.strategy,
        component: sel.key,
        flex_epoch: w.flexEpoch,
        update: w.update,
        update_times: w.updateTimes,
        steps: [w.firstStep, w.lastStep],
        returned,
        ...(toppedUp > 0 ? { topped_up: toppedUp } : {}),
        ...indexFields(indices),
        // Relative to output_dir.
        ...(result.scores !== undefined ? { scores_file: join(SELECTIONS_DIR, selectionFileName(w.decisionStep)) } : {}),
      },
      { scores: result.scores, info: result.info, ms, timingKey: 'select_ms' },
    )
    selections++
    return indices
  }
}

/** `train_type: dynamic_select`: the selector preset is resolved (and its inputs found) before the sidecar starts. */
export const selectTrainer: Trainer<ResolvedSelector> = {
  trainType: 'dynamic_select',
  description: 'a selector chooses the samples of each update window (selectors: section)',
  async prepare(cfg, log) {
    const selector = await prepareComponent(cfg, 'selector', log)
    return selector
  },
  loadExtras: () => ({ dataset_rows: true }),
  train: (d, cfg, selector, opts) => runSelect(d, cfg, selector, opts),
}
