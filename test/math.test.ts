/**
 * src/math: each helper against a plain-loop reference written here from the definition, plus the properties
 * the selectors rely on (tie order, determinism per seed, exact zeros, chunk-size independence).
 */
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  clusterMembers,
  distanceToClusterMean,
  farthestFirst,
  kmeans,
  lshPartition,
  miniBatchKmeans,
  miniBatchSphericalKmeans,
  randomPartition,
  sphericalKmeans,
} from '../src/math/kmeans.ts'
import { addRows, cosine, dot, forEachSqDistChunk, matVec, meanRows, pairwiseSqDist, rowDot, type RowMatrix } from '../src/math/linalg.ts'
import { Rng } from '../src/math/rng.ts'
import { inMemoryRows } from '../src/math/rows.ts'
import {
  countPositive,
  uniformWithReplacement,
  uniformWithoutReplacement,
  weightedWithReplacement,
  weightedWithoutReplacement,
} from '../src/math/sampling.ts'
import { l2NormalizeRows, mean, quantile, quantiles, softmax } from '../src/math/stats.ts'
import { argsortAsc, argsortDesc, topK } from '../src/math/topk.ts'
import { RowFile } from '../src/util/row-file.ts'
import { expectClose } from './close.ts'
import { tempDir } from './temp-dirs.ts'

/** Deterministic test data without the RNG under test: a tiny LCG. */
function lcg(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 4294967296
  }
}

function randomMatrix(rows: number, cols: number, seed: number): RowMatrix & { data: Float32Array } {
  const r = lcg(seed)
  return { data: Float32Array.from({ length: rows * cols }, () => r() * 2 - 1), rows, cols }
}

/** Reference ranking: every index, comparing (value desc, index asc), NaN as −∞, by insertion sort. */
function refRankDesc(values: ArrayLike<number>): number[] {
  const v = (i: number): number => (Number.isNaN(values[i]!) ? -Infinity : values[i]!)
  const out: number[] = []
  for (let i = 0; i < values.length; i++) {
    let p = out.length
    while (p > 0 && (v(out[p - 1]!) < v(i) || (v(out[p - 1]!) === v(i) && out[p - 1]! > i))) p--
    out.splice(p, 0, i)
  }
  return out
}

describe('topk', () => {
  it('matches the reference ranking, ties by lower index, NaN last, on both code paths', () => {
    const r = lcg(7)
    // Few distinct values → many ties.
    const values = Float64Array.from({ length: 200 }, () => Math.floor(r() * 6))
    values[17] = NaN
    values[3] = -Infinity
    const ref = refRankDesc(values)
    expect(Array.from(argsortDesc(values))).toEqual(ref)
    for (const k of [0, 1, 5, 20, 49, 50, 51, 120, 200]) expect(Array.from(topK(values, k))).toEqual(ref.slice(0, k))
  })

  it('argsortAsc is the ascending order with ties by lower index', () => {
    const v = [3, 1, 2, 1, NaN, 0]
    expect(Array.from(argsortAsc(v))).toEqual([5, 1, 3, 2, 0, 4])
  })

  it('rejects k out of range', () => {
    expect(() => topK([1, 2], 3)).toThrow(RangeError)
    expect(() => topK([1, 2], -1)).toThrow(RangeError)
  })
})

