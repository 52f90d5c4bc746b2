/**
 * The pure parts of dynamic_lego: the pipeline rules (order, one budget taker, refusals), the stage clock, the mixer
 * stage's quota draw and the budget, each against a reference written here from the definitions; and the score board
 * over a counting fake model (a fake is right here: the board is a cache, the executor is tested elsewhere).
 */
import { describe, expect, it } from 'vitest'
import { Rng } from '../src/math/rng.ts'
import type { ModelOps } from '../src/strategies/types.ts'
import { ScoreBoard } from '../src/trainers/lego-board.ts'
import { buildPipeline, enforceBudget, isDue, PipelineError, PipelineParamsSchema, quotaDraw, StageSchema, type StageConfig } from '../src/trainers/lego-pipeline.ts'

const stage = (s: Record<string, unknown>): StageConfig => StageSchema.parse(s)

describe('buildPipeline', () => {
  it('runs index stages select → mix → reorder whatever the written order, with a note; weighters on the loss side', () => {
    const p = buildPipeline([
      stage({ family: 'weighter', component: 'loss' }),
      stage({ family: 'reorder', component: 'dynamic_saw' }),
      stage({ family: 'mixer', component: 'odm' }),
      stage({ family: 'selector', component: 'loss' }),
    ])
    expect(p.index.map((s) => s.id)).toEqual(['selector:loss', 'mixer:odm', 'reorder:dynamic_saw'])
    expect(p.loss.map((s) => s.id)).toEqual(['weighter:loss'])
    expect(p.notes).toHaveLength(1)
    // The last taker keeps the budget: the reorder; the mixer reshapes; the filter selector never takes.
    expect(p.index.map((s) => s.taker)).toEqual([false, false, true])
    expect(p.uniformTake).toBe(false)
  })

  it.each([
    { written: [{ family: 'selector', component: 's', mode: 'draw' }], takers: [true], uniform: false },
    { written: [{ family: 'selector', component: 's' }], takers: [false], uniform: true },
    { written: [{ family: 'selector', component: 's' }, { family: 'mixer', component: 'm' }], takers: [false, true], uniform: false },
    { written: [{ family: 'weighter', component: 'w' }], takers: [], uniform: true },
  ])('takers of $written.length stage(s): $takers, uniform take $uniform', ({ written, takers, uniform }) => {
    const p = buildPipeline(written.map(stage))
    expect(p.index.map((s) => s.taker)).toEqual(takers)
    expect(p.uniformTake).toBe(uniform)
  })

  it('defaults: every 0 counts as 1, score_max_age null is any age, filter keeps half', () => {
    const [s] = buildPipeline([stage({ family: 'selector', component: 's', every: 0, score_max_age: null })]).index
    expect(s).toMatchObject({ every: 1, scoreMaxAge: Infinity, mode: 'filter', keepRatio: 0.5, warmupStep: 0 })
  })

  it.each([
    [[{ family: 'selector', component: 'a', mode: 'draw' }, { family: 'reorder', component: 'r' }], 'stages.0.mode', /use mode: filter/],
    [[{ family: 'mixer', component: 'a' }, { family: 'mixer', component: 'b' }], 'stages.1.family', /at most one index stage per family/],
    [[{ family: 'weighter', component: 'w' }, { family: 'weighter', component: 'w' }], 'stages', /listed twice/],
    [[{ family: 'selector', component: 'a', enabled: false }], 'stages', /every stage is disabled/],
  ])('refuses %j at %s', (written, at, message) => {
    let err: unknown
    try {
      buildPipeline(written.map(stage))
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(PipelineError)
    expect((err as PipelineError).at).toBe(at)
    expect((err as PipelineError).message).toMatch(message)
  })

  it('stage keys are checked: unknown keys, family-only keys, keep_ratio range', () => {
    expect(StageSchema.safeParse({ family: 'selector', component: 's', moed: 'draw' }).success).toBe(false)
    expect(StageSchema.safeParse({ family: 'mixer', component: 'm', mode: 'draw' }).success).toBe(false)
    expect(StageSchema.safeParse({ family: 'selector', component: 's', keep_ratio: 0 }).success).toBe(false)
    expect(StageSchema.safeParse({ family: 'selector', component: 's', mode: 'draw', keep_ratio: 0.5 }).success).toBe(false)
    expect(PipelineParamsSchema.safeParse({ stages: [] }).success).toBe(false)
  })
})

describe('isDue', () => {
  it.each([
    { warmup: 10, every: 50, step: 0, last: undefined, due: false },
    { warmup: 10, every: 50, step: 10, last: undefined, due: true },
    { warmup: 10, every: 50, step: 50, last: 10, due: false },
    { warmup: 10, every: 50, step: 60, last: 10, due: true },
    { warmup: 0, every: 1, step: 0, last: undefined, due: true },
    { warmup: 0, every: 1, step: 7, last: 6, due: true },
  ])('warmup $warmup every $every at step $step after $last: $due', ({ warmup, every, step, last, due }) => {
    expect(isDue({ warmupStep: warmup, every }, step, last)).toBe(due)
  })
})

/** Domain of each row: 0 for rows < 10, 1 for 10..14, 2 for 15..29. */
const DOMAIN = Int32Array.from({ length: 30 }, (_, i) => (i < 10 ? 0 : i < 15 ? 1 : 2))
const countBy = (rows: ArrayLike<number>): number[] => {
  const c = [0, 0, 0]
  for (let i = 0; i < rows.length; i++) c[DOMAIN[rows[i]!]!]!++
  return c
}

describe('quotaDraw', () => {
  const pool = Int32Array.from({ length: 30 }, (_, i) => i)

  it('the taker draws the interval by largest-remainder quotas, each domain without replacement, domain-blocked', () => {
    const p = Float64Array.from([0.5, 0.2, 0.3])
    const got = quotaDraw(pool, DOMAIN, p, { taker: true, interval: 11 }, false, Rng.derive(1, 't'))
    // 5.5, 2.2, 3.3 → 5, 2, 3 + one to the largest remainder (domain 0).
    expect(countBy(got)).toEqual([6, 2, 3])
    expect(new Set(got).size).toBe(11)
    expect(Array.from(got, (r) => DOMAIN[r])).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2])
  })

  it("a domain short of its quota gives all it has; the shortfall comes from the rest of the pool", () => {
    const p = Float64Array.from([0, 1, 0])
    const got = quotaDraw(pool, DOMAIN, p, { taker: true, interval: 8 }, false, Rng.derive(2, 't'))
    expect(got.length).toBe(8)
    expect(countBy(got)[1]).toBe(5)
    expect(new Set(got).size).toBe(8)
    const rep = quotaDraw(pool, DOMAIN, p, { taker: true, interval: 8 }, true, Rng.derive(2, 't'))
    expect(countBy(rep)).toEqual([0, 8, 0])
  })

  it('reshaping (not the taker): the largest pool the proportions allow without repeats, never below one interval', () => {
    const p = Float64Array.from([0.5, 0.25, 0.25])
    // min over domains of |pool_d| / p_d = min(20, 20, 60) = 20.
    expect(quotaDraw(pool, DOMAIN, p, { taker: false, interval: 6 }, false, Rng.derive(3, 't')).length).toBe(20)
    // Never below the interval (24 > 20): the shortfall is lent by the others.
    const big = quotaDraw(pool, DOMAIN, p, { taker: false, interval: 24 }, false, Rng.derive(3, 't'))
    expect(big.length).toBe(24)
    expect(new Set(big).size).toBe(24)
  })
})

