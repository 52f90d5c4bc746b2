/**
 * `ModelOps` (what strategies may ask of the model) over the Python executor. Large index sets are sent in chunks,
 * so one reply stays a bounded frame (2048 rows × d=8192 float32 = 64 MiB) and the sidecar stays responsive to
 * heartbeats between chunks; the rows are assembled into one Matrix in request order.
 */
import type { NdArray } from '../bridge/index.ts'
import type { PolicyGradientOptions, PolicyGradientResult, PolicyModelOps } from '../strategies/selectors/nice.ts'
import type { EmbeddingOptions, GradientOptions, LossOptions, Matrix, ModelOps, RouterLoads, Split } from '../strategies/types.ts'
import type { Executor, LoadInfo } from './executor.ts'

export interface BridgeModelOpsOptions {
  /** Most rows per gradients/embeddings request (default 2048). */
  readonly maxRows?: number
  /** Projector of the gradients op (default: the catalog's). */
  readonly projector?: 'dense' | 'sparse'
  /** Samples projected together in the gradients op when a request sets no chunkSize (default: the catalog's). */
  readonly chunkSize?: number
  /** Batch size of the embeddings forward (default: the run's per_device_eval_batch_size). */
  readonly embeddingBatchSize?: number
}

export class BridgeModelOps implements ModelOps, PolicyModelOps {
  readonly numTrain: number
  readonly numEval: number
  private readonly maxRows: number

  constructor(
    private readonly exec: Executor,
    info: Pick<LoadInfo, 'num_train' | 'num_eval'>,
    private readonly options: BridgeModelOpsOptions = {},
  ) {
    this.numTrain = info.num_train
    this.numEval = info.num_eval
    this.maxRows = options.maxRows ?? 2048
    if (!Number.isSafeInteger(this.maxRows) || this.maxRows < 1) throw new RangeError(`maxRows must be a positive integer, got ${this.maxRows}`)
  }

  losses(split: Split, indices: Int32Array, opts: LossOptions = {}): Promise<Float32Array> {
    return this.exec.losses(split, indices, opts.maxBatchRows)
  }

  gradients(split: Split, indices: Int32Array, opts: GradientOptions): Promise<Matrix> {
    const { projector } = this.options
    const chunkSize = opts.chunkSize ?? this.options.chunkSize
    return this.chunked(indices, async (part) => {
      const r = await this.exec.gradients(split, part, {
        proj_dim: opts.projDim,
        seed: opts.seed,
        precondition: opts.precondition,
        normalize: opts.normalize,
        projector,
        chunk_size: chunkSize,
      })
      return r.grads
    })
  }

  embeddings(split: Split, indices: Int32Array, opts: EmbeddingOptions): Promise<Matrix> {
    return this.chunked(indices, (part) =>
      this.exec.embeddings(split, part, {
        layer: opts.layer,
        pooling: opts.pooling,
        normalize: opts.normalize,
        model: opts.model,
        batch_size: opts.batchSize ?? this.options.embeddingBatchSize,
      }),
    )
  }

  /** Expert loads, in chunks like every per-row op. */
  async routerLoads(split: Split, indices: Int32Array, opts: { batchSize?: number } = {}): Promise<RouterLoads> {
    let shape = { layers: 0, experts: 0, topK: 0 }
    const loads = await this.chunked(indices, async (part) => {
      const r = await this.exec.ops.call('router_loads', { split, indices: part, ...(opts.batchSize === undefined ? {} : { batch_size: opts.batchSize }) })
      shape = { layers: r.layers, experts: r.experts, topK: r.top_k }
      return r.loads
    })
    return { loads, ...shape }
  }

  /** NICE's validation signal: generate → reward → projected REINFORCE gradients, three executor ops in turn. */
  async policyGradients(split: Split, indices: Int32Array, opts: PolicyGradientOptions): Promise<PolicyGradientResult> {
    const ops = this.exec.ops
    const gen = await ops.call('generate', {
      split,
      indices,
      model: opts.policyModel,
      max_new_tokens: opts.maxNewTokens,
      temperature: opts.temperature,
      samples: opts.samples,
      seed: opts.seed,
      max_prompt_length: opts.maxPromptLength,
    })
    const ids = {
      prompt_ids: gen.prompt_ids,
      prompt_lengths: gen.prompt_lengths,
      response_ids: gen.response_ids,
      response_lengths: gen.response_lengths,
      samples: opts.samples,
    }
    const { rewards } = await ops.call('reward', { ...ids, model: opts.rewardModel })
    const pg = await ops.call('policy_gradients', {
      ...ids,
      rewards,
      proj_dim: opts.projDim,
      seed: opts.projSeed,
      normalize: opts.normalize,
      baseline: opts.baseline,
    })
    return {
      gradients: { data: pg.grads.data, rows: indices.length, cols: pg.grads.shape[1] ?? 0 },
      rewards,
      responseLengths: gen.response_lengths,
      zeroRows: pg.zero_rows,
    }
  }

  /** One request per ≤ maxRows indices, in order (the sidecar runs one heavy op at a time anyway). */
  private async chunked(indices: Int32Array, call: (part: Int32Array) => Promise<NdArray<Float32Array>>): Promise<Matrix> {
    const n = indices.length
    if (n <= this.maxRows) {
      // An empty request still tells the column count.
      const m = await call(indices)
      return { data: m.data, rows: n, cols: m.shape[1]! }
    }
    let data: Float32Array | undefined
    let cols = 0
    for (let start = 0; start < n; start += this.maxRows) {
      const m = await call(indices.subarray(start, Math.min(n, start + this.maxRows)))
      if (data === undefined) {
        cols = m.shape[1]!
        data = new Float32Array(n * cols)
      } else if (m.shape[1] !== cols) {
        throw new Error(`model ops: chunk at row ${start} has ${m.shape[1]} columns, the first had ${cols}`)
      }
      data.set(m.data, start * cols)
    }
    return { data: data!, rows: n, cols }
  }
}
