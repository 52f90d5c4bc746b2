/**
 * `tsds` selector, online half (docs/algorithms.md#tsds): `dataflex prepare` writes one sampling probability
 * per training sample; select draws from that static distribution without replacement.
 *
 * Deliberate differences from the Python DataFlex:
 * - Draws come from the run's per-step Rng (ctx.rng), made once and given to every rank, instead of each rank
 *   calling NumPy's global RNG (which could disagree between ranks).
 * - When fewer samples have a non-zero probability than requested, it logs a warning and samples with
 *   replacement (NumPy's replace=False raised, and TSDS probabilities are sparse).
 * - `probs_path` is an input path: the working directory first (as in DataFlex), then the components file's folder;
 *   the file is a 1-D '<f4'/'<f8' .npy of length N;
 *   it is normalised here, and negative or non-finite entries are config errors (DataFlex let NumPy complain).
 * - `cache_dir` only sets the trainer's cache folder; nothing is written there.
 */
import { resolve } from 'node:path'
import { z } from 'zod'
import { ConfigError } from '../../config/errors.ts'
import { weightedWithReplacement, weightedWithoutReplacement } from '../../math/sampling.ts'
import { NpyError, asFloatVector, readNpy } from '../npy.ts'
import { defineSelector } from '../types.ts'
import { SelectorError, cacheDirParam } from './common.ts'

const NAME = 'tsds'

export const TsdsParamsSchema = z.strictObject({
  probs_path: z
    .string()
    .min(1)
    .meta({ path: 'file' })
    .describe('a .npy float vector of N sampling probabilities (from `dataflex prepare`)'),
  cache_dir: cacheDirParam,
})
export type TsdsParams = z.output<typeof TsdsParamsSchema>

/** Reads, validates and normalises the probability vector; every problem is a ConfigError on `probs_path`. */
export function loadProbabilities(path: string, numTrain: number): Float64Array {
  const hint = 'write it with `dataflex prepare tsds` for this training set (a 1-D float32/float64 .npy, one entry per sample)'
  let p: Float64Array
  try {
    p = asFloatVector(readNpy(path), numTrain, path)
  } catch (err) {
    if (err instanceof NpyError) {
      throw new ConfigError(err.code === 'not_found' ? 'file_not_found' : 'bad_value', err.message, { key: 'probs_path', hint, cause: err })
    }
    throw err
  }
  let total = 0
  for (let i = 0; i < p.length; i++) {
    const v = p[i]!
    if (!Number.isFinite(v) || v < 0) {
      throw new ConfigError('bad_value', `${path}: probability ${v} at sample ${i}; entries must be finite and ≥ 0`, { key: 'probs_path', hint })
    }
    total += v
  }
  if (!(total > 0)) throw new ConfigError('bad_value', `${path}: all probabilities are zero`, { key: 'probs_path', hint })
  for (let i = 0; i < p.length; i++) p[i] = p[i]! / total
  return p
}

export const tsdsSelector = defineSelector({
  name: NAME,
  description: 'TSDS: sample from prepared per-sample probabilities (task-specific data selection)',
  params: TsdsParamsSchema,
  create(params, env) {
    const path = resolve(env.baseDir, params.probs_path)
    const probs = loadProbabilities(path, env.numTrain)
    let nonZero = 0
    for (let i = 0; i < probs.length; i++) if (probs[i]! > 0) nonZero++
    return {
      async select(ctx) {
        if (ctx.model.numTrain !== env.numTrain) {
          throw new SelectorError(NAME, 'bad_model_output', `the training set has ${ctx.model.numTrain} samples, ${path} has ${env.numTrain}`)
        }
        const k = ctx.numSamples
        const replacement = k > nonZero
        if (replacement) {
          ctx.log(`warning: ${NAME}: ${k} samples requested but only ${nonZero} have a non-zero probability; sampling with replacement`)
        }
        const indices = replacement ? weightedWithReplacement(ctx.rng, probs, k) : weightedWithoutReplacement(ctx.rng, probs, k)
        const scores = new Float64Array(indices.length)
        for (let i = 0; i < indices.length; i++) scores[i] = probs[indices[i]!]!
        return { indices, scores, metric: 'probability', info: { method: 'tsds', non_zero: nonZero, replacement, score: 'probability' } }
      },
    }
  },
})
