/**
 * The built-in reorders, named by `params.kind` as DataFlex presets write them: `static` (score the pool once, read
 * the order as a stream) and `dynamic` (rescore and reorder what is left at every interval). Both order with one of
 * the seven patterns (patterns.ts) by scores from a score source (scores.ts); the trainer serves them.
 */
import { z } from 'zod'
import { defineReorder, type ReorderEnv, type ReorderInstance, type Serving } from '../reorder.ts'
import type { Scores } from '../types.ts'
import { ReorderError } from './common.ts'
import { applyPattern, OrderingParams, PATTERN_NAMES } from './patterns.ts'
import { SCORE_PARAMS, SCORE_SOURCES, scoreSource, type ScoreEnv } from './scores.ts'

const common = {
  pattern: z.enum(PATTERN_NAMES).default('sorting').describe(`the ordering: ${PATTERN_NAMES.join(', ')}`),
  ...OrderingParams.shape,
  // The run's seed unless the preset fixes one: a run with another seed gets other random orders.
  seed: z.int().nullable().default(null).describe("seed of the shuffle and segment patterns and of the window shuffle; null: the run's seed"),
  pattern_params: z.record(z.string(), z.unknown()).nullable().default(null).describe("the pattern's own params (layers, num_sections, …)"),
  score_params: z.record(z.string(), z.unknown()).default({}).describe("the score source's params (score_path, score_field, cache_path, max_samples, …)"),
  apply_at: z
    .enum(['raw', 'index'])
    .default('index')
    .describe(
      "precomputed scores are aligned to — index: the preprocessed training rows; raw: the raw rows of the datasets (a score file of one per raw row, or else each row's score_field column), each training row scored by the raw row it came from",
    ),
}

export const StaticReorderParams = z.strictObject({
  ...common,
  score_source: z.enum(SCORE_SOURCES).default('precomputed').describe(`where scores come from: ${SCORE_SOURCES.join(', ')}`),
})

export const DynamicReorderParams = z.strictObject({
  ...common,
  score_source: z.enum(SCORE_SOURCES).default('model_loss').describe(`where scores come from: ${SCORE_SOURCES.join(', ')}`),
  reorder_every: z.int().min(1).default(1).describe('rescore at every n-th interval; in between, serve the rest of the last order'),
  consume_once: z.boolean().default(true).describe('each sample once per pass (the pool shrinks); false: every interval orders the whole pool'),
  serve: z
    .enum(['slice', 'head'])
    .default('slice')
    .describe("slice: the interval's part of the pattern laid over the whole pass (the pattern's full shape); head: the head of the pattern over what is left (DataFlex)"),
})

type Common = z.output<typeof StaticReorderParams> | z.output<typeof DynamicReorderParams>

/** apply_at: raw with precomputed scores (shuffle needs none): the scores are per raw row. */
function readsRaw(p: Common): boolean {
  return p.apply_at === 'raw' && p.score_source === 'precomputed' && p.pattern !== 'shuffle'
}

function instance(kind: string, p: Common, env: ReorderEnv, serving: Serving): ReorderInstance {
  const name = `${kind} ${p.pattern}`
  // Check the pattern params now (a bad preset fails before training): an empty order runs every check.
  const params = { polarity: p.polarity, ascending: p.ascending, window_size: p.window_size, seed: p.seed ?? env.seed, pattern_params: p.pattern_params }
  applyPattern(p.pattern, new Int32Array(0), p.pattern === 'shuffle' ? undefined : new Float64Array(0), params)
  const noFile = p.score_source === 'precomputed' && (p.score_params['score_path'] ?? null) === null
  const raw = readsRaw(p) ? (env.rawRows ?? null) : undefined
  if (raw === null) throw new ReorderError(name, 'bad_input', 'apply_at: raw needs the training rows traced to raw rows at load (train_type: dynamic_reorder does it)')
  const sourceEnv: ScoreEnv = { numTrain: env.numTrain, baseDir: env.baseDir, ...(raw === undefined ? {} : { raw }) }
  // shuffle needs no scores (DataFlex still demanded a score column).
  const scores = noFile && p.pattern === 'shuffle' ? undefined : scoreSource(name, p.score_source, p.score_params, sourceEnv)
  return {
    serving,
    pattern: p.pattern,
    ...(scores === undefined ? {} : { scores }),
    order(ctx) {
      if (ctx.scores === undefined && p.pattern !== 'shuffle') throw new ReorderError(name, 'bad_input', 'no scores to order by')
      const order = applyPattern(p.pattern, ctx.indices, ctx.scores, params)
      if (ctx.scores === undefined) return { order }
      const at = new Map<number, number>()
      ctx.indices.forEach((row, i) => at.set(row, i))
      const scored: Scores = ctx.scores
      return { order, scores: Float64Array.from(order, (row) => scored[at.get(row)!]!) }
    },
  }
}

export const staticReorder = defineReorder({
  name: 'static',
  description: 'scores the pool once and orders it with a pattern; the run reads the order as a stream',
  params: StaticReorderParams,
  create: (p, env) => instance('static', p, env, { variant: 'static' }),
})

export const dynamicReorder = defineReorder({
  name: 'dynamic',
  description: 'rescores what is left of the pass and reorders it with a pattern every reorder_every intervals',
  params: DynamicReorderParams,
  create: (p, env) => instance('dynamic', p, env, { variant: 'dynamic', reorderEvery: p.reorder_every, consumeOnce: p.consume_once, serve: p.serve }),
})

export const BUILTIN_REORDERS = [staticReorder, dynamicReorder] as const

/**
 * What `load` must trace for a preset (its definition and validated params) reading raw-row scores: the score
 * column to read (null: a score file gives them), or undefined when the preset needs no raw rows.
 */
export function rawRowsRequest(definition: unknown, params: unknown): { score_field: string | null } | undefined {
  if (definition !== staticReorder && definition !== dynamicReorder) return undefined
  const p = params as Common
  if (!readsRaw(p)) return undefined
  // Bad score params are reported when the instance is created; trace the rows meanwhile.
  const parsed = SCORE_PARAMS.precomputed.safeParse(p.score_params)
  if (!parsed.success || parsed.data.score_path !== null) return { score_field: null }
  return { score_field: parsed.data.score_field }
}
