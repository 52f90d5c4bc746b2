/**
 * Unit tests of the fresh_hard selector against a fake model: fixed per-sample losses, no sidecar. The expected
 * selections are worked out here from the rule (score = loss / (1 + times picked)^novelty, best first).
 */
import { fakeModelOps, Rng, type ModelOps, type SelectContext } from 'dataflex-ts'
import { describe, expect, it } from 'vitest'
import freshHard from './fresh_hard.ts'

const LOSSES = [0.5, 2.0, 1.0, 3.0, 0.25, 2.5, 1.5, 0.75]

function context(model: ModelOps, step: number, numSamples: number): SelectContext {
  return { step, numSamples, updateIndex: 1, updateTimes: 1, flexEpoch: 0, rng: Rng.derive(42, 'select', step), model, cacheDir: '/unused', log: () => {} }
}

/** The `take` best of `pool` by loss / (1 + picked)^novelty, ties by index. */
function best(pool: number[], picked: number[], novelty: number, take: number): number[] {
  const scored = pool.map((i) => ({ i, s: LOSSES[i]! / Math.pow(1 + picked[i]!, novelty) }))
  scored.sort((a, b) => b.s - a.s || a.i - b.i)
  return scored.slice(0, take).map((x) => x.i)
}

describe('fresh_hard', () => {
  const env = { numTrain: LOSSES.length, numEval: 0, seed: 42, baseDir: '/unused' }

  it('keeps the highest losses of its pool, then prefers samples it has not picked yet', async () => {
    const model = fakeModelOps({ numTrain: LOSSES.length, losses: { train: LOSSES } })
    // pool_factor 4 × 2 samples: the pool is the whole training set.
    const selector = freshHard.create(freshHard.params.parse({ novelty: 1 }), env)
    const picked = new Array<number>(LOSSES.length).fill(0)
    const all = LOSSES.map((_, i) => i)

    const first = await selector.select(context(model, 0, 2))
    expect(Array.from(first.indices)).toEqual(best(all, picked, 1, 2)) // [3, 5]
    for (const i of first.indices) picked[i]!++
    expect(Array.from(first.scores!)).toEqual([3.0, 2.5])

    // 3 and 5 now score 3/2 and 2.5/2: 1 (2.0) and 6 (1.5) come first.
    const second = await selector.select(context(model, 5, 2))
    expect(Array.from(second.indices)).toEqual(best(all, picked, 1, 2))
    expect(Array.from(second.indices)).toEqual([1, 3])
    // The model was asked for the losses of the pool, once per decision.
    expect(model.calls.map((c) => [c.op, c.split, [...c.indices].sort((a, b) => a - b)])).toEqual([
      ['losses', 'train', all],
      ['losses', 'train', all],
    ])
  })

  it('scores only its pool when the pool is smaller than the training set', async () => {
    const model = fakeModelOps({ numTrain: LOSSES.length, losses: { train: LOSSES } })
    const selector = freshHard.create(freshHard.params.parse({ pool_factor: 2 }), env)
    const out = await selector.select(context(model, 3, 2))
    const pool = model.calls[0]!.indices
    expect(pool).toHaveLength(4)
    expect(Array.from(out.indices)).toEqual(best(pool, new Array<number>(LOSSES.length).fill(0), 1, 2))
  })

  it('state() and restore() carry the pick counts, so a resumed run decides as the uninterrupted one', async () => {
    const model = fakeModelOps({ numTrain: LOSSES.length, seed: 7 })
    const params = freshHard.params.parse({})
    const a = freshHard.create(params, env)
    await a.select(context(model, 0, 3))
    const b = freshHard.create(params, env)
    b.restore!(JSON.parse(JSON.stringify(a.state!())))
    const [fromA, fromB] = [await a.select(context(model, 4, 3)), await b.select(context(model, 4, 3))]
    expect(Array.from(fromB.indices)).toEqual(Array.from(fromA.indices))
  })

  it('refuses params it does not know', () => {
    expect(freshHard.params.safeParse({ pool_factr: 2 }).success).toBe(false)
  })
})
