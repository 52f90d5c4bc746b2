/**
 * Statistics of the quality study (bench/quality-study.ts): paired differences over seeds, their percentile bootstrap
 * interval, the Wilcoxon signed-rank test and a robust outlier rule. Plain numbers in, plain numbers out.
 */
import { Rng } from '../src/math/rng.ts'
import { mean, quantile, quantiles } from '../src/math/stats.ts'

export { mean }

/** Sample standard deviation (n − 1 in the denominator); 0 for fewer than two values. */
export function sd(xs: readonly number[]): number {
  if (xs.length < 2) return 0
  const m = mean(xs)
  let s = 0
  for (const x of xs) s += (x - m) ** 2
  return Math.sqrt(s / (xs.length - 1))
}

export const median = (xs: readonly number[]): number => quantile(xs, 0.5)

/** 1 / Φ⁻¹(3/4): scales the median absolute deviation to estimate σ for normal data. */
export const MAD_TO_SD = 1.482602218505602

/** Median absolute deviation from the median, scaled by MAD_TO_SD (so it is comparable with an sd). */
export function mad(xs: readonly number[]): number {
  const m = median(xs)
  return MAD_TO_SD * median(xs.map((x) => Math.abs(x - m)))
}

/**
 * Positions of the values farther than k scaled MADs from the median. With a MAD of 0 (most values equal) any value
 * off the median is flagged. Fewer than three values: none (a median of two says nothing about either).
 */
export function madOutliers(xs: readonly number[], k = 3): number[] {
  if (xs.length < 3) return []
  const m = median(xs)
  const s = mad(xs)
  const out: number[] = []
  xs.forEach((x, i) => {
    if (Math.abs(x - m) > k * s) out.push(i)
  })
  return out
}

export interface Interval {
  readonly lo: number
  readonly hi: number
}

export interface BootstrapOptions {
  /** Resamples (default 10 000). */
  readonly resamples?: number
  /** Coverage (default 0.95). */
  readonly level?: number
  /** Seed of the resampling stream (src/math/rng.ts). */
  readonly seed: number
}

/**
 * Percentile bootstrap interval of the mean: `resamples` means of n draws with replacement (index = rng.int(n), in
 * that order), and their (1 − level)/2 and (1 + level)/2 quantiles, linearly interpolated (src/math/stats.ts).
 */
export function bootstrapMeanCi(xs: readonly number[], opts: BootstrapOptions): Interval {
  const n = xs.length
  if (n === 0) throw new RangeError('bootstrap of an empty sample')
  const b = opts.resamples ?? 10_000
  const level = opts.level ?? 0.95
  const rng = new Rng(opts.seed)
  const means = new Float64Array(b)
  for (let r = 0; r < b; r++) {
    let s = 0
    for (let i = 0; i < n; i++) s += xs[rng.int(n)]!
    means[r] = s / n
  }
  const q = quantiles(means, [(1 - level) / 2, (1 + level) / 2])
  return { lo: q[0]!, hi: q[1]! }
}

/** Average ranks (1-based) of the values, ties sharing the mean of their positions. */
export function averageRanks(xs: readonly number[]): number[] {
  const order = xs.map((_, i) => i).sort((a, b) => xs[a]! - xs[b]!)
  const ranks = new Array<number>(xs.length)
  for (let i = 0; i < order.length; ) {
    let j = i
    while (j + 1 < order.length && xs[order[j + 1]!] === xs[order[i]!]) j++
    for (let t = i; t <= j; t++) ranks[order[t]!] = (i + j) / 2 + 1
    i = j + 1
  }
  return ranks
}

export interface Wilcoxon {
  /** Non-zero differences (zeros are dropped, Wilcoxon's own rule). */
  readonly n: number
  /** Sum of the ranks of |d| over the positive differences. */
  readonly wPlus: number
  /** Two-sided p-value. */
  readonly p: number
  /** true: the exact null distribution (n ≤ EXACT_MAX); false: the normal approximation. */
  readonly exact: boolean
}

/** Largest n given an exact p: 2^20 sign patterns are counted by the subset-sum table below in microseconds. */
export const WILCOXON_EXACT_MAX = 20