describe('stats', () => {
  it('quantile interpolates linearly between order statistics (torch.quantile default)', () => {
    const x = [4, 1, 3, 2]
    // pos = q·(n−1): 0.33 → 0.99 → 1 + 0.99·(2−1); 0.66 → 1.98 → 2 + 0.98·(3−2).
    expectClose(quantile(x, 0.33), 1.99, { rel: 1e-12 })
    expectClose(quantile(x, 0.66), 2.98, { rel: 1e-12 })
    expect(quantile(x, 0)).toBe(1)
    expect(quantile(x, 1)).toBe(4)
    expect(quantile([5], 0.5)).toBe(5)
    const r = lcg(3)
    const big = Float32Array.from({ length: 101 }, () => r())
    const sorted = Array.from(big).sort((a, b) => a - b)
    const qs = quantiles(big, [0.1, 0.5, 0.9])
    for (const [i, q] of [0.1, 0.5, 0.9].entries()) {
      const pos = q * 100
      const lo = Math.floor(pos)
      const ref = sorted[lo]! + (pos - lo) * (sorted[Math.ceil(pos)]! - sorted[lo]!)
      expectClose(qs[i], ref, { rel: 1e-12 })
    }
    expect(() => quantile([], 0.5)).toThrow(RangeError)
    expect(() => quantile([1, NaN], 0.5)).toThrow(RangeError)
    expect(() => quantile([1], 1.5)).toThrow(RangeError)
  })

  it('mean and softmax (max-subtracted, no overflow)', () => {
    expect(mean([1, 2, 3, 6])).toBe(3)
    const x = [1, 2, 3]
    const s = softmax(x)
    const z = x.reduce((a, v) => a + Math.exp(v), 0)
    x.forEach((v, i) => expectClose(s[i], Math.exp(v) / z, { rel: 1e-13 }))
    const big = softmax([1000, 1001], 1)
    expectClose(big[1]! / big[0]!, Math.E, { rel: 1e-10 })
    const t = softmax([0, 1], 2)
    expectClose(t[1]! / t[0]!, Math.exp(0.5), { rel: 1e-12 })
  })

  it('l2NormalizeRows leaves zero rows at zero', () => {
    const m = Float32Array.from([3, 4, 0, 0, 1, 0])
    const norms = l2NormalizeRows(m, 3, 2)
    expect(Array.from(norms)).toEqual([5, 0, 1])
    expect(Array.from(m)).toEqual([Math.fround(0.6), Math.fround(0.8), 0, 0, 1, 0])
  })
})

describe('linalg', () => {
  const a = randomMatrix(13, 7, 1)
  const b = randomMatrix(5, 7, 2)

  it('dot, cosine, rowDot, matVec, meanRows against loops', () => {
    const v = Float64Array.from({ length: 7 }, (_, i) => i - 3)
    const mv = matVec(a, v)
    for (let r = 0; r < a.rows; r++) {
      let s = 0
      for (let c = 0; c < 7; c++) s += a.data[r * 7 + c]! * v[c]!
      // Terms up to 3 in size that may cancel: the error scales with them, not with the sum.
      expectClose(mv[r], s, { rel: 1e-12, scale: 3 })
      expectClose(rowDot(a, r, v), s, { rel: 1e-12, scale: 3 })
    }
    const m = meanRows(a)
    for (let c = 0; c < 7; c++) {
      let s = 0
      for (let r = 0; r < a.rows; r++) s += a.data[r * 7 + c]!
      expectClose(m[c], s / a.rows, { rel: 1e-12, scale: 1 })
    }
    const sums = addRows(b, new Float64Array(7))
    for (let c = 0; c < 7; c++) {
      let s = 0
      for (let r = 0; r < b.rows; r++) s += b.data[r * 7 + c]!
      expectClose(sums[c], s, { rel: 1e-12, scale: 1 })
    }
    const x = Float64Array.from([1, 2, 2])
    const y = Float64Array.from([2, 0, 1])
    expect(dot(x, y)).toBe(4)
    expectClose(cosine(x, y), 4 / (3 * Math.sqrt(5)), { rel: 1e-13 })
    expect(cosine(x, new Float64Array(3))).toBe(0)
  })

  it('pairwise squared distances, identical for every chunk size', () => {
    const full = pairwiseSqDist(a, b)
    for (let i = 0; i < a.rows; i++) {
      for (let j = 0; j < b.rows; j++) {
        let s = 0
        for (let c = 0; c < 7; c++) s += (a.data[i * 7 + c]! - b.data[j * 7 + c]!) ** 2
        expectClose(full[i * b.rows + j], s, { rel: 1e-12 })
      }
    }
    for (const chunk of [1, 3, 4, 13, 100]) {
      const out = new Float64Array(a.rows * b.rows)
      const starts: number[] = []
      forEachSqDistChunk(a, b, chunk, (start, count, dist) => {
        starts.push(start)
        expect(dist.length).toBe(count * b.rows)
        out.set(dist, start * b.rows)
      })
      expect(out).toEqual(full)
      expect(starts.length).toBe(Math.ceil(a.rows / Math.min(chunk, a.rows)))
    }
    expect(pairwiseSqDist(a, a)[0]).toBe(0)
  })
})

