/**
 * A `dynamic_lego` pipeline as a pure description (docs/lego.md): the `pipelines:` preset's schema, the ordering and
 * budget rules that make a list of stages one well-formed pipeline, the stage clock, and the two draws that shape an
 * interval (a mixer stage's quota draw and the final budget). The trainer (lego.ts) runs the components; nothing here
 * touches a model.
 */
import { z } from 'zod'
import type { Rng } from '../math/rng.ts'
import { uniformWithReplacement, uniformWithoutReplacement } from '../math/sampling.ts'
import type { ComponentKind } from '../strategies/kinds.ts'
import { apportion } from './mix-draw.ts'

export const FAMILIES = ['selector', 'mixer', 'reorder', 'weighter'] as const satisfies readonly ComponentKind[]
export type Family = (typeof FAMILIES)[number]

/** Index-side families in the order they run: proportions are computed over survivors, ordering comes last. */
export const INDEX_ORDER: readonly Family[] = ['selector', 'mixer', 'reorder']

export const StageSchema = z
  .strictObject({
    family: z.enum(FAMILIES).describe(`one of ${FAMILIES.join(', ')}`),
    component: z.string().min(1).describe('a preset of the family\'s section (selectors:, mixers:, reorders:, weighters:)'),
    enabled: z.boolean().default(true).describe('false: the stage is left out'),
    warmup_step: z.int().min(0).default(0).describe('the stage waits until this global step (absolute, not per flex-epoch)'),
    every: z.int().min(0).default(1).describe('fewest steps between two decisions of the stage (0 counts as 1)'),
    score_max_age: z.int().min(0).nullable().default(0).describe('how many steps old a shared score may be for this stage; null: any age'),
    mode: z.enum(['filter', 'draw']).optional().describe('selector: filter (shrink the pool by keep_ratio) or draw (take the interval)'),
    keep_ratio: z.number().gt(0).max(1).optional().describe('selector, filter mode: the fraction of the pool kept'),
    allow_replacement: z.boolean().optional().describe('mixer: a domain short of its quota repeats rows instead of lending the shortfall to the others'),
  })
  .superRefine((s, ctx) => {
    const only = (key: 'mode' | 'keep_ratio' | 'allow_replacement', family: Family): void => {
      if (s[key] !== undefined && s.family !== family) ctx.addIssue({ code: 'custom', path: [key], message: `applies to ${family} stages only` })
    }
    only('mode', 'selector')
    only('keep_ratio', 'selector')
    only('allow_replacement', 'mixer')
    if (s.keep_ratio !== undefined && s.mode === 'draw') ctx.addIssue({ code: 'custom', path: ['keep_ratio'], message: 'applies to mode: filter only' })
  })
export type StageConfig = z.output<typeof StageSchema>

export const PipelineParamsSchema = z.strictObject({
  stages: z.array(StageSchema).min(1).describe('the stages, each {family, component, ...}'),
  cache_dir: z.string().min(1).nullable().default(null).describe("the stages' cache root (<cache_dir>/<family>_<component>), and where save_plans writes"),
  score_batch_size: z.int().min(1).nullable().default(8).describe('most rows per forward of the shared loss scoring; null: batches sized by padded tokens'),
  score_num_workers: z.int().min(0).default(2).describe('accepted for DataFlex presets; scoring runs in the sidecar'),
  save_plans: z.boolean().default(false).describe("write each interval's plan with its shared scores (the selection-cache layout)"),
  seed: z.int().default(42).describe('accepted for DataFlex presets; the pipeline draws derive from the run seed'),
})
export type PipelineParams = z.output<typeof PipelineParamsSchema>

/** One stage as the pipeline runs it. */
export interface PipelineStage {
  /** `<family>:<component>`, unique in the pipeline. */
  readonly id: string
  readonly family: Family
  readonly component: string
  readonly warmupStep: number
  readonly every: number
  /** Infinity: any age. */
  readonly scoreMaxAge: number
  readonly mode: 'filter' | 'draw'
  readonly keepRatio: number
  readonly allowReplacement: boolean
  /** This stage fills the interval (the budget taker). */
  readonly taker: boolean
}

export interface Pipeline {
  /** Index-side stages in run order (selector, mixer, reorder; at most one each). */
  readonly index: readonly PipelineStage[]
  /** Weighter stages, in the order written. */
  readonly loss: readonly PipelineStage[]
  /** No index stage takes the budget: the interval is a uniform draw from the last pool. */
  readonly uniformTake: boolean
  /** Lines for the run log (e.g. stages re-sorted). */
  readonly notes: readonly string[]
}

export class PipelineError extends Error {
  override readonly name = 'PipelineError'
  /** Where in the preset, e.g. `stages.1.mode`. */
  readonly at: string
  constructor(at: string, message: string) {
    super(message)
    this.at = at
  }
}

/**
 * The stages as one pipeline: disabled ones left out, at most one index stage per family, index stages in the order
 * select → mix → reorder (re-sorted with a note), exactly one budget taker (the last of a draw-mode selector, a mixer
 * or a reorder; an earlier mixer reshapes instead; an earlier draw-mode selector is an error), weighters on the loss
 * side.
 */
