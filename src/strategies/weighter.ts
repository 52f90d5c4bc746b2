/**
 * The weighter contract (`train_type: dynamic_weight`): on every micro-batch a weighter turns per-sample losses
 * (and optionally embeddings) into per-sample loss weights. Built-in weighters (loss, adapt, joint_update_aware)
 * grow this contract; `custom` files use it as it stands.
 */
import type { Rng } from '../math/rng.ts'
import { definer, type Awaitable, type ComponentDefinition, type DecisionFacts, type Matrix, type ModelOps, type PoolEnv, type Stateful } from './types.ts'

/** One micro-batch as the weighter sees it; row i of every array is the same sample. */
export interface WeighContext {
  /** Global optimizer step this micro-batch belongs to (1-based: the step being trained). */
  readonly step: number
  /** Training-set indices of the micro-batch's samples. */
  readonly indices: Int32Array
  /** Per-sample mean token loss under the current model. */
  readonly losses: Float32Array
  /** Per-sample count of loss tokens. */
  readonly tokens: Int32Array
  /** Pooled hidden states, when the weighter asked for them. */
  readonly embeddings?: Matrix
  /** Seeded from the run seed and the step. */
  readonly rng: Rng
  readonly model: ModelOps
  readonly log: (message: string) => void
}

export interface WeighResult extends DecisionFacts {
  /** One weight per sample, in the micro-batch's order. */
  readonly weights: Float32Array
}

export interface WeighterInstance extends Stateful {
  weigh(ctx: WeighContext): Awaitable<WeighResult>
}

export type WeighterEnv = PoolEnv

export type WeighterDefinition<P = unknown> = ComponentDefinition<'weighter', P, WeighterEnv, WeighterInstance>

export const defineWeighter = definer<'weighter', WeighterEnv, WeighterInstance>('weighter')
