/**
 * The trainers' handle on the Python executor (python_bridge/dataflex_bridge/executor): the catalog's ops
 * (src/bridge/ops.ts) in the shapes trainers use — a pass plan, step flags, row-checked matrices. Args and results
 * are validated by the catalog, so a drifting sidecar fails loudly here instead of deep inside a trainer.
 */
import type { Bridge, NdArray } from '../bridge/index.ts'
import { OpClient, type OpArgs, type OpResult } from '../bridge/ops.ts'
import type { WeighEmbeddings } from '../strategies/weighter.ts'

export type LoadInfo = OpResult<'load'>
export type StepResult = OpResult<'train_steps'>
export type FinishResult = OpResult<'finish'>
/** What a trainer adds to `load` besides the LLaMA-Factory config (domains, freeze_gate). */
export type LoadExtras = Omit<OpArgs<'load'>, 'config'>
export type Reduction = NonNullable<OpArgs<'begin_pass'>['reduction']>

/** The `begin_pass` args, camelCase word for word. */
export interface PassPlan {
  epoch: number
  /** Flat sample indices of every micro-batch, in order. */
  indices: Int32Array
  /** Size of each micro-batch. */
  microSizes: Int32Array
  /** Micro-batches of each optimizer step. */
  stepSizes: Int32Array
  /** Micro-batches of the whole epoch (denominator of the Trainer's fractional epoch). */
  microInEpoch: number
  /** Micro-batches of this epoch trained before the pass (a pass may start mid-epoch, e.g. a selection window). */
  microDone?: number
  /** Per planned sample loss weight (optional). */
  weights?: Float32Array
  /** How a step's loss averages (default token_mean: Hugging Face's). */
  reduction?: Reduction
  /** A frozen model to measure every trained sample's excess loss against (train_steps' sample_excess_sum). */
  referenceModel?: string
  /** TypeScript weighs every micro-batch of the steps after `fromStep` trained ones (the `weigh` request). */
  weigh?: { fromStep: number; embeddings?: WeighEmbeddings }
  /** A checkpoint whose RNG states continue once the pass's iterator is made (a pass resumed midway). */
  rngState?: string
}

export interface StepFlags {
  log: Uint8Array
  evaluate: Uint8Array
  save: Uint8Array
}

type Split = NonNullable<OpArgs<'losses'>['split']>
export type GradientArgs = Omit<OpArgs<'gradients'>, 'split' | 'indices'>
export type EmbeddingArgs = Omit<OpArgs<'embeddings'>, 'split' | 'indices'>

function checkRows(op: string, a: NdArray, rows: number, cols?: number): void {
  const [r, c] = a.shape
  if (r !== rows || (cols !== undefined && c !== cols)) {
    const want = cols === undefined ? `${rows} rows` : `${rows}×${cols}`
    throw new Error(`${op}: the executor returned a ${a.shape.join('×')} array, expected ${want}`)
  }
}

export class Executor {
  /** Every executor op, typed from the catalog. */
  readonly ops: OpClient

  constructor(readonly bridge: Bridge) {
    this.ops = new OpClient(bridge)
  }

  load(config: Record<string, unknown>, extras: LoadExtras = {}): Promise<LoadInfo> {
    return this.ops.call('load', { config, ...extras })
  }

  async sampleOrder(epochs: number[]): Promise<Int32Array> {
    return (await this.ops.call('sample_order', { epochs: Int32Array.from(epochs) })).order
  }

  begin(totalSteps: number): Promise<OpResult<'begin'>> {
    return this.ops.call('begin', { total_steps: totalSteps })
  }

  beginPass(plan: PassPlan): Promise<unknown> {
    return this.ops.call('begin_pass', {
      epoch: plan.epoch,
      indices: plan.indices,
      micro_sizes: plan.microSizes,
      step_sizes: plan.stepSizes,
      micro_in_epoch: plan.microInEpoch,
      micro_done: plan.microDone,
      weights: plan.weights,
      reduction: plan.reduction,
      reference_model: plan.referenceModel,
      weigh: plan.weigh && { from_step: plan.weigh.fromStep, embeddings: plan.weigh.embeddings },
      rng_state: plan.rngState,
    })
  }

  trainSteps(count: number, flags: StepFlags): Promise<StepResult> {
    return this.ops.call('train_steps', { count, log: flags.log, evaluate: flags.evaluate, save: flags.save })
  }

  /** Training ends after the step in progress (train_steps returns early with should_training_stop). */
  requestStop(): Promise<unknown> {
    return this.ops.call('request_stop', {})
  }

  endPass(flags: { log: boolean; evaluate: boolean; save: boolean }): Promise<OpResult<'end_pass'>> {
    return this.ops.call('end_pass', flags)
  }

  async losses(split: Split, indices: Int32Array, batchSize?: number): Promise<Float32Array> {
    return (await this.ops.call('losses', { split, indices, batch_size: batchSize })).losses
  }

  /** Projected per-sample gradients of the trainable parameters, [indices.length × proj_dim] (0: unprojected). */
  async gradients(split: Split, indices: Int32Array, args: GradientArgs): Promise<OpResult<'gradients'>> {
    const r = await this.ops.call('gradients', { ...args, split, indices })
    checkRows('gradients', r.grads, indices.length, args.proj_dim === 0 ? r.trainable_params : args.proj_dim)
    return r
  }

  /** Pooled hidden states, [indices.length × hidden]. */
  async embeddings(split: Split, indices: Int32Array, args: EmbeddingArgs): Promise<NdArray<Float32Array>> {
    const { embeddings } = await this.ops.call('embeddings', { ...args, split, indices })
    checkRows('embeddings', embeddings, indices.length)
    return embeddings
  }

  evaluate(): Promise<OpResult<'evaluate'>> {
    return this.ops.call('evaluate', {})
  }

  saveCheckpoint(): Promise<unknown> {
    return this.ops.call('save_checkpoint', {})
  }

  finish(): Promise<FinishResult> {
    return this.ops.call('finish', {})
  }
}
