/**
 * The weighter contract (`train_type: dynamic_weight`): on every micro-batch after the warm-up, in the middle of
 * the training step, the executor sends the micro-batch's per-sample losses from the training forward itself (and,
 * when the weighter asks, pooled hidden states of the same forward) and back-propagates the loss weighted by what
 * `weigh` returns. Weights are relative to the weighter's loss reduction (docs/algorithms.md#loss-reductions): a
 * weighter that returns all ones trains exactly as its warm-up does.
 */
import type { Rng } from '../math/rng.ts'
import { definer, type Awaitable, type ComponentDefinition, type DecisionFacts, type EmbeddingOptions, type Matrix, type ModelOps, type PoolEnv, type Stateful } from './types.ts'

export type WeightReduction = 'token_mean' | 'sample_mean'

/** One micro-batch as the weighter sees it; row i of every array is the same sample. */
export interface WeighContext {
  /** Global optimizer step this micro-batch belongs to (1-based: the step being trained). */
  readonly step: number
  /** Position of the micro-batch in its step's gradient-accumulation group (0-based). */
  readonly micro: number
  /** Training-set indices of the micro-batch's samples. */
  readonly indices: Int32Array
  /** Per-sample mean token loss from this very training forward (label tokens only). */
  readonly losses: Float32Array
  /** Per-sample count of loss tokens. */
  readonly tokens: Int32Array
  /** Pooled hidden states of this training forward, [rows × hidden], when the weighter set `embeddings`. */
  readonly embeddings?: Matrix
  /** Samples in the whole gradient-accumulation group (B_G) and its micro-batches (M_G). */
  readonly groupSamples: number
  readonly groupMicro: number
  /** Seeded from the run seed, the step and the micro-batch. */
  readonly rng: Rng
  readonly log: (message: string) => void
}

export interface WeighResult extends DecisionFacts {
  /** One finite weight per sample, in the micro-batch's order. */
  readonly weights: Float32Array | Float64Array
}

/** Between optimizer steps: the model as trained so far, for what a weighter refreshes (anchors, a target). */
export interface RefreshContext {
  /** Optimizer steps trained so far (the next one trained is step + 1). */
  readonly step: number
  readonly model: ModelOps
  readonly rng: Rng
  readonly cacheDir: string
  readonly log: (message: string) => void
}

/** Pooled hidden states of each micro-batch, from its training forward (no extra forward). */
export interface WeighEmbeddings extends Omit<EmbeddingOptions, 'model'> {}

export interface WeighterInstance extends Stateful {
  /** The loss the weights scale (default `token_mean`, Hugging Face's; the built-ins use `sample_mean`). */
  readonly reduction?: WeightReduction
  /** Ask for pooled embeddings of every weighted micro-batch. */
  readonly embeddings?: WeighEmbeddings
  /**
   * Model ops between steps, never inside one: `run` is called before the first weighted step and again before each
   * step that comes `every` steps after the last refresh.
   */
  readonly refresh?: { readonly every: number; run(ctx: RefreshContext): Awaitable<DecisionFacts | void> }
  weigh(ctx: WeighContext): Awaitable<WeighResult>
}

export interface WeighterEnv extends PoolEnv {
  readonly numEval: number
}

export type WeighterDefinition<P = unknown> = ComponentDefinition<'weighter', P, WeighterEnv, WeighterInstance>

export const defineWeighter = definer<'weighter', WeighterEnv, WeighterInstance>('weighter')
