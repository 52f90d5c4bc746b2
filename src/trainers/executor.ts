/**
 * Typed handle on the Python executor's ops (python_bridge/dataflex_bridge/executor). Results are validated with
 * zod, so a drifting sidecar fails loudly here instead of deep inside a trainer.
 */
import { z } from 'zod'
import { NdArray, type Bridge } from '../bridge/index.ts'

const f64 = z.instanceof(Float64Array)
const i32 = z.instanceof(Int32Array)

export const LoadInfoSchema = z.object({
  load_seconds: z.number(),
  stage: z.string(),
  num_train: z.number().int(),
  num_eval: z.number().int(),
  world_size: z.number().int(),
  per_device_train_batch_size: z.number().int(),
  gradient_accumulation_steps: z.number().int(),
  num_train_epochs: z.number(),
  max_steps: z.number().int(),
  dataloader_drop_last: z.boolean(),
  seed: z.number().int(),
  output_dir: z.string(),
  logging_strategy: z.string(),
  logging_steps: z.number(),
  logging_first_step: z.boolean(),
  eval_strategy: z.string(),
  eval_steps: z.number().nullable(),
  eval_delay: z.number(),
  save_strategy: z.string(),
  save_steps: z.number(),
  do_eval: z.boolean(),
  disable_shuffling: z.boolean(),
  trainable_params: z.number().int(),
})
export type LoadInfo = z.output<typeof LoadInfoSchema>

const StepResultSchema = z.object({
  done: z.number().int(),
  global_step: z.number().int(),
  epoch: z.number(),
  loss: f64,
  grad_norm: f64,
  lr: f64,
  tokens: z.instanceof(BigInt64Array),
  eval_loss: f64,
  /** Executor time of each step (forward/backward/optimizer, plus its log/eval/save). */
  seconds: f64,
  /** Executor time of the whole op, for the bridge-overhead measurement. */
  op_seconds: z.number(),
  should_training_stop: z.boolean(),
})
export type StepResult = z.output<typeof StepResultSchema>

const FinishSchema = z.object({
  train_loss: z.number(),
  global_step: z.number().int(),
  eval_loss: z.number().nullable(),
  step_seconds_median: z.number().nullable(),
})
export type FinishResult = z.output<typeof FinishSchema>

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
}

/** A 2-D float32 array as the bridge decodes it (1-D arrays arrive bare, so a matrix is always an NdArray). */
const f32Matrix = z
  .instanceof(NdArray)
  .refine((a): a is NdArray<Float32Array> => a.data instanceof Float32Array && a.shape.length === 2, {
    message: 'expected a 2-D float32 array',
  })

const GradientResultSchema = z.object({
  grads: f32Matrix,
  trainable_params: z.number().int(),
  seconds: z.number(),
})

export interface GradientRequest {
  /** Projection dimension d; 0 returns the raw gradients (P columns, small models only). */
  projDim: number
  seed: number
  precondition: 'sgd' | 'adam'
  normalize: boolean
  /** Default (Python side): 'sparse', as fast as dense at equal accuracy (bench/results/projector.md). */
  projector?: 'dense' | 'sparse'
  /** Samples per batched gradient pass (memory ≈ chunkSize × one sample's forward/backward); default 16. */
  chunkSize?: number
}

export interface GradientResult {
  grads: NdArray<Float32Array>
  /** P, the number of trainable parameters the gradients cover. */
  trainableParams: number
  /** Executor time of the op. */
  seconds: number
}

export interface EmbeddingRequest {
  layer: number
  pooling: 'mask_mean' | 'position_weighted' | 'last_token'
  normalize: boolean
  /** A separate local causal LM directory (same vocabulary as the run); default: the training model. */
  model?: string
  batchSize?: number
}

function checkRows(op: string, a: NdArray, rows: number, cols?: number): void {
  const [r, c] = a.shape
  if (r !== rows || (cols !== undefined && c !== cols)) {
    const want = cols === undefined ? `${rows} rows` : `${rows}×${cols}`
    throw new Error(`${op}: the executor returned a ${a.shape.join('×')} array, expected ${want}`)
  }
}

export interface StepFlags {
  log: Uint8Array
  evaluate: Uint8Array
  save: Uint8Array
}

const LONG = 24 * 3600_000