describe('sampling', () => {
  it('uniform draws are in range, distinct without replacement, and a pure function of the seed', () => {
    const w = uniformWithoutReplacement(new Rng(1), 50, 50)
    expect(new Set(w).size).toBe(50)
    expect(Array.from(uniformWithoutReplacement(new Rng(9), 1000, 10))).toEqual(Array.from(uniformWithoutReplacement(new Rng(9), 1000, 10)))
    const r = uniformWithReplacement(new Rng(2), 7, 500)
    expect(r.every((v) => v >= 0 && v < 7)).toBe(true)
    expect(new Set(r).size).toBe(7)
    expect(() => uniformWithoutReplacement(new Rng(1), 3, 4)).toThrow(RangeError)
  })

  const p = [0.5, 0, 0.3, 0.15, 0.05]

  it('weighted with replacement follows p and never draws a zero weight', () => {
    const draws = weightedWithReplacement(new Rng(3), p, 40000)
    const freq = new Float64Array(p.length)
    for (const d of draws) freq[d]!++
    p.forEach((pi, i) => expect(Math.abs(freq[i]! / 40000 - pi)).toBeLessThan(0.01))
    expect(freq[1]).toBe(0)
  })

  it('weighted without replacement: distinct, first pick ~ p, pair inclusion = successive-sampling formula', () => {
    const trials = 20000
    const first = new Float64Array(p.length)
    const incl = new Float64Array(p.length)
    for (let t = 0; t < trials; t++) {
      const s = weightedWithoutReplacement(Rng.derive(11, 'w', t), p, 2)
      expect(s[0]).not.toBe(s[1])
      first[s[0]!]!++
      incl[s[0]!]!++
      incl[s[1]!]!++
    }
    for (let i = 0; i < p.length; i++) {
      // P(i in a 2-sample) = p_i + Σ_{j≠i} p_j · p_i / (1 − p_j).
      let ref = p[i]!
      for (let j = 0; j < p.length; j++) if (j !== i) ref += (p[j]! * p[i]!) / (1 - p[j]!)
      expect(Math.abs(first[i]! / trials - p[i]!)).toBeLessThan(0.015)
      expect(Math.abs(incl[i]! / trials - ref)).toBeLessThan(0.015)
    }
    expect(incl[1]).toBe(0)
    expect(() => weightedWithoutReplacement(new Rng(1), p, 5)).toThrow(/only 4/)
    expect(countPositive(p)).toBe(4)
    expect(() => countPositive([1, -1])).toThrow(RangeError)
  })
})

/** Three well-separated Gaussian-ish blobs of 20 points in 4-D; blob b owns rows [20b, 20b+20). */
function blobs(): RowMatrix & { data: Float32Array } {
  const r = lcg(5)
  const centres = [
    [5, 0, 0, 0],
    [0, 5, 0, 0],
    [0, 0, 0, 5],
  ]
  const data = new Float32Array(60 * 4)
  for (let i = 0; i < 60; i++) for (let c = 0; c < 4; c++) data[i * 4 + c] = centres[Math.floor(i / 20)]![c]! + (r() - 0.5)
  return { data, rows: 60, cols: 4 }
}

function samePartition(assign: Int32Array, truth: (i: number) => number): boolean {
  const map = new Map<number, number>()
  for (let i = 0; i < assign.length; i++) {
    const t = truth(i)
    if (!map.has(t)) map.set(t, assign[i]!)
    if (map.get(t) !== assign[i]) return false
  }
  return new Set(map.values()).size === map.size
}

