/**
 * fakeModelOps (src/strategies/fake-model.ts), the ModelOps strategy authors unit-test against: answers from tables,
 * functions or seeded values, per row whatever the batch, options honoured as the executor's ops honour them, every
 * call recorded, and mistakes (an index outside its split, a short table, a wrong width) refused.
 */
import { describe, expect, it } from 'vitest'
import { fakeModelOps } from '../src/authoring.ts'
import type { EmbeddingOptions, GradientOptions } from '../src/strategies/types.ts'
import { expectAllClose } from './close.ts'

const grad = (over: Partial<GradientOptions> = {}): GradientOptions => ({ projDim: 3, seed: 1, precondition: 'sgd', normalize: false, ...over })
const emb = (over: Partial<EmbeddingOptions> = {}): EmbeddingOptions => ({ layer: -1, pooling: 'mask_mean', normalize: false, ...over })

describe('fakeModelOps', () => {
  it('losses from a table per split, from a function, and seeded otherwise; every call recorded', async () => {
    const m = fakeModelOps({ numTrain: 4, numEval: 2, losses: { train: [0.1, 0.2, 0.3, 0.4] } })
    expect(Array.from(await m.losses('train', Int32Array.of(3, 0)))).toEqual([Math.fround(0.4), Math.fround(0.1)])
    // No eval table: seeded, in [0.5, 2.5).
    const seeded = await m.losses('eval', Int32Array.of(0, 1))
    for (const l of seeded) expect(l >= 0.5 && l < 2.5).toBe(true)
    expect(m.calls).toEqual([
      { op: 'losses', split: 'train', indices: [3, 0], options: {} },
      { op: 'losses', split: 'eval', indices: [0, 1], options: {} },
    ])
    const f = fakeModelOps({ numTrain: 4, losses: (split, i) => (split === 'train' ? i * 10 : -1) })
    expect(Array.from(await f.losses('train', Int32Array.of(2, 1)))).toEqual([20, 10])
    expect(Array.from(await f.losses('eval:facts_eval', Int32Array.of(7)))).toEqual([-1])
  })

  it('seeded answers depend on the row only: any batch, any order, any instance with the same seed', async () => {
    const a = fakeModelOps({ numTrain: 10, seed: 5 })
    const b = fakeModelOps({ numTrain: 10, seed: 5 })
    const whole = await a.losses('train', Int32Array.from({ length: 10 }, (_, i) => i))
    const picked = await b.losses('train', Int32Array.of(7, 2, 7))
    expect(Array.from(picked)).toEqual([whole[7], whole[2], whole[7]])
    const other = await fakeModelOps({ numTrain: 10, seed: 6 }).losses('train', Int32Array.of(7))
    expect(other[0]).not.toBe(whole[7])

    const g1 = await a.gradients('train', Int32Array.of(1, 4), grad({ projDim: 5 }))
    const g2 = await b.gradients('train', Int32Array.of(4), grad({ projDim: 5 }))
    expect([g1.rows, g1.cols]).toEqual([2, 5])
    expect(Array.from(g2.data)).toEqual(Array.from(g1.data.subarray(5, 10)))
    // Another projector seed or preconditioning projects differently.
    expect(Array.from((await a.gradients('train', Int32Array.of(4), grad({ projDim: 5, seed: 2 }))).data)).not.toEqual(Array.from(g2.data))
    expect(Array.from((await a.gradients('train', Int32Array.of(4), grad({ projDim: 5, precondition: 'adam' }))).data)).not.toEqual(Array.from(g2.data))
    const e = await a.embeddings('train', Int32Array.of(0, 9), emb())
    expect([e.rows, e.cols]).toEqual([2, 16])
  })

  it('gradient and embedding tables: rows in request order, normalize as asked, projDim checked', async () => {
    const rows = [
      [3, 4, 0],
      [0, 0, 2],
      [1, 2, 2],
    ]
    const m = fakeModelOps({ numTrain: 3, gradients: { train: rows }, embeddings: (_s, i) => [i, 1], seed: 1 })
    const g = await m.gradients('train', Int32Array.of(2, 0), grad())
    expect(Array.from(g.data)).toEqual([1, 2, 2, 3, 4, 0])
    const unit = await m.gradients('train', Int32Array.of(2, 0), grad({ normalize: true }))
    const expected: number[] = []
    for (const r of [rows[2]!, rows[0]!]) {
      let s = 0
      for (const v of r) s += v * v
      for (const v of r) expected.push(v / Math.sqrt(s))
    }
    expectAllClose(unit.data, expected, { rel: 1e-6 })
    // The table is left as given.
    expect(rows[0]).toEqual([3, 4, 0])
    await expect(m.gradients('train', Int32Array.of(0), grad({ projDim: 8 }))).rejects.toThrow(/gradients row 0 has 3 values, expected 8/)
    const e = await m.embeddings('train', Int32Array.of(2, 1), emb({ normalize: true }))
    expectAllClose(e.data, [2 / Math.sqrt(5), 1 / Math.sqrt(5), 1 / Math.SQRT2, 1 / Math.SQRT2], { rel: 1e-6 })
    // A Matrix table works the same.
    const matrix = fakeModelOps({ numTrain: 2, gradients: { train: { data: Float32Array.of(1, 2, 3, 4, 5, 6), rows: 2, cols: 3 } } })
    expect(Array.from((await matrix.gradients('train', Int32Array.of(1), grad())).data)).toEqual([4, 5, 6])
  })

  it('router loads: as given, and an error without them, as for a dense model', async () => {
    const dense = fakeModelOps({ numTrain: 2 })
    await expect(dense.routerLoads('train', Int32Array.of(0))).rejects.toThrow(/not a mixture-of-experts model/)
    const moe = fakeModelOps({ numTrain: 2, routerLoads: { layers: 1, experts: 2, topK: 1, loads: { train: [[3, 1], [0, 4]] } } })
    const r = await moe.routerLoads('train', Int32Array.of(1, 0), { batchSize: 4 })
    expect(r).toEqual({ loads: { data: Float32Array.of(0, 4, 3, 1), rows: 2, cols: 2 }, layers: 1, experts: 2, topK: 1 })
    expect(moe.calls[0]).toEqual({ op: 'routerLoads', split: 'train', indices: [1, 0], options: { batchSize: 4 } })
  })

  it('refuses an index outside its split, a table of the wrong length, and bad sizes', async () => {
    const m = fakeModelOps({ numTrain: 3, numEval: 1, losses: { 'eval:x': [1, 2] } })
    await expect(m.losses('train', Int32Array.of(0, 3))).rejects.toThrow(/index 3 at position 1 is outside split 'train' \[0, 3\)/)
    await expect(m.losses('eval', Int32Array.of(1))).rejects.toThrow(/outside split 'eval' \[0, 1\)/)
    await expect(m.losses('eval:x', Int32Array.of(2))).rejects.toThrow(/index 2 is past the 2 rows given for split 'eval:x'/)
    expect(() => fakeModelOps({ numTrain: 3, losses: { train: [1, 2] } })).toThrow(/losses.train has 2 rows, the split has 3/)
    expect(() => fakeModelOps({ numTrain: -1 })).toThrow(/numTrain must be a non-negative integer/)
  })
})
