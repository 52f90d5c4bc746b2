/**
 * Where a reorder's scores come from (`score_source` and `score_params`, as DataFlex presets write them), one raw
 * score per training row (polarity is the reorder's business, not the source's):
 * - `precomputed`: a file aligned to the preprocessed training rows (.npy, .json list or object, .jsonl with
 *   `score_field`); with the reorder's apply_at: raw, scores of the raw rows (a file of one per raw row, or else the
 *   datasets' `score_field` column, read by the sidecar at load) mapped to the training rows they became;
 * - `cached_selection`: a selection's scores (the `step_N.json` layout of the Python DataFlex's selector cache and of
 *   our dynamic_select runs: `indices` and `metric.<metric_key>`), rows it did not score set to `fill_value`; the
 *   file itself, or a folder of such files (a run's output_dir, its selections folder, a DataFlex cache_dir): the
 *   selection at `step`, else the last one;
 * - `model_loss`: each row's mean token loss under the model as it is now (the losses op), on at most `max_samples`
 *   of the rows asked for (a seeded subsample; the others get the median of the scored losses).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { extname, isAbsolute, join, resolve } from 'node:path'
import { z } from 'zod'
import { Rng } from '../../math/rng.ts'
import { uniformWithoutReplacement } from '../../math/sampling.ts'
import { readNpy } from '../npy.ts'
import { SELECTION_FILE, SELECTIONS_DIR } from '../selection-file.ts'
import type { ModelOps } from '../types.ts'
import { ReorderError } from './common.ts'

export const SCORE_SOURCES = ['precomputed', 'cached_selection', 'model_loss'] as const
export type ScoreSourceName = (typeof SCORE_SOURCES)[number]

const PrecomputedParams = z.strictObject({
  score_path: z.string().min(1).nullable().default(null).describe('a .npy, .json or .jsonl file with one score per training row'),
  score_field: z.string().min(1).default('score').describe('the field of each .jsonl line (or of a .json object) holding the score'),
})
const CachedSelectionParams = z.strictObject({
  cache_path: z
    .string()
    .min(1)
    .describe("a selection file {indices, metric: {<metric_key>: [...]}} (step_N.json), or a folder of them: a dynamic_select run's output_dir, its dataflex/selections, a DataFlex cache_dir"),
  step: z.int().min(0).nullable().default(null).describe('with a folder: the selection made at this step (step_<step>.json); null: the last one'),
  metric_key: z.string().min(1).default('loss').describe('which metric of the cache is the score'),
  fill_value: z.number().finite().default(0).describe('the score of rows the selection did not score'),
})
const ModelLossParams = z.strictObject({
  batch_size: z.int().min(1).nullable().default(null).describe('most rows per scoring forward; null: batches sized by padded tokens'),
  num_workers: z.int().min(0).default(0).describe('accepted for DataFlex presets; scoring runs in the sidecar'),
  max_samples: z.int().min(1).nullable().default(null).describe('score at most this many rows per rescoring (a seeded subsample); null: all'),
  seed: z.int().default(42).describe("the subsample's seed (with the step)"),
})
export const SCORE_PARAMS = { precomputed: PrecomputedParams, cached_selection: CachedSelectionParams, model_loss: ModelLossParams } as const

export interface ScoreContext {
  /** Optimizer steps trained so far. */
  readonly step: number
  readonly model: ModelOps
}

export interface ScoreSource {
  readonly name: ScoreSourceName
  /** Scores change as the model trains (model_loss): a dynamic reorder rescores. */
  readonly dynamic: boolean
  /** One raw score per position, in order. */
  scoresFor(positions: Int32Array, ctx: ScoreContext): Promise<Float64Array>
}

/** The training rows traced to raw rows (load's `raw_rows`): the datasets of `dataset` after max_samples, in list order. */
export interface RawRows {
  readonly names: readonly string[]
  /** Raw rows of each dataset. */
  readonly rows: readonly number[]
  /** The raw row of every training row (rows preprocessing dropped are absent). */
  readonly index_of_row: Int32Array
  /** The raw score column, one value per raw row (null: none was read). */
  readonly scores: Float64Array | null
}

export interface ScoreEnv {
  /** Rows of the preprocessed training set. */
  readonly numTrain: number
  /** Folder relative paths fall back to (the preset's); the working directory is tried first. */
  readonly baseDir: string
  /** apply_at: raw: precomputed scores are per raw row, mapped through these. */
  readonly raw?: RawRows
}

function inputFile(reorder: string, param: string, written: string, baseDir: string): string {
  const found = isAbsolute(written) ? [written] : [resolve(written), resolve(baseDir, written)].filter((p) => existsSync(p))
  if (found.length === 0 || !existsSync(found[0]!)) {
    throw new ReorderError(reorder, 'bad_params', `score_params.${param} '${written}' not found (looked in the working directory and ${baseDir})`)
  }
  return found[0]!
}

