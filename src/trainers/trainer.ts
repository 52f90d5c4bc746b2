/**
 * The contract of a trainer (one per `train_type`, listed in table.ts): what it checks before the sidecar starts,
 * and how it plans and walks the run once the model is loaded.
 */
import type { LoadedConfig, TrainType } from '../config/index.ts'
import type { DriverSummary, TrainDriver } from './driver.ts'
import type { LoadExtras } from './executor.ts'
import type { ResumePoint } from './resume.ts'

export interface TrainerOptions {
  /** Lines for the user (strategy logs, warnings). */
  log: (line: string) => void
  signal?: AbortSignal
  /** The checkpoint the run continues from (resume.ts). */
  resume?: ResumePoint
}

export interface Trainer<Prepared = unknown> {
  readonly trainType: TrainType
  /** One line for `train_type` errors and docs. */
  readonly description: string
  /**
   * Everything that can be checked before a model loads (strategy presets, their params and input files): bad input
   * is a config error in a second, not after the sidecar loaded a model.
   */
  prepare(cfg: LoadedConfig, log: (line: string) => void): Promise<Prepared>
  /** What the trainer needs of `load` besides the LLaMA-Factory config (default: nothing). */
  loadExtras?(cfg: LoadedConfig, prepared: Prepared): LoadExtras
  /** Plans the run from the loaded model's facts and walks it (walk.ts). */
  train(d: TrainDriver, cfg: LoadedConfig, prepared: Prepared, opts: TrainerOptions): Promise<DriverSummary>
}
