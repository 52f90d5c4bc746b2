/**
 * The trainer of every `train_type`, and the one gate for train types that have none yet. The config schema knows
 * every Python DataFlex train type (so a typo gets "did you mean"); this table says which of them run.
 */
import { ConfigError, type LoadedConfig, type TrainType } from '../config/index.ts'
import { legoTrainer } from './lego.ts'
import { mixTrainer } from './mix.ts'
import { reorderTrainer } from './reorder.ts'
import { selectTrainer } from './select.ts'
import { staticTrainer } from './static.ts'
import type { Trainer } from './trainer.ts'
import { weightTrainer } from './weight.ts'

// Type-erased: each trainer's prepare() output goes only to its own train().
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const TRAINERS: Readonly<Partial<Record<TrainType, Trainer<any>>>> = {
  static: staticTrainer,
  dynamic_select: selectTrainer,
  dynamic_mix: mixTrainer,
  dynamic_weight: weightTrainer,
  dynamic_reorder: reorderTrainer,
  dynamic_lego: legoTrainer,
}

/** The trainer of a train type; a config error (exit 2) for one that has none yet. `where` locates the key. */
export function trainerOf(type: TrainType, where: string): Trainer<unknown> {
  const trainer = TRAINERS[type]
  if (trainer === undefined) {
    throw new ConfigError('unsupported', `train_type '${type}' (${where}) is not supported yet; it lands in a later release`, {
      key: 'train_type',
      hint: `supported now: ${Object.keys(TRAINERS).join(', ')}`,
    })
  }
  return trainer
}

/** The trainer of a loaded config's train_type (the same gate, for configs loaded without it). */
export function trainerFor(cfg: Pick<LoadedConfig, 'path' | 'dataflex'>): Trainer<unknown> {
  return trainerOf(cfg.dataflex.train_type, cfg.path)
}
