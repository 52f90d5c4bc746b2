/**
 * Unit tests of the outlier_guard weighter: micro-batches of fixed losses, and for `anchor: eval` a fake model whose
 * eval losses are known, no sidecar. The expected weights are worked out here from w_i = min(1, bound / loss_i),
 * bound = max_ratio × reference.
 */
import { fakeModelOps, Rng, type WeighContext } from 'dataflex-ts'
import { describe, expect, it } from 'vitest'
import outlierGuard from './outlier_guard.ts'

function microBatch(losses: number[]): WeighContext {
  return {
    step: 3,
    micro: 0,
    indices: Int32Array.from(losses, (_, i) => i),
    losses: Float32Array.from(losses),
    tokens: Int32Array.from(losses, () => 10),
    groupSamples: losses.length,
    groupMicro: 1,
    rng: Rng.derive(42, 'weigh', 3, 0),
    log: () => {},
  }
}

function capped(losses: number[], bound: number): number[] {
  const out: number[] = []
  for (const l of losses) out.push(l > bound ? bound / l : 1)
  return out
}

const env = { numTrain: 100, numEval: 4, seed: 42, baseDir: '/unused' }
const batch = [1, 2, 3, 40, 2]

describe('outlier_guard', () => {
  it('median anchor: only losses above max_ratio × the median are weighted down', async () => {
    const weighter = outlierGuard.create(outlierGuard.params.parse({ max_ratio: 2 }), env)
    expect(weighter.refresh).toBeUndefined()
    const { weights, info } = await weighter.weigh(microBatch(batch))
    // median of [1, 2, 3, 40, 2] = 2 → bound 4: only 40 is above it.
    capped(batch, 4).forEach((w, i) => expect(weights[i]).toBeCloseTo(w, 6))
    expect(info).toEqual({ guarded: 1 })
  })

  it('eval anchor: the bound follows the eval set mean loss measured at each refresh', async () => {
    const evalLosses = [1.5, 2.5, 0.5, 1.5]
    const model = fakeModelOps({ numTrain: 100, numEval: 4, losses: { eval: evalLosses } })
    const weighter = outlierGuard.create(outlierGuard.params.parse({ max_ratio: 1.5, anchor: 'eval', refresh_every: 5 }), env)
    expect(weighter.refresh!.every).toBe(5)
    const refreshed = await weighter.refresh!.run({ step: 2, model, rng: new Rng(1), cacheDir: '/unused', log: () => {} })
    let mean = 0
    for (const l of evalLosses) mean += l / evalLosses.length
    expect(refreshed).toEqual({ info: { eval_loss: mean } })
    expect(model.calls).toEqual([{ op: 'losses', split: 'eval', indices: [0, 1, 2, 3], options: {} }])

    const { weights, info } = await weighter.weigh(microBatch(batch))
    // mean 1.5 → bound 2.25: 3 and 40 are above it.
    capped(batch, 1.5 * mean).forEach((w, i) => expect(weights[i]).toBeCloseTo(w, 6))
    expect(info).toEqual({ guarded: 2 })
  })

  it('max_ratio null weighs every sample 1; anchor eval without an eval set is refused at creation', async () => {
    const plain = outlierGuard.create(outlierGuard.params.parse({ max_ratio: null }), env)
    expect(Array.from((await plain.weigh(microBatch(batch))).weights)).toEqual([1, 1, 1, 1, 1])
    expect(() => outlierGuard.create(outlierGuard.params.parse({ anchor: 'eval' }), { ...env, numEval: 0 })).toThrow(/needs an eval set/)
  })
})
