/**
 * bench/stats.ts (the quality study's statistics): hand-computed values (checked once against scipy.stats.wilcoxon,
 * which is not a dependency), and plain-loop references written here from the definitions: the Wilcoxon p-value by
 * enumerating every sign pattern, the bootstrap by redrawing the same stream.
 */
import { describe, expect, it } from 'vitest'
import {
  MAD_TO_SD,
  averageRanks,
  bootstrapMeanCi,
  mad,
  madOutliers,
  median,
  normalUpperTail,
  pairedSummary,
  sd,
  wilcoxonSignedRank,
} from '../bench/stats.ts'
import { Rng } from '../src/math/rng.ts'
import { expectClose } from './close.ts'

const F64 = { rel: 1e-12 }

describe('sd, median, mad', () => {
  it('match hand values', () => {
    // [1, 2, 4, 7]: mean 3.5, squared deviations 6.25 + 2.25 + 0.25 + 12.25 = 21, over n − 1 = 3.
    expectClose(sd([1, 2, 4, 7]), Math.sqrt(7), F64)
    expect(sd([5])).toBe(0)
    expectClose(median([1, 2, 4, 7]), 3, F64)
    // |x − 3| = [2, 1, 1, 4], median 1.5.
    expectClose(mad([1, 2, 4, 7]), 1.5 * MAD_TO_SD, F64)
    expectClose(MAD_TO_SD, 1 / 0.6744897501960817, F64)
  })

  it('flags the seed beyond 3 MADs in the reported seeds 60–62 (loss − random: +0.469, −0.048, −0.090)', () => {
    // median −0.048; deviations 0.517, 0, 0.042; MAD 0.042 · 1.4826 = 0.0623; 3 MADs = 0.187 < 0.517.
    expect(madOutliers([0.469, -0.048, -0.09])).toEqual([0])
    expect(madOutliers([0.1, -0.048, -0.09])).toEqual([])
    expect(madOutliers([0.2, 0.2, 0.2, 0.2])).toEqual([])
    // A MAD of 0: whatever is off the median is flagged.
    expect(madOutliers([0, 0, 0, 0.001])).toEqual([3])
    expect(madOutliers([5, -5])).toEqual([])
  })
})

describe('averageRanks', () => {
  it('gives ties the mean of their positions', () => {
    expect(averageRanks([3, 1, 3, 2])).toEqual([3.5, 1, 3.5, 2])
    expect(averageRanks([0.5, 0.5, 0.5])).toEqual([2, 2, 2])
  })
})

/** Two-sided exact p by enumerating the 2^n sign patterns of the non-zero |d| with their average ranks. */
function bruteForceP(diffs: number[]): number {
  const d = diffs.filter((x) => x !== 0)
  const n = d.length
  const a = d.map(Math.abs)
  const rank = a.map((x) => {
    let below = 0
    let equal = 0
    for (const y of a) {
      if (y < x) below++
      else if (y === x) equal++
    }
    return below + (equal + 1) / 2
  })
  let observed = 0
  for (let i = 0; i < n; i++) if (d[i]! > 0) observed += rank[i]!
  let low = 0
  let high = 0
  for (let mask = 0; mask < 2 ** n; mask++) {
    let w = 0
    for (let i = 0; i < n; i++) if (mask & (1 << i)) w += rank[i]!
    if (w <= observed + 1e-9) low++
    if (w >= observed - 1e-9) high++
  }
  return Math.min(1, (2 * Math.min(low, high)) / 2 ** n)
}

describe('wilcoxonSignedRank', () => {
  it('matches hand-computed exact p-values', () => {
    // All 5 positive: W+ = 15 is the largest of 32 patterns: p = 2/32.
    expect(wilcoxonSignedRank([1, 2, 3, 4, 5])).toEqual({ n: 5, wPlus: 15, p: 0.0625, exact: true })
    // W+ = 2 + 3 + 5 = 10; 10 of the 32 subsets of {1..5} sum to ≥ 10 (as many as sum to ≤ 5): p = 20/32.
    const mixed = wilcoxonSignedRank([-1, 2, 3, -4, 5])
    expect(mixed.wPlus).toBe(10)
    expectClose(mixed.p, 0.625, F64)
    // Ties: ranks 1.5, 1.5, 3, 4, W+ = 7; doubled ranks {3, 3, 6, 8}: 5 of the 16 subset sums are ≥ 14: p = 10/16.
    const tied = wilcoxonSignedRank([1, 1, -2, 3])
    expect(tied.wPlus).toBe(7)
    expectClose(tied.p, 0.625, F64)
    // A zero is dropped: [1, 2, 3], W+ = 6 of at most 6: p = 2/8.
    expect(wilcoxonSignedRank([0, 1, 2, 3])).toEqual({ n: 3, wPlus: 6, p: 0.25, exact: true })
    // Symmetric about 0: p = 1 (capped).
    expect(wilcoxonSignedRank([-1, 1]).p).toBe(1)
    expect(wilcoxonSignedRank([0, 0])).toEqual({ n: 0, wPlus: 0, p: 1, exact: true })
    // 10 seeds all lower (the study's default): the smallest p 10 seeds can give, 2/1024.
    expectClose(wilcoxonSignedRank(Array.from({ length: 10 }, (_, i) => -(i + 1) / 100)).p, 2 / 1024, F64)
  })

  it('equals the enumeration of every sign pattern, ties and zeros included (n ≤ 14)', () => {
    const rng = new Rng(7)
    for (let trial = 0; trial < 40; trial++) {
      const n = 1 + rng.int(14)
      // Small integers over 4 so that ties are common, a few zeros too.
      const d = Array.from({ length: n }, () => (rng.int(9) - 4) / 4)
      const got = wilcoxonSignedRank(d)
      expect(got.exact).toBe(true)
      expectClose(got.p, bruteForceP(d), F64, `p of [${d.join(', ')}]`)
    }
  })

  it('uses the normal approximation with continuity correction above 20', () => {
    // 1..25 all positive: W+ = 325, μ = 162.5, σ² = 25·26·51/24 = 1381.25; z = 162/√1381.25 = 4.35891.
    const got = wilcoxonSignedRank(Array.from({ length: 25 }, (_, i) => i + 1))
    expect(got.exact).toBe(false)
    expect(got.wPlus).toBe(325)
    expectClose(got.p, 1.3070605478013029e-5, { rel: 1e-6 })
    // Ties shrink σ: 21 values, the first two tied (t = 2: σ² − (8 − 2)/48). W+ = 231 − 0 (all positive).
    const tied = wilcoxonSignedRank([1, ...Array.from({ length: 20 }, (_, i) => i + 1)])
    const sigma = Math.sqrt((21 * 22 * 43) / 24 - 6 / 48)
    expectClose(tied.p, 2 * normalUpperTail((231 - 115.5 - 0.5) / sigma), F64)
  })

  it('normalUpperTail matches Φ̄ at hand points', () => {
    expectClose(2 * normalUpperTail(1), 0.31731050786291415, { rel: 1e-6 })
    expectClose(2 * normalUpperTail(4), 6.334248366623973e-5, { rel: 1e-6 })
    expectClose(normalUpperTail(0), 0.5, { rel: 1e-6 })
  })
})

