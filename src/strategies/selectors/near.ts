/**
 * `near` selector, online half (docs/algorithms.md#near): `dataflex prepare` writes an M×K int matrix of
 * each query's K nearest training samples (nearest first); select walks it column by column (every query's
 * nearest, then every query's second nearest, …), skipping repeats, until enough samples are collected.
 *
 * Deliberate differences from the Python DataFlex:
 * - `indices_path` is an input path: the working directory first (as in DataFlex), then the components file's folder.
 * - The file is a .npy written C-order as '<i4' or '<i8'; problems with it (missing, dtype, shape, an index
 *   outside [0, N) such as FAISS's −1 "no hit") are config errors naming `indices_path`.
 * - The walk is deterministic and the same at every update (as in DataFlex); it is computed once per request
 *   size. `cache_dir` only sets the trainer's cache folder; nothing is written there.
 */
import { resolve } from 'node:path'
import { z } from 'zod'
import { ConfigError } from '../../config/errors.ts'
import { NpyError, asIntMatrix, readNpy } from '../npy.ts'
import { defineSelector } from '../types.ts'
import { SelectorError, cacheDirParam } from './common.ts'

const NAME = 'near'

export const NearParamsSchema = z.strictObject({
  indices_path: z
    .string()
    .min(1)
    .meta({ path: 'file' })
    .describe('a .npy int matrix M×K of neighbour indices (from `dataflex prepare`)'),
  cache_dir: cacheDirParam,
})
export type NearParams = z.output<typeof NearParamsSchema>

export interface IndexMatrix {
  readonly data: Int32Array
  readonly rows: number
  readonly cols: number
}

export interface NearWalk {
  readonly indices: Int32Array
  /** Neighbour rank (column) at which each index was taken. */
  readonly ranks: Int32Array
  /** Distinct indices in the whole matrix when fewer than requested, else the request. */
  readonly available: number
  readonly columnsUsed: number
}

/** Column-major walk over the neighbour matrix; `indices.length < numSamples` means it ran out. */
export function nearWalk(m: IndexMatrix, numSamples: number): NearWalk {
  const taken = new Set<number>()
  const indices = new Int32Array(numSamples)
  const ranks = new Int32Array(numSamples)
  let count = 0
  let col = 0
  for (; col < m.cols && count < numSamples; col++) {
    for (let row = 0; row < m.rows && count < numSamples; row++) {
      const v = m.data[row * m.cols + col]!
      if (taken.has(v)) continue
      taken.add(v)
      indices[count] = v
      ranks[count] = col
      count++
    }
  }
  return { indices: indices.slice(0, count), ranks: ranks.slice(0, count), available: count, columnsUsed: col }
}

/** Reads and validates the neighbour matrix; every problem is a ConfigError on `indices_path`. */
export function loadNeighbourMatrix(path: string, numTrain: number): IndexMatrix {
  const hint = 'write it with `dataflex prepare near` for this training set (a C-order int32/int64 .npy, queries × neighbours)'
  let m: IndexMatrix
  try {
    m = asIntMatrix(readNpy(path), path)
  } catch (err) {
    if (err instanceof NpyError) {
      throw new ConfigError(err.code === 'not_found' ? 'file_not_found' : 'bad_value', err.message, { key: 'indices_path', hint, cause: err })
    }
    throw err
  }
  if (m.rows === 0 || m.cols === 0) {
    throw new ConfigError('bad_value', `${path}: the neighbour matrix is empty (${m.rows}×${m.cols})`, { key: 'indices_path', hint })
  }
  for (let i = 0; i < m.data.length; i++) {
    const v = m.data[i]!
    if (v < 0 || v >= numTrain) {
      const where = `query ${Math.floor(i / m.cols)}, neighbour ${i % m.cols}`
      throw new ConfigError('bad_value', `${path}: index ${v} at ${where} is outside [0, ${numTrain}) (the training set has ${numTrain} samples)`, {
        key: 'indices_path',
        hint: v < 0 ? 'negative ids are FAISS "no hit" markers: search with more probes or a smaller K' : hint,
      })
    }
  }
  return m
}

export const nearSelector = defineSelector({
  name: NAME,
  description: 'NEAR: the training samples nearest to the queries, walked rank by rank from a prepared neighbour matrix',
  params: NearParamsSchema,
  create(params, env) {
    const path = resolve(env.baseDir, params.indices_path)
    const matrix = loadNeighbourMatrix(path, env.numTrain)
    const walks = new Map<number, NearWalk>()
    return {
      async select(ctx) {
        if (ctx.model.numTrain !== env.numTrain) {
          throw new SelectorError(NAME, 'bad_model_output', `the training set has ${ctx.model.numTrain} samples, ${path} was checked against ${env.numTrain}`)
        }
        let walk = walks.get(ctx.numSamples)
        if (walk === undefined) {
          walk = nearWalk(matrix, ctx.numSamples)
          walks.set(ctx.numSamples, walk)
        }
        if (walk.indices.length < ctx.numSamples) {
          throw new SelectorError(
            NAME,
            'insufficient_candidates',
            `${ctx.numSamples} samples requested but ${path} holds only ${walk.available} distinct indices; prepare more neighbours (larger K) or lower update_step`,
          )
        }
        return {
          indices: walk.indices.slice(),
          // Neighbour rank, 0 = nearest: a smaller score is a closer sample.
          scores: Float32Array.from(walk.ranks),
          metric: 'neighbour_rank',
          info: { method: 'near', queries: matrix.rows, neighbours: matrix.cols, columns_used: walk.columnsUsed, score: 'neighbour rank' },
        }
      },
    }
  },
})