describe('clustering', () => {
  const x = blobs()
  const truth = (i: number): number => Math.floor(i / 20)

  it('k-means recovers blobs, is a Lloyd fixed point, and is chunk-size independent', () => {
    const a = kmeans(x, 3, { rng: new Rng(1), maxIter: 20, chunkRows: 7 })
    expect(samePartition(a.assign, truth)).toBe(true)
    // Reference: recompute the means from the assignment, every row must be nearest its own mean.
    const k = 3
    const means = new Float64Array(k * 4)
    const counts = new Float64Array(k)
    for (let i = 0; i < 60; i++) {
      counts[a.assign[i]!]!++
      for (let c = 0; c < 4; c++) means[a.assign[i]! * 4 + c]! += x.data[i * 4 + c]!
    }
    for (let j = 0; j < k; j++) for (let c = 0; c < 4; c++) means[j * 4 + c]! /= counts[j]!
    for (let i = 0; i < 60; i++) {
      let best = -1
      let bestD = Infinity
      for (let j = 0; j < k; j++) {
        let d = 0
        for (let c = 0; c < 4; c++) d += (x.data[i * 4 + c]! - means[j * 4 + c]!) ** 2
        if (d < bestD) [best, bestD] = [j, d]
      }
      expect(a.assign[i]).toBe(best)
    }
    const b = kmeans(x, 3, { rng: new Rng(1), maxIter: 20, chunkRows: 4096 })
    expect(b.assign).toEqual(a.assign)
    expect(a.iterations).toBeLessThan(20)
  })

  it('k-means re-seeds empty clusters', () => {
    // Two distinct points, four rows, k = 3: some initial centre is a duplicate and loses its rows.
    const dup: RowMatrix = { data: Float32Array.from([0, 0, 0, 0, 1, 1, 1, 1]), rows: 4, cols: 2 }
    let reseeded = 0
    for (let s = 0; s < 20; s++) {
      const c = kmeans(dup, 3, { rng: new Rng(s), maxIter: 3 })
      reseeded += c.reseeded
      expect(c.assign.every((v) => v >= 0 && v < 3)).toBe(true)
    }
    expect(reseeded).toBeGreaterThan(0)
  })

  it('spherical k-means groups directions', () => {
    const unit = { ...x, data: Float32Array.from(x.data) }
    l2NormalizeRows(unit.data, 60, 4)
    const s = sphericalKmeans(unit, 3, { rng: new Rng(4), maxIter: 10 })
    expect(samePartition(s.assign, truth)).toBe(true)
  })

  it('farthest-first equals a reference traversal from the same first centre', () => {
    const m = randomMatrix(40, 3, 9)
    const k = 6
    const ff = farthestFirst(m, k, new Rng(12))
    const first = new Rng(12).int(40)
    const d2 = (i: number, j: number): number => {
      let s = 0
      for (let c = 0; c < 3; c++) s += (m.data[i * 3 + c]! - m.data[j * 3 + c]!) ** 2
      return s
    }
    const centres = [first]
    while (centres.length < k) {
      let pick = -1
      let pickD = -1
      for (let i = 0; i < 40; i++) {
        if (centres.includes(i)) continue
        const md = Math.min(...centres.map((c) => d2(i, c)))
        if (md > pickD) [pick, pickD] = [i, md]
      }
      centres.push(pick)
    }
    for (let i = 0; i < 40; i++) {
      const ds = centres.map((c) => d2(i, c))
      expect(ff.assign[i]).toBe(ds.indexOf(Math.min(...ds)))
    }
  })

  it('LSH buckets by hyperplane signs (reference with the same Gaussian draws, row-major D × bits)', () => {
    const m = randomMatrix(50, 5, 21)
    const k = 4
    const res = lshPartition(m, k, new Rng(8))
    const bits = 2
    const g = new Rng(8)
    const planes = Array.from({ length: 5 * bits }, () => g.normal())
    const codes = Array.from({ length: 50 }, (_, i) => {
      let code = 0
      for (let h = 0; h < bits; h++) {
        let s = 0
        for (let t = 0; t < 5; t++) s += m.data[i * 5 + t]! * planes[t * bits + h]!
        if (s >= 0) code += 2 ** h
      }
      return code
    })
    const uniq = [...new Set(codes)].sort((a, b) => a - b)
    expect(Array.from(res.assign)).toEqual(codes.map((c) => uniq.indexOf(c) % k))
    // More buckets than k fold modulo k.
    const many = lshPartition(m, 3, new Rng(8), 6)
    expect(many.assign.every((v) => v < 3)).toBe(true)
  })

  it('random partition is balanced and seeded', () => {
    const a = randomPartition(103, 10, new Rng(3))
    const sizes = new Int32Array(10)
    for (const c of a.assign) sizes[c]!++
    expect(Math.min(...sizes)).toBe(10)
    expect(Math.max(...sizes)).toBe(11)
    expect(randomPartition(103, 10, new Rng(3)).assign).toEqual(a.assign)
    expect(randomPartition(103, 10, new Rng(4)).assign).not.toEqual(a.assign)
  })

  it('members (CSR, ascending) and distances to the cluster mean', () => {
    const assign = Int32Array.from([2, 0, 2, 1, 0, 2])
    const { offsets, members } = clusterMembers(assign, 4)
    expect(Array.from(offsets)).toEqual([0, 2, 3, 6, 6])
    expect(Array.from(members)).toEqual([1, 4, 3, 0, 2, 5])
    const m: RowMatrix = { data: Float32Array.from([0, 0, 1, 1, 2, 0, 5, 5, 3, 3, 4, 0]), rows: 6, cols: 2 }
    const d = distanceToClusterMean(m, assign, 4)
    // cluster 2 = rows 0,2,5 → mean (2,0); cluster 0 = rows 1,4 → mean (2,2); cluster 1 = row 3 alone.
    expect(Array.from(d)).toEqual([2, Math.SQRT2, 0, 0, Math.SQRT2, 2])
    expect(() => clusterMembers(Int32Array.from([0, 3]), 3)).toThrow(RangeError)
  })
})