describe('enforceBudget', () => {
  const rng = (): Rng => Rng.derive(5, 'b')
  const all = Int32Array.from({ length: 100 }, (_, i) => i)
  it.each([
    { n: 8, ordered: true, action: 'exact' },
    { n: 12, ordered: true, action: 'head' },
    { n: 12, ordered: false, action: 'draw' },
    { n: 3, ordered: true, action: 'cycle' },
    { n: 0, ordered: false, action: 'uniform' },
  ])('$n rows (ordered $ordered) → 8 by $action', ({ n, ordered, action }) => {
    const plan = Int32Array.from({ length: n }, (_, i) => 50 + i)
    const got = enforceBudget(plan, ordered, 8, all, rng())
    expect(got.action).toBe(action)
    expect(got.indices.length).toBe(8)
    if (action === 'head' || action === 'exact') expect(Array.from(got.indices)).toEqual(Array.from(plan.subarray(0, 8)))
    if (action === 'cycle') expect(Array.from(got.indices)).toEqual([50, 51, 52, 50, 51, 52, 50, 51])
    if (action === 'draw') {
      expect(new Set(got.indices).size).toBe(8)
      expect(Array.from(got.indices).every((r) => r >= 50 && r < 62)).toBe(true)
    }
  })
})

describe('ScoreBoard', () => {
  /** A model whose loss of row r at "version" v is r + v, counting the rows it scored. */
  function fake(): { model: ModelOps; asked: number[][]; version: { v: number } } {
    const asked: number[][] = []
    const version = { v: 0 }
    const no = (): never => {
      throw new Error('not used')
    }
    return {
      asked,
      version,
      model: {
        numTrain: 100,
        numEval: 0,
        losses: async (_split, rows) => {
          asked.push(Array.from(rows))
          return Float32Array.from(rows, (r) => (r === 7 ? NaN : r + version.v))
        },
        gradients: no,
        embeddings: no,
        routerLoads: no,
      },
    }
  }

  it('scores each row once per step and shares it; stale rows (and NaN) are asked again', async () => {
    const f = fake()
    const board = new ScoreBoard(f.model, 8)
    const a = await board.view(10, 0).losses('train', Int32Array.from([3, 1, 2, 7]))
    expect(Array.from(a.subarray(0, 3))).toEqual([3, 1, 2])
    expect(Number.isNaN(a[3]!)).toBe(true)
    // Same step: 1 and 3 from the board; 5 and the NaN row are asked.
    const b = await board.view(10, 0).losses('train', Int32Array.from([1, 5, 3, 7]))
    expect(Array.from(b.subarray(0, 3))).toEqual([1, 5, 3])
    expect(f.asked).toEqual([[1, 2, 3, 7], [5, 7]])
    f.version.v = 100
    // A later step: too old for max age 0, fresh enough for max age 5.
    expect(Array.from(await board.view(12, 5).losses('train', Int32Array.from([1, 2])))).toEqual([1, 2])
    expect(Array.from(await board.view(12, 0).losses('train', Int32Array.from([1, 2])))).toEqual([101, 102])
    expect(f.asked.at(-1)).toEqual([1, 2])
    expect(board.stats).toEqual({ computed: 8, hits: 4, fullHits: 1 })
    expect(Array.from(board.latest('train', Int32Array.from([1, 5, 9])))).toEqual([101, 5, NaN])
  })
})
