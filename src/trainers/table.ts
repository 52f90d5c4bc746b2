/** The trainer of every `train_type` (the config schema knows them all, so a typo gets "did you mean"). */
import type { LoadedConfig, TrainType } from '../config/index.ts'
import { legoTrainer } from './lego.ts'
import { mixTrainer } from './mix.ts'
import { reorderTrainer } from './reorder.ts'
import { selectTrainer } from './select.ts'
import { staticTrainer } from './static.ts'
import type { Trainer } from './trainer.ts'
import { weightTrainer } from './weight.ts'

// Type-erased: each trainer's prepare() output goes only to its own train().
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const TRAINERS: Readonly<Record<TrainType, Trainer<any>>> = {
  static: staticTrainer,
  dynamic_select: selectTrainer,
  dynamic_mix: mixTrainer,
  dynamic_weight: weightTrainer,
  dynamic_reorder: reorderTrainer,
  dynamic_lego: legoTrainer,
}

/** The trainer of a loaded config's train_type. */
export function trainerFor(cfg: Pick<LoadedConfig, 'dataflex'>): Trainer<unknown> {
  return TRAINERS[cfg.dataflex.train_type]
}
