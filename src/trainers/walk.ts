/**
 * Walking a planned run. Every train_type plans its run as a list of windows — consecutive optimizer steps trained
 * as one pass over one index plan — and this module walks them the same way for all: before each window the
 * trainer decides its samples (a fixed sampler order, a selection, a draw by domain proportions, an ordering), then
 * the window is trained as one pass, and a callback asking to stop (early stopping) ends the walk.
 * Planning stays in the pure schedule modules (schedule.ts, select-schedule.ts); deciding stays in the trainers.
 */
import type { Rng } from '../math/rng.ts'
import type { BeforeStep, PassResult, TrainDriver, TrainedSamples } from './driver.ts'
import { remainingPlan, writeCheckpointState, type ResumePoint } from './resume.ts'
import type { Phase } from './events.ts'
import type { LoadInfo, PassPlan } from './executor.ts'
import type { StepPosition } from './schedule.ts'

/** What the walker needs of a window; trainers keep their own richer window types. */
export interface StepWindow {
  /** Global step the window's decision follows (0: before the first step). */
  readonly decisionStep: number
  /** Flow-callback position of each step, in order (one pass = these steps). */
  readonly steps: readonly StepPosition[]
}

export interface Walk<W extends StepWindow> {
  /** Optimizer steps of the whole run (the scheduler's horizon). */
  readonly maxSteps: number
  readonly windows: Iterable<W>
  /** The window's pass: its samples decided and cut into micro-batches and steps. */
  plan(window: W): PassPlan | Promise<PassPlan>
  /** Progress phase while the window trains (default 'training'). */
  phase?(window: W): Phase
  /**
   * After each window's pass, with what its training forward measured of every trained sample (plan order), the
   * pass's `weigh` round trips when it weighed, and the global step of the plan's first step (a resumed window's
   * plan is its remaining steps).
   */
  onPass?(samples: TrainedSamples, window: W, plan: PassPlan, weigh: PassResult['weigh'], firstStep: number): void
  /**
   * Right after a checkpoint was saved at global step `step`, inside `window` (whose pass so far trained `trained`):
   * the trainer's state then, plain JSON, written beside the checkpoint for an exact resume.
   */
  checkpoint?(step: number, trained: TrainedSamples, window: W, plan: PassPlan, firstStep: number): unknown
  /** Continue from a checkpoint (resume.ts): the windows before it are skipped, the one it fell in is finished. */
  readonly resume?: ResumePoint
  /** Model ops between two steps of a window (driver.ts, BeforeStep). */
  readonly beforeStep?: BeforeStep
  readonly signal?: AbortSignal
}

/**
 * Trains every window in order; a stop (early stopping, or TrainDriver.requestStop) ends the walk early, before the
 * next window's decision. After every checkpoint the walk's position (window, its plan), the logs' sizes and the
 * trainer's state go beside it (resume.ts).
 */
export async function walk<W extends StepWindow>(d: TrainDriver, run: Walk<W>): Promise<void> {
  const resume = run.resume
  await d.begin(run.maxSteps, resume?.step ?? 0)
  try {
    let index = -1
    for (const w of run.windows) {
      index++
      run.signal?.throwIfAborted()
      if (d.stopRequested) break
      if (w.steps.length === 0) continue
      let plan: PassPlan
      let steps = w.steps
      if (resume !== undefined && index < resume.window) continue
      if (resume !== undefined && index === resume.window) {
        const left = remainingPlan(resume)
        if (left === undefined) continue
        plan = left
        steps = w.steps.slice(w.steps.length - plan.stepSizes.length)
      } else plan = await run.plan(w)
      const firstStep = steps[0]!.globalStep
      d.report(run.phase?.(w) ?? 'training', w.decisionStep)
      const onSave = (step: number, trained: TrainedSamples): void => {
        writeCheckpointState(d, step, { window: index, plan, planFirstStep: firstStep, trainer: run.checkpoint?.(step, trained, w, plan, firstStep) ?? null })
        d.saveReport()
      }
      const r = await d.trainPass(plan, steps, run.beforeStep, onSave)
      run.onPass?.(r.samples, w, plan, r.weigh, firstStep)
      if (r.stopped) break
    }
  } finally {
    d.close()
  }
}

/**
 * Rows of one planned micro-batch: every rank's per-device batch. With several ranks a plan is global and the sidecar
 * gives each rank its contiguous slice of every micro-batch (as accelerate's dispatch gives rank r the r-th
 * per-device batch of each round).
 */
export function microBatchRows(info: Pick<LoadInfo, 'per_device_train_batch_size' | 'world_size'>): number {
  return info.per_device_train_batch_size * info.world_size
}

/**
 * Plan of consecutive micro-batches: `order` cut into micro-batches of `batch`, `stepMicroCounts[k]` of them for
 * step k — what a DataLoader over `order` with batch size `batch` yields, grouped by gradient accumulation.
 */
export function passPlanOf(
  order: Int32Array,
  batch: number,
  stepMicroCounts: readonly number[],
  epoch: number,
  microInEpoch: number,
  microDone = 0,
): PassPlan {
  const microSizes: number[] = []
  for (let start = 0; start < order.length; start += batch) microSizes.push(Math.min(batch, order.length - start))
  const planned = stepMicroCounts.reduce((a, b) => a + b, 0)
  if (planned !== microSizes.length) throw new Error(`plan has ${microSizes.length} micro-batches but its steps take ${planned}`)
  return {
    epoch,
    indices: order,
    microSizes: Int32Array.from(microSizes),
    stepSizes: Int32Array.from(stepMicroCounts),
    microInEpoch,
    microDone,
  }
}

/** Fisher–Yates with a seeded stream: the order a RandomSampler over Subset(train, indices) would visit. */
export function shuffled(indices: Int32Array, rng: Rng): Int32Array {
  const perm = rng.permutation(indices.length)
  const out = new Int32Array(indices.length)
  for (let i = 0; i < out.length; i++) out[i] = indices[perm[i]!]!
  return out
}
