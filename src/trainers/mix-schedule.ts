/**
 * The schedule of `train_type: dynamic_mix` (docs/algorithms.md#schedule-dynamic_mix), as a pure function of the
 * config: how many steps the run trains and its windows — a warm-up on the initial proportions, then one window per
 * mixer update, or one fixed mixture for the whole run (`static_mix`). Each window draws B_g × its steps samples.
 *
 * It follows the Python DataFlex's MixTrainer (the update steps W, W+U, …; with update_times T ≥ 0 the run is exactly
 * W + U·T steps) except, deliberately (docs/mix.md lists them all):
 * - a window is never short: it draws exactly the samples its steps train (DataFlex's loader can run dry, and the
 *   missing steps are skipped silently);
 * - `warmup_step: 0` works: the first update comes before step 1 (DataFlex trains nothing then);
 * - with T < 0 or `static_mix`, Hugging Face's `max_steps` is honoured after `train_step`, as in dynamic_select.
 */
import { ScheduleError } from './schedule.ts'

export interface MixScheduleInput {
  /** Rows the draws come from, all domains together (S). */
  poolSize: number
  perDeviceBatch: number
  gradAccum: number
  worldSize?: number
  staticMix: boolean
  /** W: steps on the initial proportions before the first update. */
  warmupStep: number
  /** U: steps between updates. */
  updateStep: number
  /** T: updates; < 0 means every U steps until max_steps. */
  updateTimes: number
  /** > 0: the run's steps (ignored when T ≥ 0, as in DataFlex: then the run is W + U·T steps). */
  trainStep: number
  /** Hugging Face `max_steps` (> 0 honoured after train_step). */
  maxSteps?: number
  numTrainEpochs: number
}

export type MixWindowKind = 'static' | 'warmup' | 'update'

export interface MixWindow {
  kind: MixWindowKind
  /** 1-based update index; 0 for warm-up and static windows. */
  update: number
  /** The global step the decision follows (0: before the first step). */
  decisionStep: number
  firstStep: number
  lastStep: number
  steps: number
  /** B_g × steps. */
  numSamples: number
}

export interface MixSchedule {
  globalBatch: number
  maxSteps: number
  /** Updates the run makes (-1 never appears: open-ended runs are counted). */
  updates: number
  /** T as configured (−1: open-ended), for the mixer's context. */
  updateTimes: number
  windows: MixWindow[]
}

function atLeast(value: number, key: string, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new ScheduleError('config_error', `${key} must be an integer >= ${min}, got ${value}`, { key })
  }
  return value
}

/** Steps from train_step, else max_steps, else ⌊S / B_g⌋ × epochs (the Python DataFlex's count). */
function stepsFromData(input: MixScheduleInput, globalBatch: number): number {
  if (input.trainStep > 0) return input.trainStep
  if ((input.maxSteps ?? -1) > 0) return input.maxSteps!
  const epochs = input.numTrainEpochs
  if (!(Number.isFinite(epochs) && epochs > 0)) {
    throw new ScheduleError('config_error', `num_train_epochs must be > 0 when train_step is 0, got ${epochs}`, { key: 'num_train_epochs' })
  }
  const steps = Math.floor(Math.floor(input.poolSize / globalBatch) * epochs)
  if (steps < 1) {
    throw new ScheduleError(
      'config_error',
      `the data gives no step: ${input.poolSize} rows / global batch ${globalBatch} × ${epochs} epochs < 1; set train_step`,
      { key: 'train_step' },
    )
  }
  return steps
}

export function buildMixSchedule(input: MixScheduleInput): MixSchedule {
  atLeast(input.poolSize, 'the training set size', 1)
  const b = atLeast(input.perDeviceBatch, 'per_device_train_batch_size', 1)
  const ga = atLeast(input.gradAccum, 'gradient_accumulation_steps', 1)
  const world = atLeast(input.worldSize ?? 1, 'world_size', 1)
  atLeast(input.trainStep, 'train_step', 0)
  const globalBatch = b * ga * world
  const window = (kind: MixWindowKind, update: number, first: number, last: number): MixWindow => ({
    kind,
    update,
    decisionStep: first - 1,
    firstStep: first,
    lastStep: last,
    steps: last - first + 1,
    numSamples: globalBatch * (last - first + 1),
  })

  if (input.staticMix) {
    const maxSteps = stepsFromData(input, globalBatch)
    return { globalBatch, maxSteps, updates: 0, updateTimes: 0, windows: [window('static', 0, 1, maxSteps)] }
  }

  const W = atLeast(input.warmupStep, 'warmup_step', 0)
  const U = atLeast(input.updateStep, 'update_step', 1)
  const T = input.updateTimes
  if (!Number.isInteger(T)) throw new ScheduleError('config_error', `update_times must be an integer, got ${T}`, { key: 'update_times' })
  const maxSteps = T >= 0 ? W + U * T : stepsFromData(input, globalBatch)
  if (maxSteps < 1) {
    throw new ScheduleError('config_error', `warmup_step 0 and update_times 0 train no step; set update_times >= 1 (or -1)`, {
      key: 'update_times',
    })
  }
  const windows: MixWindow[] = []
  if (W > 0) windows.push(window('warmup', 0, 1, Math.min(W, maxSteps)))
  for (let s = W, c = 1; s < maxSteps; s += U, c++) windows.push(window('update', c, s + 1, Math.min(s + U, maxSteps)))
  const updates = windows.length - (W > 0 ? 1 : 0)
  return { globalBatch, maxSteps, updates, updateTimes: T >= 0 ? T : -1, windows }
}