const TRAINING_ROWS = 'training rows (scores must be aligned to the preprocessed training set)'
const RAW_ROWS = 'raw rows (apply_at: raw: one score per row of the datasets of `dataset` after max_samples, in list order)'

function checkScores(reorder: string, values: Float64Array, n: number, what: string, rows = TRAINING_ROWS): Float64Array {
  if (values.length !== n) throw new ReorderError(reorder, 'bad_input', `${what} has ${values.length} scores for ${n} ${rows}`)
  const bad = values.findIndex((v) => !Number.isFinite(v))
  if (bad >= 0) throw new ReorderError(reorder, 'bad_input', `${what}: score ${bad} is ${values[bad]} (scores must be finite)`)
  return values
}

function asNumber(reorder: string, v: unknown, where: string): number {
  const x = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : Number.NaN
  if (Number.isNaN(x)) throw new ReorderError(reorder, 'bad_input', `${where} is not a number (${JSON.stringify(v)})`)
  return x
}

/** A precomputed score file, by suffix. */
export function readScoreFile(reorder: string, path: string, field: string): Float64Array {
  const ext = extname(path).toLowerCase()
  if (ext === '.npy') return Float64Array.from(readNpy(path).data)
  const text = readFileSync(path, 'utf8')
  if (ext === '.jsonl') {
    const out: number[] = []
    text.split('\n').forEach((line, i) => {
      if (line.trim() === '') return
      const obj = JSON.parse(line) as unknown
      // A line that is not an object (a bare number, null) has no field either, rather than failing the `in`.
      if (typeof obj !== 'object' || obj === null || !(field in obj)) throw new ReorderError(reorder, 'bad_input', `${path} line ${i + 1} has no '${field}'`)
      out.push(asNumber(reorder, (obj as Record<string, unknown>)[field], `${path} line ${i + 1} '${field}'`))
    })
    return Float64Array.from(out)
  }
  if (ext === '.json') {
    const obj = JSON.parse(text) as unknown
    const list = Array.isArray(obj)
      ? obj
      : typeof obj === 'object' && obj !== null
        ? ((obj as Record<string, unknown>)[field] ?? ((obj as Record<string, Record<string, unknown>>)['metric'] ?? {})[field])
        : undefined
    if (!Array.isArray(list)) throw new ReorderError(reorder, 'bad_input', `${path} is neither a list of scores nor an object with '${field}' (or metric.${field})`)
    return Float64Array.from(list, (v, i) => asNumber(reorder, v, `${path} [${i}]`))
  }
  throw new ReorderError(reorder, 'bad_input', `${path}: score files are .npy, .json or .jsonl`)
}

/**
 * The selection file `cache_path` names: the file itself, or in a folder (a run's output_dir: its selections
 * folder) step_<step>.json, else the one of the highest step.
 */
function selectionFile(reorder: string, path: string, step: number | null): string {
  if (!statSync(path).isDirectory()) {
    if (step !== null) throw new ReorderError(reorder, 'bad_params', `score_params.step picks a file in a folder; cache_path ${path} is a file`)
    return path
  }
  const runSelections = join(path, SELECTIONS_DIR)
  const dir = existsSync(runSelections) && statSync(runSelections).isDirectory() ? runSelections : path
  // By name as found (a zero-padded step_010.json is step 10 too).
  const files = readdirSync(dir)
    .map((name) => SELECTION_FILE.exec(name))
    .filter((m) => m !== null)
    .map((m) => ({ step: Number(m[1]), name: m[0] }))
    .sort((a, b) => a.step - b.step)
  if (files.length === 0) {
    const where = dir === path ? `${path} (nor a ${SELECTIONS_DIR} folder in it)` : dir
    throw new ReorderError(reorder, 'bad_input', `no selection file (step_<N>.json) in ${where}; a dynamic_select run writes one per selection whose selector returns scores`)
  }
  const found = step === null ? files[files.length - 1] : files.find((f) => f.step === step)
  if (found === undefined) throw new ReorderError(reorder, 'bad_input', `no selection at step ${step} in ${dir} (it has steps ${files.map((f) => f.step).join(', ')})`)
  return join(dir, found.name)
}

