/**
 * The contract between trainers and strategies. A strategy is a typed object with a zod params schema and pure
 * functions over typed arrays; everything it needs from the model it asks through `ModelOps`, so it can be unit-
 * tested against saved losses/gradients and driven by the real executor alike.
 *
 * This file holds what every kind shares (ModelOps, the definition shape) and the selector contract; mixer.ts,
 * weighter.ts and reorder.ts hold the other kinds'.
 */
import type { z } from 'zod'
import type { Rng } from '../math/rng.ts'

/** Row sets of the executor: the training set, the eval set, and the named eval sets of a mix run (`eval:<dataset>`). */
export type Split = 'train' | 'eval' | `eval:${string}`

/** A dense row-major matrix. */
export interface Matrix {
  readonly data: Float32Array
  readonly rows: number
  readonly cols: number
}

export interface GradientOptions {
  /** Projection dimension d (the output has d columns). */
  readonly projDim: number
  /** Projector seed: the same seed gives the same projection on any machine, CPU or GPU. */
  readonly seed: number
  /** `adam`: LESS's Adam-preconditioned gradient from the live optimizer moments (the run's betas/eps). */
  readonly precondition: 'sgd' | 'adam'
  /** L2-normalise each projected row. */
  readonly normalize: boolean
  /** Samples projected together, the `gradients` op's chunk_size (the sidecar's passes hold at most the training
   *  micro-batch of them); default: the op catalog's. less/cluster_less set it from their `save_interval` param. */
  readonly chunkSize?: number
}

/**
 * mask_mean: every token; position_weighted: token t weighted ∝ t (ADAPT); last_token; label_mean: the response
 * tokens (labels ≠ −100), every token for a row without labels (joint_update_aware's mean_pool).
 */
export type Pooling = 'mask_mean' | 'position_weighted' | 'last_token' | 'label_mean'

export interface EmbeddingOptions {
  /** Hidden-state layer (Python indexing: -1 is the last layer). */
  readonly layer: number
  readonly pooling: Pooling
  readonly normalize: boolean
  /** A separate local model directory to embed with; default: the training model as it is now. */
  readonly model?: string
  /** Rows per forward (default: the run's); the embeddings do not depend on it. */
  readonly batchSize?: number
}

export interface LossOptions {
  /** Most rows per forward; default: length-sorted batches sized by padded tokens (docs/executor.md). */
  readonly maxBatchRows?: number
}

/** Expert routing of a mixture-of-experts model, counted over each row's tokens. */
export interface RouterLoads {
  /** [rows × layers·experts]: per row, per MoE layer (in model order), the tokens routed to each expert (top-k). */
  readonly loads: Matrix
  readonly layers: number
  readonly experts: number
  /** Experts each token is routed to. */
  readonly topK: number
}

/** What a strategy may ask of the model. Every call is batched on the Python side. */
export interface ModelOps {
  readonly numTrain: number
  readonly numEval: number
  /** Per-sample mean token loss (training's label mask), eval mode, no grad. */
  losses(split: Split, indices: Int32Array, opts?: LossOptions): Promise<Float32Array>
  /** Projected per-sample gradients of the trainable parameters, [indices.length × projDim]. */
  gradients(split: Split, indices: Int32Array, opts: GradientOptions): Promise<Matrix>
  /** Pooled hidden states, [indices.length × hidden]. */
  embeddings(split: Split, indices: Int32Array, opts: EmbeddingOptions): Promise<Matrix>
  /**
   * Expert loads of a mixture-of-experts model (eval mode, no grad); an error for a dense model. `batchSize`: rows
   * per forward (default: the run's per_device_eval_batch_size); the loads do not depend on it.
   */
  routerLoads(split: Split, indices: Int32Array, opts?: { batchSize?: number }): Promise<RouterLoads>
}

/** A value or its promise: the trainers await either, so a pure strategy may answer synchronously. */
export type Awaitable<T> = T | Promise<T>

/** Serialisable state for checkpoints, optional for every kind. */
export interface Stateful {
  state?(): unknown
  restore?(state: unknown): void
}

/** What every strategy is given at creation. */
export interface ComponentEnv {
  readonly seed: number
  /** Directory of the file the preset is written in (input paths in params arrive already resolved). */
  readonly baseDir: string
}

/** One registered algorithm of any kind: a params schema and a factory of instances. */
export interface ComponentDefinition<K extends string, P, E, I> {
  readonly kind: K
  readonly name: string
  readonly description: string
  readonly params: z.ZodType<P>
  create(params: P, env: E): I
}

/** What a `define*` helper takes: create() is typed by the params schema's output. */
export interface DefinitionSpec<S extends z.ZodType, E, I> {
  name: string
  description: string
  params: S
  create(params: z.output<S>, env: E): I
}

/** The `define*` helper of one kind. */
export function definer<K extends string, E, I>(kind: K) {
  return <S extends z.ZodType>(def: DefinitionSpec<S, E, I>): ComponentDefinition<K, z.output<S>, E, I> =>
    ({ kind, ...def }) as ComponentDefinition<K, z.output<S>, E, I>
}

/** What every kind's answer may carry into its decision-log line. */
export interface DecisionFacts {
  /**
   * Small extra facts for decisions.jsonl (counts, method). Entries named `timing_ms`, `timings`, `*_ms` or
   * `*_seconds` are logged apart, as timings: everything else must be the same run after run.
   */
  readonly info?: Readonly<Record<string, unknown>>
}

/** A score per returned entry, logged as a summary. */
export type Scores = Float32Array | Float64Array

/** The creation env of a strategy over the training set. */
export interface PoolEnv extends ComponentEnv {
  readonly numTrain: number
}

/** What every kind's decision context carries besides its own inputs. */
export interface DecisionContext {
  /** Seeded from the run seed and the step: never shared between decisions. */
  readonly rng: Rng
  readonly model: ModelOps
  /** Private folder of this strategy instance, keyed by model, data and params (never stale). */
  readonly cacheDir: string
  readonly log: (message: string) => void
}

/** Everything a selection decision may depend on. Same inputs + same seed → same decision. */
export interface SelectContext extends DecisionContext {
  /** Global optimizer step the decision follows (0: before the first step). */
  readonly step: number
  /** How many indices to return (global batch × update_step). */
  readonly numSamples: number
  /** 1-based index of this update inside its flex-epoch, and how many there are. */
  readonly updateIndex: number
  readonly updateTimes: number
  /** 0-based flex-epoch. */
  readonly flexEpoch: number
}

export interface SelectResult extends DecisionFacts {
  readonly indices: Int32Array
  /** Per-selected-index score. */
  readonly scores?: Scores
  /**
   * What the scores are, the metric key they are saved under in the run's selection files (e.g. 'loss');
   * default 'score'.
   */
  readonly metric?: string
}

export interface SelectorInstance extends Stateful {
  select(ctx: SelectContext): Promise<SelectResult>
}

export interface SelectorEnv extends PoolEnv {
  readonly numEval: number
}

export type SelectorDefinition<P = unknown> = ComponentDefinition<'selector', P, SelectorEnv, SelectorInstance>

export const defineSelector = definer<'selector', SelectorEnv, SelectorInstance>('selector')
