/**
 * `less` selector (docs/algorithms.md#less): projected per-sample training gradients (Adam-preconditioned by
 * default) and SGD eval gradients, both L2-normalised; a training sample scores the mean cosine to the eval
 * gradients, s_i = ⟨ĝ_i, mean_j ê_j⟩; the top-k are selected.
 *
 * Deliberate differences from the Python DataFlex:
 * - Gradients, projection and the Adam transform are the sidecar's `gradients` op (batched, fp32, the run's
 *   own betas/eps, a portable seeded projector), not a batch-1 loop in fp16 with hard-coded β/ε.
 * - Rows are re-normalised here (norm clamped at 1e-12), so scores do not depend on the op's normalisation.
 * - Top-k ties go to the lower index (torch.topk's order is unspecified); asking for more than N returns N
 *   (DataFlex's topk would raise), with a log line.
 * - Gradients are requested in chunks of rows and scored on the fly: memory is O(N + chunk·d), not O(N·d);
 *   nothing is written to disk. `cache_dir` only sets the trainer's cache folder (nothing is written there);
 *   `save_interval` (DataFlex: rows per fp16 buffer flush) is the number of rows whose gradients are preconditioned
 *   and projected together; they come from batched passes of at most per_device_train_batch_size rows, so a pass
 *   never needs more than a training step.
 */
import { z } from 'zod'
import { topK } from '../../math/topk.ts'
import { defineSelector, type GradientOptions, type Matrix, type ModelOps, type Split } from '../types.ts'
import { SelectorError, allIndices, cacheDirParam, checkMatrix, since } from './common.ts'

const NAME = 'less'

/** Params shared with cluster_less (which spreads them into its own schema). */
export const lessParamFields = {
  cache_dir: cacheDirParam,
  gradient_type: z.enum(['adam', 'sgd']).default('adam').describe('training-gradient preconditioning (eval gradients are always sgd)'),
  proj_dim: z.int().positive().default(8192).describe('random-projection dimension d'),
  seed: z.int().min(0).default(42).describe('projector seed'),
  save_interval: z
    .int()
    .positive()
    .default(16)
    .describe('samples projected together (DataFlex: rows per projection flush); their gradients come from passes of at most per_device_train_batch_size rows'),
}

export const LessParamsSchema = z.strictObject(lessParamFields)
export type LessParams = z.output<typeof LessParamsSchema>

/**
 * Gradient rows per request: about 1M floats (4 MiB) per reply whatever proj_dim is. Each reply is reduced to its
 * scores at once, so this is what Node holds (with the frame it came in); the sidecar's passes are far smaller.
 */
export function gradientChunkRows(projDim: number): number {
  return Math.max(1, Math.floor(2 ** 20 / projDim))
}

/** 1 / max(‖row r‖, 1e-12): DataFlex's clamped L2 normalisation, applied without touching the op's buffer. */
export function inverseRowNorm(m: Matrix, r: number): number {
  const d = m.cols
  const off = r * d
  let s = 0
  for (let c = 0; c < d; c++) s += m.data[off + c]! ** 2
  return 1 / Math.max(Math.sqrt(s), 1e-12)
}

/** Streams the gradients of `indices` in chunks: fn(offset into indices, chunk matrix). */
export async function forEachGradientChunk(
  model: ModelOps,
  selector: string,
  split: Split,
  indices: Int32Array,
  opts: GradientOptions,
  fn: (offset: number, m: Matrix) => void,
): Promise<void> {
  const rows = gradientChunkRows(opts.projDim)
  for (let off = 0; off < indices.length; off += rows) {
    const sub = indices.subarray(off, Math.min(indices.length, off + rows))
    const m = checkMatrix(selector, await model.gradients(split, sub, opts), sub.length, opts.projDim)
    fn(off, m)
  }
}

