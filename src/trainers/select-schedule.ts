/**
 * The flex-epoch schedule of `train_type: dynamic_select` (docs/algorithms.md#schedule-dynamic_select), as a pure
 * function of the config: how many steps the run trains, and which window each step belongs to — a random warm-up
 * window or the window of one selection. The trainer walks `windows` in order; nothing else decides when to select.
 *
 * Deliberate differences from the Python DataFlex (docs/select.md lists them all):
 * - `warmup_step: 0` works: the first selection of every flex-epoch happens at its first step (the first one
 *   before step 1, so it sees the initial model). DataFlex trains 0 steps then.
 * - A window cut short (by the end of a dataset-sized flex-epoch when update_times ≤ 0, or by max_steps) asks
 *   for B_g × the steps it really trains, not B_g × U; DataFlex selects B_g × U and drops the rest unseen.
 * - No `B_g · W ≤ N` check: warm-up draws with replacement, so any W works.
 */
import { ScheduleError } from './schedule.ts'

export interface SelectScheduleInput {
  /** Training samples after preprocessing (N). */
  numTrain: number
  perDeviceBatch: number
  gradAccum: number
  /** Data-parallel processes; default 1. */
  worldSize?: number
  /** W: random warm-up steps at the start of every flex-epoch. */
  warmupStep: number
  /** U: steps between selections, and each selection feeds U steps. */
  updateStep: number
  /** T: selections per flex-epoch; ≤ 0 means dataset-sized flex-epochs with updates every U steps. */
  updateTimes: number
  /** > 0: the exact number of optimizer steps. */
  trainStep: number
  /** Hugging Face `max_steps`; > 0 is honoured when train_step is 0. */
  maxSteps?: number
  numTrainEpochs: number
}

export type WindowKind = 'warmup' | 'select'

/** A run of consecutive steps trained on one index set. */
export interface Window {
  kind: WindowKind
  /** 0-based flex-epoch. */
  flexEpoch: number
  /** 1-based selection inside the flex-epoch; 0 for warm-up. */
  update: number
  /** T_eff: selections in a full flex-epoch. */
  updateTimes: number
  /** The global step the decision follows (0: before the first step). */
  decisionStep: number
  /** First global step (1-based) trained on this window: decisionStep + 1. */
  firstStep: number
  /** Last global step, inclusive. */
  lastStep: number
  steps: number
  /** Samples to draw or select: B_g × steps. */
  numSamples: number
  /** The window's last step is the last of its flex-epoch or of the run (epoch-end events follow it). */
  endsFlexEpoch: boolean
}

export interface SelectSchedule {
  /** B_g = per-device batch × GA × world size. */
  globalBatch: number
  /** E: steps per flex-epoch. */
  flexEpochLength: number
  /** W and U as configured. */
  warmupStep: number
  updateStep: number
  /** T_eff: T when T > 0, else the updates that fit in a dataset-sized flex-epoch after warm-up. */
  updateTimes: number
  maxSteps: number
  /** Flex-epochs the run touches (the last may be partial). */
  flexEpochs: number
  windows: Window[]
}

export interface StepPhase {
  phase: WindowKind
  flexEpoch: number
  /** Position inside the flex-epoch, 0-based. */
  offset: number
  /** 1-based selection index; 0 during warm-up. */
  update: number
}

function positiveInt(value: number, key: string, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new ScheduleError('config_error', `${key} must be an integer >= ${min}, got ${value}`, { key })
  }
  return value
}

interface Shape {
  globalBatch: number
  E: number
  W: number
  U: number
  Teff: number
  maxSteps: number
}