describe('bootstrapMeanCi', () => {
  it('equals redrawing the same stream in a plain loop', () => {
    const xs = [0.31, -0.12, 0.05, 0.44, -0.2, 0.09, 0.0, 0.17]
    const b = 2000
    const rng = new Rng(11)
    const means: number[] = []
    for (let r = 0; r < b; r++) {
      let s = 0
      for (let i = 0; i < xs.length; i++) s += xs[rng.int(xs.length)]!
      means.push(s / xs.length)
    }
    means.sort((p, q) => p - q)
    const at = (q: number): number => {
      const pos = q * (b - 1)
      const lo = Math.floor(pos)
      return means[lo]! + (pos - lo) * (means[Math.min(lo + 1, b - 1)]! - means[lo]!)
    }
    const got = bootstrapMeanCi(xs, { resamples: b, seed: 11 })
    expectClose(got.lo, at(0.025), { rel: 1e-12, scale: 0.1 })
    expectClose(got.hi, at(0.975), { rel: 1e-12, scale: 0.1 })
    expect(got.lo).toBeLessThan(got.hi)
  })

  it('is a point for a constant sample, seeded, and covers the mean of a spread one', () => {
    expect(bootstrapMeanCi([0.3, 0.3, 0.3], { seed: 1 })).toEqual({ lo: 0.3, hi: 0.3 })
    const xs = [1, 2, 3, 4, 5, 6]
    expect(bootstrapMeanCi(xs, { seed: 5 })).toEqual(bootstrapMeanCi(xs, { seed: 5 }))
    // Another seed, another stream (data off the grid of means, so the quantiles move).
    const ys = [0.13, 0.71, 0.29, 0.97, 0.41, 0.58, 0.05]
    expect(bootstrapMeanCi(ys, { seed: 5, resamples: 500 })).not.toEqual(bootstrapMeanCi(ys, { seed: 6, resamples: 500 }))
    const ci = bootstrapMeanCi(xs, { seed: 5 })
    expect(ci.lo).toBeLessThan(3.5)
    expect(ci.hi).toBeGreaterThan(3.5)
    // Never outside the range of the data.
    expect(ci.lo).toBeGreaterThanOrEqual(1)
    expect(ci.hi).toBeLessThanOrEqual(6)
    expect(() => bootstrapMeanCi([], { seed: 1 })).toThrow(RangeError)
  })
})

describe('pairedSummary', () => {
  it('pairs by seed and counts the sides', () => {
    const method = new Map([
      [1, 3.0],
      [2, 2.9],
      [3, 3.2],
      [4, 3.0],
    ])
    const baseline = new Map([
      [2, 3.0],
      [3, 3.1],
      [4, 3.0],
      [5, 9.9],
    ])
    const got = pairedSummary(method, baseline, { seed: 3, resamples: 500 })
    expect(got.seeds).toEqual([2, 3, 4])
    expect(got.diffs.length).toBe(3)
    expectClose(got.diffs[0]!, -0.1, { rel: 1e-12, scale: 3 })
    expectClose(got.diffs[1]!, 0.1, { rel: 1e-12, scale: 3 })
    expect(got.diffs[2]).toBe(0)
    expect([got.lower, got.higher]).toEqual([1, 1])
    expectClose(got.meanDiff, 0, { rel: 1e-12, scale: 3 })
    expect(got.wilcoxon.n).toBe(2)
    expect(() => pairedSummary(new Map([[1, 1]]), new Map([[2, 1]]), { seed: 1 })).toThrow(RangeError)
  })
})