/** A selection cache densified to one score per training row. */
export function readSelectionCache(reorder: string, path: string, key: string, fill: number, numTrain: number): Float64Array {
  const obj = JSON.parse(readFileSync(path, 'utf8')) as { indices?: unknown; metric?: Record<string, unknown> }
  if (!Array.isArray(obj.indices)) throw new ReorderError(reorder, 'bad_input', `${path} has no 'indices' list`)
  const metric = obj.metric?.[key]
  if (!Array.isArray(metric)) {
    throw new ReorderError(reorder, 'bad_input', `${path} has no metric '${key}' (it has: ${Object.keys(obj.metric ?? {}).join(', ') || 'none'})`)
  }
  if (metric.length !== obj.indices.length) throw new ReorderError(reorder, 'bad_input', `${path}: ${obj.indices.length} indices but ${metric.length} values of '${key}'`)
  const dense = new Float64Array(numTrain).fill(fill)
  obj.indices.forEach((row, i) => {
    const r = asNumber(reorder, row, `${path} indices[${i}]`)
    if (Number.isInteger(r) && r >= 0 && r < numTrain) dense[r] = asNumber(reorder, metric[i], `${path} metric.${key}[${i}]`)
  })
  return dense
}

function median(values: Float64Array): number {
  if (values.length === 0) return 0
  const s = Float64Array.from(values).sort()
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** Scores read once from a file (at the first use, when the run's rows are known), one per training row. */
function fileScores(name: ScoreSourceName, read: () => Float64Array): ScoreSource {
  let all: Float64Array | undefined
  return {
    name,
    dynamic: false,
    async scoresFor(positions) {
      all ??= read()
      return Float64Array.from(positions, (i) => all![i]!)
    },
  }
}

/** The score source a preset names, its params validated (paths resolved against the working directory, then baseDir). */
export function scoreSource(reorder: string, name: ScoreSourceName, rawParams: unknown, env: ScoreEnv): ScoreSource {
  const parsed = SCORE_PARAMS[name].safeParse(rawParams ?? {})
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    throw new ReorderError(reorder, 'bad_params', `score_params.${issue.path.join('.') || '(all)'} for score_source ${name}: ${issue.message}`)
  }
  if (name === 'precomputed') {
    const p = parsed.data as z.output<typeof PrecomputedParams>
    const raw = env.raw
    if (raw !== undefined) {
      const numRaw = raw.rows.reduce((a, b) => a + b, 0)
      const column = raw.scores
      let readRaw: () => Float64Array
      if (p.score_path !== null) {
        const path = inputFile(reorder, 'score_path', p.score_path, env.baseDir)
        readRaw = () => checkScores(reorder, readScoreFile(reorder, path, p.score_field), numRaw, path, RAW_ROWS)
      } else if (column !== null) {
        readRaw = () => column
      } else {
        throw new ReorderError(reorder, 'bad_input', `apply_at: raw: the datasets' '${p.score_field}' column was not read at load`)
      }
      // Each training row takes its raw row's score; finiteness is checked on the rows that train.
      return fileScores(name, () => {
        const perRaw = readRaw()
        return checkScores(reorder, Float64Array.from(raw.index_of_row, (i) => perRaw[i]!), env.numTrain, `${p.score_path ?? `the '${p.score_field}' column`} mapped to the training rows`)
      })
    }
    if (p.score_path === null) {
      throw new ReorderError(reorder, 'bad_params', 'score_source precomputed needs score_params.score_path (a file of one score per training row)')
    }
    const path = inputFile(reorder, 'score_path', p.score_path, env.baseDir)
    return fileScores(name, () => checkScores(reorder, readScoreFile(reorder, path, p.score_field), env.numTrain, path))
  }
  if (name === 'cached_selection') {
    const p = parsed.data as z.output<typeof CachedSelectionParams>
    const path = selectionFile(reorder, inputFile(reorder, 'cache_path', p.cache_path, env.baseDir), p.step)
    return fileScores(name, () => checkScores(reorder, readSelectionCache(reorder, path, p.metric_key, p.fill_value, env.numTrain), env.numTrain, path))
  }
  const p = parsed.data as z.output<typeof ModelLossParams>
  return {
    name,
    dynamic: true,
    async scoresFor(positions, ctx) {
      const n = positions.length
      if (n === 0) return new Float64Array(0)
      // A seeded subsample (in pool order) when the pool is larger than max_samples.
      let picked = Int32Array.from({ length: n }, (_, i) => i)
      if (p.max_samples !== null && n > p.max_samples) {
        picked = Int32Array.from(uniformWithoutReplacement(Rng.derive(p.seed, 'model_loss', ctx.step), n, p.max_samples)).sort()
      }
      const losses = await ctx.model.losses('train', Int32Array.from(picked, (j) => positions[j]!), p.batch_size === null ? {} : { maxBatchRows: p.batch_size })
      const finite = Float64Array.from(losses).filter((v) => Number.isFinite(v))
      // Unscored rows (and any non-finite loss) tie at the median of the finite losses.
      const fill = median(finite)
      const out = new Float64Array(n).fill(fill)
      picked.forEach((j, k) => {
        const v = losses[k]!
        if (Number.isFinite(v)) out[j] = v
      })
      return out
    },
  }
}