function shape(input: SelectScheduleInput): Shape {
  const N = positiveInt(input.numTrain, 'numTrain', 1)
  const b = positiveInt(input.perDeviceBatch, 'per_device_train_batch_size', 1)
  const ga = positiveInt(input.gradAccum, 'gradient_accumulation_steps', 1)
  const world = positiveInt(input.worldSize ?? 1, 'world_size', 1)
  const W = positiveInt(input.warmupStep, 'warmup_step', 0)
  const U = positiveInt(input.updateStep, 'update_step', 1)
  const T = input.updateTimes
  if (!Number.isInteger(T)) throw new ScheduleError('config_error', `update_times must be an integer, got ${T}`, { key: 'update_times' })
  const trainStep = positiveInt(input.trainStep, 'train_step', 0)
  const epochs = input.numTrainEpochs
  const globalBatch = b * ga * world
  if (globalBatch * U > N) {
    // Kept from DataFlex: most selectors choose without replacement, so one selection cannot exceed the pool.
    throw new ScheduleError(
      'config_error',
      `one selection needs global batch × update_step = ${globalBatch} × ${U} = ${globalBatch * U} samples, but the training set has ${N}`,
      { key: 'update_step' },
    )
  }
  const E = T > 0 ? W + U * T : Math.max(1, Math.ceil(N / globalBatch))
  const Teff = T > 0 ? T : Math.max(1, Math.ceil(Math.max(E - W, 0) / U))
  let maxSteps: number
  if (trainStep > 0) maxSteps = trainStep
  else if ((input.maxSteps ?? -1) > 0) maxSteps = input.maxSteps!
  else {
    if (!(Number.isFinite(epochs) && epochs > 0)) {
      throw new ScheduleError('config_error', `num_train_epochs must be > 0 when train_step is 0, got ${epochs}`, {
        key: 'num_train_epochs',
      })
    }
    maxSteps = Math.ceil(epochs * E)
  }
  return { globalBatch, E, W, U, Teff, maxSteps }
}

/** The phase of global step `step` (1-based): which window trains it. */
export function phaseOf(s: Pick<SelectSchedule, 'flexEpochLength' | 'warmupStep' | 'updateStep'>, step: number): StepPhase {
  const E = s.flexEpochLength
  const flexEpoch = Math.floor((step - 1) / E)
  const offset = (step - 1) % E
  if (offset < s.warmupStep) return { phase: 'warmup', flexEpoch, offset, update: 0 }
  return { phase: 'select', flexEpoch, offset, update: Math.floor((offset - s.warmupStep) / s.updateStep) + 1 }
}

/**
 * Windows of one flex-epoch f: warm-up covering offsets [0, W), then selection c (1-based) covering
 * [W + (c−1)·U, min(W + c·U, E)); everything clipped at max_steps.
 */
export function buildSelectSchedule(input: SelectScheduleInput): SelectSchedule {
  const { globalBatch, E, W, U, Teff, maxSteps } = shape(input)
  const windows: Window[] = []
  const push = (kind: WindowKind, flexEpoch: number, update: number, start: number, end: number): void => {
    // start/end: offsets inside the flex-epoch, end exclusive.
    const base = flexEpoch * E
    const first = base + start + 1
    const last = Math.min(base + end, maxSteps)
    if (first > last) return
    windows.push({
      kind,
      flexEpoch,
      update,
      updateTimes: Teff,
      decisionStep: first - 1,
      firstStep: first,
      lastStep: last,
      steps: last - first + 1,
      numSamples: globalBatch * (last - first + 1),
      endsFlexEpoch: last === base + E || last === maxSteps,
    })
  }
  const flexEpochs = Math.ceil(maxSteps / E)
  for (let f = 0; f < flexEpochs; f++) {
    if (W > 0) push('warmup', f, 0, 0, Math.min(W, E))
    for (let c = 1; W + (c - 1) * U < E; c++) push('select', f, c, W + (c - 1) * U, Math.min(W + c * U, E))
  }
  return { globalBatch, flexEpochLength: E, warmupStep: W, updateStep: U, updateTimes: Teff, maxSteps, flexEpochs, windows }
}

/** Global steps after which a selection is made (0: before step 1). */
export function decisionSteps(schedule: SelectSchedule): number[] {
  return schedule.windows.filter((w) => w.kind === 'select').map((w) => w.decisionStep)
}