/**
 * Mini-batch k-means as Sculley (2010) writes it, in plain loops: initial centres = the rows at the first k positions
 * of rng.permutation(n); per iteration b rows drawn with rng.int(n); each assigned to its nearest centre as the
 * centres were before the batch (least Σ(x−c)², or largest dot when spherical; ties low); then in batch order
 * v[c] += 1, c := (1 − 1/v[c])·c + (1/v[c])·x (re-normalised when spherical); finally every row to its nearest centre.
 */
function refMiniBatch(x: RowMatrix, k: number, seed: number, iters: number, b: number, spherical: boolean): number[] {
  const { rows: n, cols: d } = x
  const rng = new Rng(seed)
  const perm = rng.permutation(n)
  const unit = (v: number[]): number[] => {
    const nn = Math.sqrt(v.reduce((a, t) => a + t * t, 0))
    return nn > 0 ? v.map((t) => t / nn) : v
  }
  const rowOf = (i: number): number[] => Array.from({ length: d }, (_, t) => x.data[i * d + t]!)
  let C = Array.from({ length: k }, (_, j) => (spherical ? unit(rowOf(perm[j]!)) : rowOf(perm[j]!)))
  const nearest = (v: number[]): number => {
    let best = 0
    let bestV = spherical ? -Infinity : Infinity
    C.forEach((c, j) => {
      const s = spherical ? c.reduce((a, t, q) => a + t * v[q]!, 0) : c.reduce((a, t, q) => a + (v[q]! - t) ** 2, 0)
      if (spherical ? s > bestV : s < bestV) [best, bestV] = [j, s]
    })
    return best
  }
  const v = new Array<number>(k).fill(0)
  for (let it = 0; it < iters; it++) {
    const M = Array.from({ length: b }, () => rowOf(rng.int(n)))
    const dM = M.map(nearest)
    M.forEach((row, r) => {
      const c = dM[r]!
      v[c]!++
      const eta = 1 / v[c]!
      const moved = C[c]!.map((t, q) => (1 - eta) * t + eta * row[q]!)
      C = C.map((old, j) => (j === c ? (spherical ? unit(moved) : moved) : old))
    })
  }
  return Array.from({ length: n }, (_, i) => nearest(rowOf(i)))
}

/** `per` rows around each of `centres` (±0.5 noise per coordinate), blob of row i = floor(i / per). */
function blobRows(centres: number[][], per: number, seed: number): RowMatrix & { data: Float32Array } {
  const r = lcg(seed)
  const d = centres[0]!.length
  const data = new Float32Array(centres.length * per * d)
  for (let i = 0; i < centres.length * per; i++) for (let c = 0; c < d; c++) data[i * d + c] = centres[Math.floor(i / per)]![c]! + (r() - 0.5)
  return { data, rows: centres.length * per, cols: d }
}