/**
 * Wilcoxon signed-rank test of H0 "the differences are symmetric about 0", two-sided. Zeros are dropped; tied |d| get
 * average ranks. For n ≤ 20 the p-value is exact: the null distribution of W+ over the 2^n equally likely sign patterns
 * of these ranks (ties included, ranks doubled to integers), counted by a subset-sum table; p = min(1, 2 · the smaller
 * tail, each tail including W+ itself). Above that, the normal approximation with the tie correction of the variance
 * and a continuity correction of 0.5.
 */
export function wilcoxonSignedRank(diffs: readonly number[]): Wilcoxon {
  const d = diffs.filter((x) => x !== 0)
  const n = d.length
  if (n === 0) return { n, wPlus: 0, p: 1, exact: true }
  const ranks = averageRanks(d.map(Math.abs))
  let wPlus = 0
  d.forEach((x, i) => {
    if (x > 0) wPlus += ranks[i]!
  })
  if (n <= WILCOXON_EXACT_MAX) {
    // Average ranks are multiples of 1/2: doubled, they index an integer table of sign-pattern counts per sum.
    const doubled = ranks.map((r) => Math.round(2 * r))
    const total = doubled.reduce((a, b) => a + b, 0)
    let counts = new Float64Array(total + 1)
    counts[0] = 1
    for (const r of doubled) {
      const next = Float64Array.from(counts)
      for (let s = r; s <= total; s++) next[s] = next[s]! + counts[s - r]!
      counts = next
    }
    const w = Math.round(2 * wPlus)
    let below = 0
    let above = 0
    for (let s = 0; s <= total; s++) {
      if (s <= w) below += counts[s]!
      if (s >= w) above += counts[s]!
    }
    const patterns = 2 ** n
    return { n, wPlus, p: Math.min(1, (2 * Math.min(below, above)) / patterns), exact: true }
  }
  const mu = (n * (n + 1)) / 4
  const tieSizes = new Map<number, number>()
  for (const r of ranks) tieSizes.set(r, (tieSizes.get(r) ?? 0) + 1)
  let tieTerm = 0
  for (const t of tieSizes.values()) tieTerm += t ** 3 - t
  const sigma = Math.sqrt((n * (n + 1) * (2 * n + 1)) / 24 - tieTerm / 48)
  const z = Math.max(0, Math.abs(wPlus - mu) - 0.5) / sigma
  return { n, wPlus, p: Math.min(1, 2 * normalUpperTail(z)), exact: false }
}

/**
 * P(Z > z) for a standard normal, z ≥ 0: erfc(z/√2)/2 with erfc from a Chebyshev-fitted approximation (Numerical
 * Recipes' erfcc, fractional error below 1.2e-7 everywhere), plenty for a p-value.
 */
export function normalUpperTail(z: number): number {
  const x = z / Math.SQRT2
  const t = 1 / (1 + 0.5 * x)
  const poly =
    -x * x -
    1.26551223 +
    t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
  return (t * Math.exp(poly)) / 2
}

export interface PairedSummary {
  /** Seeds present in both series, ascending. */
  readonly seeds: number[]
  /** method − baseline at each of those seeds. */
  readonly diffs: number[]
  readonly meanDiff: number
  readonly sdDiff: number
  readonly ci: Interval
  readonly wilcoxon: Wilcoxon
  /** Seeds where the method's value is lower / higher than the baseline's. */
  readonly lower: number
  readonly higher: number
}

/** The paired comparison of two per-seed series (lower is better, as for a loss). */
export function pairedSummary(method: ReadonlyMap<number, number>, baseline: ReadonlyMap<number, number>, boot: BootstrapOptions): PairedSummary {
  const seeds = [...method.keys()].filter((s) => baseline.has(s)).sort((a, b) => a - b)
  if (seeds.length === 0) throw new RangeError('no seed in common')
  const diffs = seeds.map((s) => method.get(s)! - baseline.get(s)!)
  return {
    seeds,
    diffs,
    meanDiff: mean(diffs),
    sdDiff: sd(diffs),
    ci: bootstrapMeanCi(diffs, boot),
    wilcoxon: wilcoxonSignedRank(diffs),
    lower: diffs.filter((x) => x < 0).length,
    higher: diffs.filter((x) => x > 0).length,
  }
}
