/**
 * The built-in reorders, named by `params.kind` as DataFlex presets write them: `static` (score the pool once, read
 * the order as a stream) and `dynamic` (rescore and reorder what is left at every interval). Both order with one of
 * the seven patterns (patterns.ts) by scores from a score source (scores.ts); the trainer serves them.
 */
import { z } from 'zod'
import { defineReorder, type ReorderInstance, type Serving } from '../reorder.ts'
import type { Scores } from '../types.ts'
import { ReorderError } from './common.ts'
import { applyPattern, OrderingParams, PATTERN_NAMES } from './patterns.ts'
import { SCORE_SOURCES, scoreSource } from './scores.ts'

const common = {
  pattern: z.enum(PATTERN_NAMES).default('sorting').describe(`the ordering: ${PATTERN_NAMES.join(', ')}`),
  ...OrderingParams.shape,
  pattern_params: z.record(z.string(), z.unknown()).nullable().default(null).describe("the pattern's own params (layers, num_sections, …)"),
  score_params: z.record(z.string(), z.unknown()).default({}).describe("the score source's params (score_path, score_field, cache_path, max_samples, …)"),
  apply_at: z
    .enum(['raw', 'index'])
    .default('index')
    .describe('index: scores aligned to the preprocessed training rows; raw: to the raw rows (accepted when preprocessing dropped none)'),
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

function instance(kind: string, p: Common, env: { numTrain: number; baseDir: string }, serving: Serving): ReorderInstance {
  const name = `${kind} ${p.pattern}`
  // Check the pattern params now (a bad preset fails before training): an empty order runs every check.
  const params = { polarity: p.polarity, ascending: p.ascending, window_size: p.window_size, seed: p.seed, pattern_params: p.pattern_params }
  applyPattern(p.pattern, new Int32Array(0), p.pattern === 'shuffle' ? undefined : new Float64Array(0), params)
  const noFile = p.score_source === 'precomputed' && (p.score_params['score_path'] ?? null) === null
  if (noFile && p.pattern !== 'shuffle' && p.apply_at === 'raw') {
    throw new ReorderError(name, 'bad_params', "apply_at: raw with scores from a dataset column (score_field) is not supported yet; give score_params.score_path, a file of one score per training row, with apply_at: index")
  }
  // shuffle needs no scores (DataFlex still demanded a score column).
  const scores = noFile && p.pattern === 'shuffle' ? undefined : scoreSource(name, p.score_source, p.score_params, env)
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