describe('mini-batch k-means (Sculley 2010)', () => {
  it('equals the plain-loop reference, Euclidean and spherical, in memory and from a file', () => {
    const m = randomMatrix(90, 5, 21)
    const unit = { ...m, data: Float32Array.from(m.data) }
    l2NormalizeRows(unit.data, 90, 5)
    const path = join(tempDir('minibatch'), 'rows.f32')
    for (const [spherical, x] of [[false, m], [true, unit]] as const) {
      const run = spherical ? miniBatchSphericalKmeans : miniBatchKmeans
      const ref = refMiniBatch(x, 7, 5, 12, 16, spherical)
      const mem = run(x, 7, { rng: new Rng(5), iterations: 12, batchSize: 16, blockRows: 11 })
      expect(Array.from(mem.assign)).toEqual(ref)
      expect(mem).toMatchObject({ k: 7, iterations: 12, reseeded: 0 })
      const file = RowFile.create(path, 5)
      for (let s = 0; s < 90; s += 25) file.append(x.data.subarray(s * 5, Math.min(90, s + 25) * 5))
      const disk = run(file, 7, { rng: new Rng(5), iterations: 12, batchSize: 16, blockRows: 8 })
      file.dispose()
      expect(Array.from(disk.assign)).toEqual(ref)
    }
    // A batch larger than the rows is capped at the rows.
    expect(Array.from(miniBatchKmeans(m, 3, { rng: new Rng(2), iterations: 3, batchSize: 1000 }).assign)).toEqual(refMiniBatch(m, 3, 2, 3, 90, false))
  })

  it('is deterministic for a seed and depends on it', () => {
    const m = randomMatrix(200, 4, 3)
    const opts = (seed: number) => ({ rng: Rng.derive(seed, 'mb'), iterations: 20, batchSize: 32 })
    const a = miniBatchKmeans(m, 9, opts(1))
    expect(miniBatchKmeans(m, 9, opts(1)).assign).toEqual(a.assign)
    expect(miniBatchKmeans(m, 9, opts(2)).assign).not.toEqual(a.assign)
  })

  it('recovers well-separated blobs whenever each blob holds an initial centre', () => {
    const centres = [
      [6, 0, 0, 0, 0],
      [0, 6, 0, 0, 0],
      [0, 0, 6, 0, 0],
      [0, 0, 0, 6, -6],
    ]
    const per = 150
    const x = blobRows(centres, per, 8)
    let tried = 0
    for (let seed = 0; seed < 200 && tried < 5; seed++) {
      // The initial centres are the rows at perm[0..k): recovery is only promised when they fall in distinct blobs.
      const perm = new Rng(seed).permutation(x.rows)
      if (new Set(Array.from(perm.subarray(0, 4), (i) => Math.floor(i / per))).size < 4) continue
      tried++
      const c = miniBatchKmeans(x, 4, { rng: new Rng(seed), iterations: 30, batchSize: 40 })
      expect(samePartition(c.assign, (i) => Math.floor(i / per))).toBe(true)
    }
    expect(tried).toBe(5)
  })

  it('farthest-first, LSH and distances to cluster means read a file block by block with the in-memory results', () => {
    const m = randomMatrix(57, 6, 13)
    const file = RowFile.create(join(tempDir('blocks'), 'rows.f32'), 6)
    file.append(m.data)
    try {
      expect(farthestFirst(file, 8, new Rng(4), 5).assign).toEqual(farthestFirst(m, 8, new Rng(4)).assign)
      expect(lshPartition(file, 5, new Rng(6), undefined, 7).assign).toEqual(lshPartition(inMemoryRows(m), 5, new Rng(6)).assign)
      const assign = kmeans(m, 4, { rng: new Rng(1), maxIter: 5 }).assign
      expect(distanceToClusterMean(file, assign, 4, 10)).toEqual(distanceToClusterMean(m, assign, 4))
    } finally {
      file.dispose()
    }
  })
})