/** The training-gradient request of less and cluster_less: normalised rows, save_interval rows per projection. */
export function trainGradientOptions(params: Pick<LessParams, 'proj_dim' | 'seed' | 'gradient_type' | 'save_interval'>): GradientOptions {
  return { projDim: params.proj_dim, seed: params.seed, precondition: params.gradient_type, normalize: true, chunkSize: params.save_interval }
}

/** mean_j ê_j over the whole eval set: SGD gradients (otherwise as `train`'s request), each row L2-normalised. */
export async function meanEvalGradient(model: ModelOps, selector: string, train: GradientOptions): Promise<Float64Array> {
  const ne = model.numEval
  if (ne === 0) {
    throw new SelectorError(selector, 'no_eval_data', 'needs an eval set (set eval_dataset or val_size): scores are similarities to eval gradients')
  }
  const projDim = train.projDim
  const acc = new Float64Array(projDim)
  const opts: GradientOptions = { ...train, precondition: 'sgd' }
  await forEachGradientChunk(model, selector, 'eval', allIndices(ne), opts, (_, m) => {
    for (let r = 0; r < m.rows; r++) {
      const inv = inverseRowNorm(m, r)
      const off = r * m.cols
      for (let c = 0; c < m.cols; c++) acc[c] = acc[c]! + m.data[off + c]! * inv
    }
  })
  for (let c = 0; c < projDim; c++) acc[c] = acc[c]! / ne
  return acc
}

/**
 * Cosine of every training sample's normalised gradient to `target` (already normalised rows, so the mean cosine
 * over targets is a dot with their mean), streamed chunk by chunk so memory stays O(N + chunk).
 */
export async function scoreTrainGradients(
  model: ModelOps,
  selector: string,
  opts: GradientOptions,
  target: ArrayLike<number>,
): Promise<Float64Array> {
  const n = model.numTrain
  const scores = new Float64Array(n)
  await forEachGradientChunk(model, selector, 'train', allIndices(n), opts, (off, m) => {
    const d = m.cols
    for (let r = 0; r < m.rows; r++) {
      let s = 0
      for (let c = 0; c < d; c++) s += m.data[r * d + c]! * target[c]!
      scores[off + r] = s * inverseRowNorm(m, r)
    }
  })
  return scores
}

/** Top-k of `scores` (all of them when fewer than asked, with a log line) and the selected scores. */
export function topKSelection(
  scores: Float64Array,
  numSamples: number,
  selector: string,
  log: (message: string) => void,
): { indices: Int32Array; scores: Float64Array } {
  const k = Math.min(numSamples, scores.length)
  if (k < numSamples) log(`${selector}: ${numSamples} samples requested, the training set has ${scores.length}; selecting all`)
  const indices = topK(scores, k)
  const selected = new Float64Array(k)
  for (let i = 0; i < k; i++) selected[i] = scores[indices[i]!]!
  return { indices, scores: selected }
}

export const lessSelector = defineSelector({
  name: NAME,
  description: 'LESS: top-k training samples by mean cosine of their (Adam-preconditioned) gradient to the eval gradients',
  params: LessParamsSchema,
  create(params) {
    return {
      async select(ctx) {
        const t0 = performance.now()
        const n = ctx.model.numTrain
        const opts = trainGradientOptions(params)
        const evalMean = await meanEvalGradient(ctx.model, NAME, opts)
        const evalMs = since(t0)

        const t1 = performance.now()
        const scores = await scoreTrainGradients(ctx.model, NAME, opts, evalMean)
        const trainMs = since(t1)

        const { indices, scores: selected } = topKSelection(scores, ctx.numSamples, NAME, ctx.log)
        return {
          indices,
          scores: selected,
          metric: 'train_eval_similarity',
          info: {
            method: 'less',
            gradient_type: params.gradient_type,
            proj_dim: params.proj_dim,
            num_train: n,
            num_eval: ctx.model.numEval,
            timing_ms: { eval_gradients: evalMs, train_gradients: trainMs, total: since(t0) },
          },
        }
      },
    }
  },
})