export class Executor {
  constructor(readonly bridge: Bridge) {}

  load(config: Record<string, unknown>): Promise<LoadInfo> {
    return this.bridge.request('load', { config }, { timeoutMs: 30 * 60_000, result: LoadInfoSchema })
  }

  async sampleOrder(epochs: number[]): Promise<Int32Array> {
    const r = await this.bridge.request(
      'sample_order',
      { epochs: Int32Array.from(epochs) },
      { timeoutMs: 10 * 60_000, result: z.object({ order: i32, n: z.number().int() }) },
    )
    return r.order
  }

  begin(totalSteps: number): Promise<unknown> {
    return this.bridge.request('begin', { total_steps: totalSteps }, { timeoutMs: 10 * 60_000 })
  }

  beginPass(plan: PassPlan): Promise<unknown> {
    return this.bridge.request(
      'begin_pass',
      {
        epoch: plan.epoch,
        indices: plan.indices,
        micro_sizes: plan.microSizes,
        step_sizes: plan.stepSizes,
        micro_in_epoch: plan.microInEpoch,
        ...(plan.microDone ? { micro_done: plan.microDone } : {}),
        ...(plan.weights ? { weights: plan.weights } : {}),
      },
      { timeoutMs: 10 * 60_000 },
    )
  }

  trainSteps(count: number, flags: StepFlags): Promise<StepResult> {
    return this.bridge.request(
      'train_steps',
      { count, log: flags.log, evaluate: flags.evaluate, save: flags.save },
      { timeoutMs: LONG, result: StepResultSchema },
    )
  }

  endPass(flags: { log: boolean; evaluate: boolean; save: boolean }): Promise<unknown> {
    return this.bridge.request('end_pass', flags, { timeoutMs: LONG })
  }

  async losses(split: 'train' | 'eval', indices: Int32Array, batchSize?: number): Promise<Float32Array> {
    const r = await this.bridge.request(
      'losses',
      { split, indices, ...(batchSize ? { batch_size: batchSize } : {}) },
      { timeoutMs: LONG, result: z.object({ losses: z.instanceof(Float32Array) }) },
    )
    return r.losses
  }

  /** Projected per-sample gradients of the trainable parameters, [indices.length × projDim] (0: unprojected). */
  async gradients(split: 'train' | 'eval', indices: Int32Array, opts: GradientRequest): Promise<GradientResult> {
    const r = await this.bridge.request(
      'gradients',
      {
        split,
        indices,
        proj_dim: opts.projDim,
        seed: opts.seed,
        precondition: opts.precondition,
        normalize: opts.normalize,
        ...(opts.projector ? { projector: opts.projector } : {}),
        ...(opts.chunkSize ? { chunk_size: opts.chunkSize } : {}),
      },
      { timeoutMs: LONG, result: GradientResultSchema },
    )
    checkRows('gradients', r.grads, indices.length, opts.projDim === 0 ? r.trainable_params : opts.projDim)
    return { grads: r.grads, trainableParams: r.trainable_params, seconds: r.seconds }
  }

  /** Pooled hidden states, [indices.length × hidden]. */
  async embeddings(split: 'train' | 'eval', indices: Int32Array, opts: EmbeddingRequest): Promise<NdArray<Float32Array>> {
    const r = await this.bridge.request(
      'embeddings',
      {
        split,
        indices,
        layer: opts.layer,
        pooling: opts.pooling,
        normalize: opts.normalize,
        ...(opts.model ? { model: opts.model } : {}),
        ...(opts.batchSize ? { batch_size: opts.batchSize } : {}),
      },
      { timeoutMs: LONG, result: z.object({ embeddings: f32Matrix }) },
    )
    checkRows('embeddings', r.embeddings, indices.length)
    return r.embeddings
  }

  evaluate(): Promise<{ metrics: Record<string, number> }> {
    return this.bridge.request('evaluate', {}, {
      timeoutMs: LONG,
      result: z.object({ metrics: z.record(z.string(), z.number()) }),
    })
  }

  saveCheckpoint(): Promise<unknown> {
    return this.bridge.request('save_checkpoint', {}, { timeoutMs: LONG })
  }

  finish(): Promise<FinishResult> {
    return this.bridge.request('finish', {}, { timeoutMs: LONG, result: FinishSchema })
  }
}