export function buildPipeline(stages: readonly StageConfig[]): Pipeline {
  const notes: string[] = []
  const enabled = stages.map((s, i) => ({ s, i })).filter(({ s }) => s.enabled)
  if (enabled.length === 0) throw new PipelineError('stages', 'every stage is disabled')
  const seen = new Map<Family, number>()
  const index = enabled.filter(({ s }) => s.family !== 'weighter')
  for (const { s, i } of index) {
    const before = seen.get(s.family)
    if (before !== undefined) throw new PipelineError(`stages.${i}.family`, `a second ${s.family} stage (stage ${before} is one); a pipeline has at most one index stage per family`)
    seen.set(s.family, i)
  }
  const sorted = [...index].sort((a, b) => INDEX_ORDER.indexOf(a.s.family) - INDEX_ORDER.indexOf(b.s.family))
  if (sorted.some((x, k) => x !== index[k])) {
    notes.push(`index stages run in the order select → mix → reorder: ${sorted.map(({ s }) => `${s.family}:${s.component}`).join(' → ')}`)
  }
  const takes = (s: StageConfig): boolean => s.family === 'mixer' || s.family === 'reorder' || (s.family === 'selector' && s.mode === 'draw')
  const takerAt = sorted.map(({ s }) => takes(s)).lastIndexOf(true)
  sorted.forEach(({ s, i }, k) => {
    if (k < takerAt && s.family === 'selector' && s.mode === 'draw') {
      throw new PipelineError(`stages.${i}.mode`, `the selector draws the interval, but a later ${sorted[takerAt]!.s.family} stage takes it; use mode: filter`)
    }
  })
  const ids = new Set<string>()
  const stage = (s: StageConfig, taker: boolean): PipelineStage => {
    const id = `${s.family}:${s.component}`
    if (ids.has(id)) throw new PipelineError('stages', `stage ${id} is listed twice`)
    ids.add(id)
    return {
      id,
      family: s.family,
      component: s.component,
      warmupStep: s.warmup_step,
      every: Math.max(1, s.every),
      scoreMaxAge: s.score_max_age === null ? Infinity : s.score_max_age,
      mode: s.mode ?? 'filter',
      keepRatio: s.keep_ratio ?? 0.5,
      allowReplacement: s.allow_replacement ?? false,
      taker,
    }
  }
  return {
    index: sorted.map(({ s }, k) => stage(s, k === takerAt)),
    loss: enabled.filter(({ s }) => s.family === 'weighter').map(({ s }) => stage(s, false)),
    uniformTake: takerAt < 0,
    notes,
  }
}

/** A stage's clock: active from its warm-up step, deciding again once `every` steps have passed since it last did. */
export function isDue(stage: Pick<PipelineStage, 'warmupStep' | 'every'>, step: number, lastRun: number | undefined): boolean {
  return step >= stage.warmupStep && (lastRun === undefined || step - lastRun >= stage.every)
}

/**
 * A mixer stage's draw from `pool` by proportions `p`: per-domain counts by largest remainder, each domain's rows
 * drawn without replacement from the pool's members of that domain; a domain short of its count gives all it has and
 * the shortfall is drawn from the rest of the pool (or, with `allowReplacement`, repeats its own rows). The result is
 * domain-blocked; the trainer shuffles or orders it later.
 *
 * `budget`: the interval when the mixer takes it; otherwise the largest pool the proportions allow without repeats,
 * never less than one interval (reshaping for a later stage).
 */
export function quotaDraw(
  pool: Int32Array,
  domainOf: Int32Array,
  p: Float64Array,
  budget: { taker: boolean; interval: number },
  allowReplacement: boolean,
  rng: Rng,
): Int32Array {
  const k = p.length
  const members: number[][] = Array.from({ length: k }, () => [])
  for (const row of pool) members[domainOf[row]!]!.push(row)
  let n = budget.interval
  if (!budget.taker) {
    let most = Infinity
    for (let d = 0; d < k; d++) if (p[d]! > 0) most = Math.min(most, Math.floor(members[d]!.length / p[d]!))
    n = Math.max(Math.min(pool.length, most), Math.min(budget.interval, pool.length))
  }
  const counts = apportion(n, p)
  const out: number[] = []
  const picked = new Set<number>()
  let shortfall = 0
  for (let d = 0; d < k; d++) {
    const want = counts[d]!
    const group = members[d]!
    if (want === 0) continue
    if (want <= group.length) {
      for (const j of uniformWithoutReplacement(rng, group.length, want)) out.push(group[j]!)
    } else if (allowReplacement && group.length > 0) {
      for (const j of uniformWithReplacement(rng, group.length, want)) out.push(group[j]!)
    } else {
      for (const j of rng.permutation(group.length)) out.push(group[j]!)
      shortfall += want - group.length
    }
  }
  for (const row of out) picked.add(row)
  if (shortfall > 0) {
    const rest = Array.from(pool).filter((row) => !picked.has(row))
    for (const j of uniformWithoutReplacement(rng, rest.length, Math.min(shortfall, rest.length))) out.push(rest[j]!)
  }
  return Int32Array.from(out)
}

export type BudgetAction = 'exact' | 'head' | 'draw' | 'cycle' | 'uniform'

/**
 * The plan handed to training has exactly `interval` rows: an ordered plan keeps its head (the next part of the
 * curriculum), an unordered one longer than the interval gives a uniform draw without replacement, a shorter one
 * cycles, an empty one is a uniform draw with replacement from `all` (every trainable row).
 */
export function enforceBudget(plan: Int32Array, ordered: boolean, interval: number, all: Int32Array, rng: Rng): { indices: Int32Array; action: BudgetAction } {
  const n = plan.length
  if (n === interval) return { indices: plan, action: 'exact' }
  if (n === 0) return { indices: Int32Array.from(uniformWithReplacement(rng, all.length, interval), (j) => all[j]!), action: 'uniform' }
  if (n > interval) {
    if (ordered) return { indices: plan.slice(0, interval), action: 'head' }
    return { indices: Int32Array.from(uniformWithoutReplacement(rng, n, interval), (j) => plan[j]!), action: 'draw' }
  }
  return { indices: Int32Array.from({ length: interval }, (_, i) => plan[i % n]!), action: 'cycle' }
}
