/**
 * Exact resume. Beside every checkpoint Hugging Face writes (`<output_dir>/checkpoint-<step>/`: weights, optimizer,
 * scheduler, RNG states, trainer state) the walk writes `dataflex_state.json`: which window the step fell in, that
 * window's plan, the sizes of the run's logs, and the trainer's state (every strategy's `state()`, streams, clocks,
 * statistics not yet handed to a strategy). Resuming restores both halves: the sidecar the first, the trainer the
 * second; the walk skips the windows before the checkpoint and trains the rest of the one it fell in, and the logs are
 * cut back to where they stood, so the resumed run writes the same lines an uninterrupted one would.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError } from '../config/index.ts'
import { writeJsonAtomic } from '../util/atomic.ts'
import type { TrainDriver } from './driver.ts'
import type { PassPlan } from './executor.ts'
import type { LogSizes } from './runlog.ts'
import { plainState } from './strategy-runtime.ts'

export const STATE_FILE = 'dataflex_state.json'
const VERSION = 1

export interface ResumePoint {
  /** The checkpoint folder. */
  readonly checkpoint: string
  /** Global steps trained at the checkpoint. */
  readonly step: number
  /** Index of the window the step fell in. */
  readonly window: number
  /** That window's plan (a resumed window's: its remaining steps), and the global step of its first step. */
  readonly plan: PassPlan
  readonly planFirstStep: number
  readonly logs: LogSizes
  /** What the trainer's `checkpoint` returned. */
  readonly trainer: unknown
}

interface PlanJson {
  epoch: number
  indices: number[]
  micro_sizes: number[]
  step_sizes: number[]
  micro_in_epoch: number
  micro_done: number
  weights: number[] | null
  reduction: PassPlan['reduction'] | null
  reference_model: string | null
  weigh: PassPlan['weigh'] | null
}

function planJson(p: PassPlan): PlanJson {
  return {
    epoch: p.epoch,
    indices: Array.from(p.indices),
    micro_sizes: Array.from(p.microSizes),
    step_sizes: Array.from(p.stepSizes),
    micro_in_epoch: p.microInEpoch,
    micro_done: p.microDone ?? 0,
    weights: p.weights === undefined ? null : Array.from(p.weights),
    reduction: p.reduction ?? null,
    reference_model: p.referenceModel ?? null,
    weigh: p.weigh ?? null,
  }
}

function planOf(j: PlanJson): PassPlan {
  return {
    epoch: j.epoch,
    indices: Int32Array.from(j.indices),
    microSizes: Int32Array.from(j.micro_sizes),
    stepSizes: Int32Array.from(j.step_sizes),
    microInEpoch: j.micro_in_epoch,
    microDone: j.micro_done,
    ...(j.weights === null ? {} : { weights: Float32Array.from(j.weights) }),
    ...(j.reduction === null ? {} : { reduction: j.reduction }),
    ...(j.reference_model === null ? {} : { referenceModel: j.reference_model }),
    ...(j.weigh === null ? {} : { weigh: j.weigh }),
  }
}

/** Written by the walk right after the checkpoint of `step` (the folder Hugging Face just wrote); the checkpoint is complete then. */
export function writeCheckpointState(d: TrainDriver, step: number, at: { window: number; plan: PassPlan; planFirstStep: number; trainer: unknown }): void {
  const dir = join(d.info.output_dir, `checkpoint-${step}`)
  if (!existsSync(dir)) throw new Error(`the sidecar reported a checkpoint at step ${step}, but ${dir} does not exist`)
  const trainer = plainState(at.trainer ?? null, `every state() at the checkpoint of step ${step}`)
  writeJsonAtomic(join(dir, STATE_FILE), {
    version: VERSION,
    step,
    window: at.window,
    plan_first_step: at.planFirstStep,
    plan: planJson(at.plan),
    logs: d.runlog.sizes(),
    trainer,
  })
  d.runlog.observer.checkpoint?.({ step, path: dir })
}

/** The resume point stored beside a checkpoint; a config error naming it when there is none or it is unreadable. */
export function readCheckpointState(checkpoint: string): ResumePoint {
  const file = join(checkpoint, STATE_FILE)
  if (!existsSync(file)) {
    throw new ConfigError('bad_value', `resume_from_checkpoint: ${checkpoint} has no ${STATE_FILE} (the run stopped before writing it, or an older version wrote the checkpoint)`, {
      key: 'resume_from_checkpoint',
      hint: 'resume from an earlier checkpoint of the run, or start afresh (overwrite_output_dir: true)',
    })
  }
  let j: { version?: number; step: number; window: number; plan_first_step: number; plan: PlanJson; logs: LogSizes; trainer: unknown }
  try {
    j = JSON.parse(readFileSync(file, 'utf8'))
  } catch (err) {
    throw new ConfigError('bad_value', `resume_from_checkpoint: ${file} is not JSON (${(err as Error).message})`, { key: 'resume_from_checkpoint', cause: err })
  }
  if (j.version !== VERSION) throw new ConfigError('bad_value', `resume_from_checkpoint: ${file} has version ${String(j.version)}, this release reads ${VERSION}`, { key: 'resume_from_checkpoint' })
  return { checkpoint, step: j.step, window: j.window, plan: planOf(j.plan), planFirstStep: j.plan_first_step, logs: j.logs, trainer: j.trainer }
}

/** `--resume`: the last checkpoint of output_dir that is complete (Hugging Face's half and ours). */
export function lastCompleteCheckpoint(outputDir: string): string | undefined {
  if (!existsSync(outputDir)) return undefined
  const steps = readdirSync(outputDir)
    .map((name) => /^checkpoint-(\d+)$/.exec(name))
    .filter((m) => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a)
  for (const step of steps) {
    const dir = join(outputDir, `checkpoint-${step}`)
    if (existsSync(join(dir, 'trainer_state.json')) && existsSync(join(dir, STATE_FILE))) return dir
  }
  return undefined
}

/** The steps of the resumed window's plan after the checkpoint (undefined: the window was finished). */
export function remainingPlan(resume: ResumePoint): PassPlan | undefined {
  const p = resume.plan
  const trained = resume.step - resume.planFirstStep + 1
  if (trained >= p.stepSizes.length) return undefined
  let micro = 0
  for (let k = 0; k < trained; k++) micro += p.stepSizes[k]!
  let sample = 0
  for (let m = 0; m < micro; m++) sample += p.microSizes[m]!
  return {
    ...p,
    indices: p.indices.slice(sample),
    microSizes: p.microSizes.slice(micro),
    stepSizes: p.stepSizes.slice(trained),
    microDone: (p.microDone ?? 0) + micro,
    ...(p.weights === undefined ? {} : { weights: p.weights.slice(sample) }),
    rngState: resume.checkpoint,
  }
}
