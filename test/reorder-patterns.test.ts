/**
 * The seven ordering patterns of dynamic_reorder (docs/algorithms.md#reordering-patterns): fixed vectors with
 * positions 0..n−1 scored by their own value, then every pattern against an independent reference written here in
 * plain loops from the definitions, on random inputs with ties, for every param and every direction; then the
 * properties (a permutation, deterministic per seed, the window shuffle stays inside its windows) and the errors.
 */
import { describe, expect, it } from 'vitest'
import type { Scores } from '../src/strategies/types.ts'
import { paramsInfo } from '../src/strategies/params.ts'
import { ReorderError } from '../src/strategies/reorders/common.ts'
import {
  OrderingParams,
  PATTERN_NAMES,
  PATTERN_PARAMS,
  applyPattern,
  assertPermutation,
  effectiveAscending,
  folding,
  saw,
  segment,
  shuffle,
  sorting,
  stair,
  windowShuffle,
  zigzag,
  type ApplyPatternParams,
} from '../src/strategies/reorders/patterns.ts'

// ───────────────────────────── fixtures ─────────────────────────────

/** Test data comes from a tiny LCG, not from the Rng the code uses. */
function lcg(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 4294967296
  }
}

function range(start: number, end: number): number[] {
  const out: number[] = []
  for (let i = start; i < end; i++) out.push(i)
  return out
}

/** Positions 0..n−1, each scored by its own value: the sorted stream is 0..n−1 itself. */
function identityRun(name: string, n: number, patternParams: Record<string, unknown> = {}, ordering: ApplyPatternParams = {}): number[] {
  const p = Int32Array.from(range(0, n))
  return Array.from(applyPattern(name, p, Float64Array.from(p), { ...ordering, pattern_params: patternParams }))
}

/** The entries in numeric order: two lists hold the same positions as often iff their multisets are equal. */
function multiset(values: ArrayLike<number>): number[] {
  return Array.from(values).sort((a, b) => a - b)
}

interface Input {
  label: string
  positions: Int32Array
  scores: Scores
}

/**
 * Random inputs: distinct positions in a random order (one set with repeated positions), scores with many ties
 * (a few integer levels) or without, float64 or float32.
 */
function inputs(): Input[] {
  const out: Input[] = []
  for (const n of [0, 1, 2, 3, 7, 10, 13, 20, 33]) {
    for (const [variant, seed] of [['ties', 1], ['distinct', 2], ['float32', 3], ['repeats', 4]] as const) {
      const r = lcg(1000 * n + seed)
      const positions = new Int32Array(n)
      for (let i = 0; i < n; i++) positions[i] = variant === 'repeats' ? Math.floor(r() * 4) : 100 + i
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(r() * (i + 1))
        const t = positions[i]!
        positions[i] = positions[j]!
        positions[j] = t
      }
      const values = range(0, n).map(() => (variant === 'distinct' || variant === 'float32' ? r() * 10 - 5 : Math.floor(r() * 3)))
      const scores = variant === 'float32' ? Float32Array.from(values) : Float64Array.from(values)
      out.push({ label: `n=${n} ${variant}`, positions, scores })
    }
  }
  return out
}
const INPUTS = inputs()

/** Every direction setting, with the stream's start written out from the polarity table of the docs. */
const DIRECTIONS: { polarity: string; ascending: boolean; lowFirst: boolean }[] = [
  { polarity: 'higher_later', ascending: true, lowFirst: true },
  { polarity: 'higher_later', ascending: false, lowFirst: false },
  { polarity: 'higher_earlier', ascending: true, lowFirst: false },
  { polarity: 'higher_earlier', ascending: false, lowFirst: true },
  { polarity: 'higher_is_better', ascending: true, lowFirst: true },
  { polarity: 'higher_is_better', ascending: false, lowFirst: false },
  { polarity: 'lower_is_better', ascending: true, lowFirst: false },
  { polarity: 'lower_is_better', ascending: false, lowFirst: true },
]

// ───────────────────────────── references, in plain loops ─────────────────────────────

/**
 * Positions by score: lowest first when `lowFirst`, else highest first; equal scores keep their input order; NaN
 * counts as the far end of the axis (+∞ going up, −∞ going down). An insertion sort.
 */
function refSorted(positions: Int32Array, scores: Scores, lowFirst: boolean): number[] {
  const key = (i: number): number => {
    const v = scores[i]!
    return Number.isNaN(v) ? (lowFirst ? Infinity : -Infinity) : v
  }
  const idx: number[] = []
  for (let i = 0; i < positions.length; i++) {
    let at = idx.length
    // i goes after every earlier index whose key is not strictly behind its own.
    while (at > 0 && (lowFirst ? key(idx[at - 1]!) > key(i) : key(idx[at - 1]!) < key(i))) at--
    idx.splice(at, 0, i)
  }
  return idx.map((i) => positions[i]!)
}

/** Cycle ℓ = sorted[ℓ], sorted[ℓ+L], …; with zig the odd cycles are reversed; the cycles one after the other. */
function refFold(sorted: number[], layers: number, zig: boolean): number[] {
  const out: number[] = []
  for (let l = 0; l < layers; l++) {
    const cycle: number[] = []
    for (let i = l; i < sorted.length; i += layers) cycle.push(sorted[i]!)
    if (zig && l % 2 === 1) cycle.reverse()
    out.push(...cycle)
  }
  return out
}

/** Round half to even, as Python's round(). */
function pyRound(x: number): number {
  const r = Math.round(x) // halves go up here
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r
}

/** Sorting with the fold inside [p_j − r, p_j + r) around each cut p_j = round(n·j/S), r = round(n·ρ). */
function refCross(sorted: number[], sections: number, ratio: number, layers: number, zig: boolean): number[] {
  const n = sorted.length
  if (n === 0 || sections === 1 || ratio === 0) return [...sorted]
  const r = pyRound(n * ratio)
  const out: number[] = []
  let cursor = 0
  for (let j = 1; j < sections; j++) {
    const p = pyRound((n * j) / sections)
    const a = Math.max(cursor, p - r)
    const z = Math.min(n, p + r)
    for (let i = cursor; i < a; i++) out.push(sorted[i]!)
    out.push(...refFold(sorted.slice(a, z), layers, zig))
    cursor = z
  }
  for (let i = cursor; i < n; i++) out.push(sorted[i]!)
  return out
}

/** ⌊a / 100⌋ for a ≥ 0, counted up. */
function hundreds(a: number): number {
  let k = 0
  while (100 * (k + 1) <= a) k++
  return k
}

/** Segment sizes: ⌊n·x/100⌋ and ⌊n·y/100⌋, scaled to fill n (front truncated, back the rest) when they exceed it. */
function refSegmentSizes(n: number, x: number, y: number): [number, number] {
  let front = hundreds(n * x)
  let back = hundreds(n * y)
  if (front + back > n) {
    front = Math.trunc(front * (n / (front + back)))
    back = n - front
  }
  return [front, back]
}

// ───────────────────────────── the vectors ─────────────────────────────

describe('vectors (positions 0..n−1, score = position)', () => {
  it('sorting', () => {
    expect(identityRun('sorting', 10)).toEqual(range(0, 10))
    expect(identityRun('sorting', 10, {}, { ascending: false })).toEqual(range(0, 10).reverse())
  })

  it('folding and zigzag', () => {
    expect(identityRun('folding', 10, { layers: 3 })).toEqual([0, 3, 6, 9, 1, 4, 7, 2, 5, 8])
    expect(identityRun('folding', 10)).toEqual([0, 5, 1, 6, 2, 7, 3, 8, 4, 9])
    expect(identityRun('zigzag', 10, { layers: 3 })).toEqual([0, 3, 6, 9, 7, 4, 1, 2, 5, 8])
  })

  it('stair and saw, with Python rounding of the radius', () => {
    // r = round(4.5) = 4: the window is [6, 14).
    expect(identityRun('stair', 20, { num_sections: 2, folding_ratio: 0.225, layers: 3 })).toEqual([
      ...range(0, 6), 6, 9, 12, 7, 10, 13, 8, 11, ...range(14, 20),
    ])
    // p = [7, 13], r = 2.
    expect(identityRun('saw', 20, { num_sections: 3, folding_ratio: 0.075, layers: 2 })).toEqual([
      ...range(0, 5), 5, 7, 8, 6, 9, 10, 11, 13, 14, 12, ...range(15, 20),
    ])
    // r = round(1.5) = 2.
    expect(identityRun('saw', 10, { num_sections: 2, folding_ratio: 0.15, layers: 2 })).toEqual([0, 1, 2, 3, 5, 6, 4, 7, 8, 9])
    // r = round(0.5) = 0: empty windows.
    expect(identityRun('stair', 10, { num_sections: 4, folding_ratio: 0.05 })).toEqual(range(0, 10))
    // No folding_ratio: plain sorting.
    expect(identityRun('saw', 20, { num_sections: 3 })).toEqual(range(0, 20))
  })

  it('overlapping stair/saw windows are an error', () => {
    expect(() => identityRun('saw', 20, { num_sections: 3, folding_ratio: 0.2 })).toThrow(
      /saw: bad pattern_params\.folding_ratio: the transition windows overlap: 2·folding_ratio = 0\.4 must be below 1\/num_sections = 0\.333/,
    )
    // Even with nothing to order, and for stair alike; one section has no windows to overlap.
    expect(() => identityRun('stair', 0, { num_sections: 2, folding_ratio: 0.25 })).toThrow(/overlap/)
    expect(identityRun('stair', 10, { num_sections: 1, folding_ratio: 0.9 })).toEqual(range(0, 10))
  })

  it('segment: the boundary tails by score, each segment shuffled (our draws, not Python’s)', () => {
    const out = identityRun('segment', 20)
    expect(multiset(out.slice(0, 2))).toEqual([0, 1])
    expect(multiset(out.slice(2, 18))).toEqual(range(2, 18))
    expect(multiset(out.slice(18))).toEqual([18, 19])
    expect(out.slice(2, 18)).not.toEqual(range(2, 18))
    const high = identityRun('segment', 20, { front_is_high: true, back_is_high: true })
    expect(multiset([...high.slice(0, 2), ...high.slice(18)])).toEqual([16, 17, 18, 19])
    expect(multiset(high.slice(2, 18))).toEqual(range(0, 16))
  })

  it('shuffle: a permutation, the same for the same seed (our draws, not Python’s)', () => {
    const out = identityRun('shuffle', 10)
    expect(multiset(out)).toEqual(range(0, 10))
    expect(out).not.toEqual(range(0, 10))
    expect(identityRun('shuffle', 10)).toEqual(out)
  })

  it('window shuffle after sorting: each window of 4 keeps its own positions', () => {
    const out = identityRun('sorting', 12, {}, { window_size: 4 })
    expect(out).not.toEqual(range(0, 12))
    for (let w = 0; w < 3; w++) expect(multiset(out.slice(4 * w, 4 * w + 4))).toEqual(range(4 * w, 4 * w + 4))
  })

  it('ties keep their input order in both directions', () => {
    const p = Int32Array.from(range(0, 5))
    const s = Float64Array.from([1, 0, 1, 0, 1])
    expect(Array.from(applyPattern('sorting', p, s))).toEqual([1, 3, 0, 2, 4])
    // The Python DataFlex gives [4, 2, 0, 3, 1] here (the ascending order reversed); data-efficacy gives this.
    expect(Array.from(applyPattern('sorting', p, s, { ascending: false }))).toEqual([0, 2, 4, 1, 3])
  })

  it('the polarity table: which end of the raw scores the stream starts with', () => {
    for (const d of DIRECTIONS) {
      const first = identityRun('sorting', 5, {}, { polarity: d.polarity as ApplyPatternParams['polarity'], ascending: d.ascending })[0]
      expect(first, `${d.polarity} ascending=${d.ascending}`).toBe(d.lowFirst ? 0 : 4)
    }
    expect(effectiveAscending('higher_later', true)).toBe(true)
    expect(effectiveAscending('higher_earlier', true)).toBe(false)
    expect(effectiveAscending('higher_earlier', false)).toBe(true)
    expect(effectiveAscending('higher_later', false)).toBe(false)
  })

  it('NaN scores go to the end of the stream in both directions, level with the infinity there', () => {
    const p = Int32Array.from(range(0, 6))
    const s = Float64Array.from([2, NaN, -Infinity, 1, Infinity, NaN])
    expect(Array.from(applyPattern('sorting', p, s))).toEqual([2, 3, 0, 1, 4, 5])
    expect(Array.from(applyPattern('sorting', p, s, { ascending: false }))).toEqual([4, 0, 3, 1, 2, 5])
    expect(Array.from(applyPattern('sorting', p, s, { ascending: false }))).toEqual(refSorted(p, s, false))
    expect(Array.from(applyPattern('sorting', p, s))).toEqual(refSorted(p, s, true))
  })
})

// ───────────────────────────── against the references ─────────────────────────────

const FOLD_LAYERS = [1, 2, 3, 4, 5, 8, 40]
const SECTIONS = [1, 2, 3, 4, 7]
const RATIOS = [0, 0.03, 0.05, 0.075, 0.1, 0.15, 0.225, 0.3, 0.45]
const CROSS_LAYERS = [1, 2, 3, 5]
const PERCENTS = [0, 10, 12.5, 33.3, 50, 70, 100]

function dir(d: (typeof DIRECTIONS)[number]): ApplyPatternParams {
  return { polarity: d.polarity as ApplyPatternParams['polarity'], ascending: d.ascending }
}

describe('each pattern against its reference, every input, param and direction', () => {
  it('sorting', () => {
    for (const x of INPUTS) {
      for (const d of DIRECTIONS) {
        const want = refSorted(x.positions, x.scores, d.lowFirst)
        expect(Array.from(applyPattern('sorting', x.positions, x.scores, dir(d))), `${x.label} ${d.polarity}/${d.ascending}`).toEqual(want)
        expect(Array.from(sorting(x.positions, x.scores, { ascending: d.lowFirst }))).toEqual(want)
      }
    }
  })

  it('folding and zigzag', () => {
    for (const x of INPUTS) {
      for (const d of DIRECTIONS) {
        const sorted = refSorted(x.positions, x.scores, d.lowFirst)
        for (const layers of FOLD_LAYERS) {
          const what = `${x.label} ${d.polarity}/${d.ascending} L=${layers}`
          const fold = refFold(sorted, layers, false)
          const zig = refFold(sorted, layers, true)
          expect(Array.from(applyPattern('folding', x.positions, x.scores, { ...dir(d), pattern_params: { layers } })), what).toEqual(fold)
          expect(Array.from(applyPattern('zigzag', x.positions, x.scores, { ...dir(d), pattern_params: { layers } })), what).toEqual(zig)
          expect(Array.from(folding(x.positions, x.scores, { ascending: d.lowFirst, layers })), what).toEqual(fold)
          expect(Array.from(zigzag(x.positions, x.scores, { ascending: d.lowFirst, layers })), what).toEqual(zig)
        }
        // Default L = 5.
        expect(Array.from(applyPattern('folding', x.positions, x.scores, dir(d)))).toEqual(refFold(sorted, 5, false))
        expect(Array.from(applyPattern('zigzag', x.positions, x.scores, dir(d)))).toEqual(refFold(sorted, 5, true))
      }
    }
  })

  it('stair and saw', () => {
    let overlapping = 0
    for (const x of INPUTS) {
      for (const d of DIRECTIONS) {
        const sorted = refSorted(x.positions, x.scores, d.lowFirst)
        for (const sections of SECTIONS) {
          for (const ratio of RATIOS) {
            for (const layers of CROSS_LAYERS) {
              const pp = { num_sections: sections, folding_ratio: ratio, layers }
              const what = `${x.label} ${d.polarity}/${d.ascending} S=${sections} rho=${ratio} L=${layers}`
              if (sections > 1 && ratio > 0 && 2 * ratio >= 1 / sections) {
                overlapping++
                expect(() => applyPattern('saw', x.positions, x.scores, { ...dir(d), pattern_params: pp }), what).toThrow(/overlap/)
                continue
              }
              const str = refCross(sorted, sections, ratio, layers, false)
              const sw = refCross(sorted, sections, ratio, layers, true)
              expect(Array.from(applyPattern('stair', x.positions, x.scores, { ...dir(d), pattern_params: pp })), what).toEqual(str)
              expect(Array.from(applyPattern('saw', x.positions, x.scores, { ...dir(d), pattern_params: pp })), what).toEqual(sw)
              expect(Array.from(stair(x.positions, x.scores, { ...pp, ascending: d.lowFirst })), what).toEqual(str)
              expect(Array.from(saw(x.positions, x.scores, { ...pp, ascending: d.lowFirst })), what).toEqual(sw)
            }
          }
        }
        // Defaults: S = 2, ρ = 0 (plain sorting), L = 2.
        expect(Array.from(applyPattern('saw', x.positions, x.scores, dir(d)))).toEqual(sorted)
        expect(Array.from(applyPattern('stair', x.positions, x.scores, { ...dir(d), pattern_params: { folding_ratio: 0.2 } }))).toEqual(
          refCross(sorted, 2, 0.2, 2, false),
        )
      }
    }
    expect(overlapping).toBeGreaterThan(0)
  })

  it('segment: sizes and membership of front, middle and back', () => {
    for (const x of INPUTS) {
      const n = x.positions.length
      for (const d of DIRECTIONS) {
        const sorted = refSorted(x.positions, x.scores, d.lowFirst)
        for (const xPct of PERCENTS) {
          for (const yPct of PERCENTS) {
            for (const frontHigh of [false, true]) {
              for (const backHigh of [false, true]) {
                const pp = { x_pct: xPct, y_pct: yPct, front_is_high: frontHigh, back_is_high: backHigh }
                const what = `${x.label} ${d.polarity}/${d.ascending} ${JSON.stringify(pp)}`
                const out = Array.from(applyPattern('segment', x.positions, x.scores, { ...dir(d), pattern_params: pp }))
                const [front, back] = refSegmentSizes(n, xPct, yPct)
                // "High" is the end of the sorted stream, "low" its start.
                let wantMiddle: number[]
                if (frontHigh === backHigh) {
                  // Both segments from one end: together they hold that end's front + back positions.
                  const k = front + back
                  const taken = frontHigh ? sorted.slice(n - k) : sorted.slice(0, k)
                  wantMiddle = frontHigh ? sorted.slice(0, n - k) : sorted.slice(k)
                  expect(multiset([...out.slice(0, front), ...out.slice(n - back)]), what).toEqual(multiset(taken))
                } else {
                  const wantFront = frontHigh ? sorted.slice(n - front) : sorted.slice(0, front)
                  const wantBack = backHigh ? sorted.slice(n - back) : sorted.slice(0, back)
                  wantMiddle = frontHigh ? sorted.slice(back, n - front) : sorted.slice(front, n - back)
                  expect(multiset(out.slice(0, front)), what).toEqual(multiset(wantFront))
                  expect(multiset(out.slice(n - back)), what).toEqual(multiset(wantBack))
                }
                expect(multiset(out.slice(front, n - back)), what).toEqual(multiset(wantMiddle))
              }
            }
          }
        }
      }
    }
  })

  it('segment and shuffle return permutations; a shuffle ignores scores and direction', () => {
    for (const x of INPUTS) {
      const seg = segment(x.positions, x.scores, { ascending: true, seed: 7, x_pct: 10, y_pct: 10, front_is_high: false, back_is_high: true })
      expect(multiset(seg), x.label).toEqual(multiset(x.positions))
      const sh = shuffle(x.positions, undefined, { seed: 7 })
      expect(multiset(sh), x.label).toEqual(multiset(x.positions))
      // Scores, polarity and direction do not change a shuffle.
      expect(Array.from(applyPattern('shuffle', x.positions, x.scores, { polarity: 'higher_earlier', ascending: false, seed: 7 }))).toEqual(Array.from(sh))
    }
  })
})

// ───────────────────────────── properties ─────────────────────────────

describe('properties', () => {
  const everyPattern = (x: Input, extra: ApplyPatternParams): Int32Array[] =>
    PATTERN_NAMES.map((name) => {
      const cross = name === 'stair' || name === 'saw'
      const pp = cross ? { num_sections: 3, folding_ratio: 0.1, layers: 3 } : name === 'folding' || name === 'zigzag' ? { layers: 3 } : {}
      return applyPattern(name, x.positions, x.scores, { ...extra, pattern_params: pp })
    })

  it('every pattern, with and without windows, returns a permutation (a multiset one with repeated positions)', () => {
    for (const x of INPUTS) {
      for (const window_size of [0, 1, 2, 3, 8, 50]) {
        for (const out of everyPattern(x, { window_size })) expect(multiset(out), x.label).toEqual(multiset(x.positions))
      }
    }
  })

  it('is deterministic for a seed, and the seed changes the random patterns', () => {
    const r = lcg(99)
    const n = 64
    const x: Input = { label: 'n=64', positions: Int32Array.from(range(0, n)), scores: Float64Array.from(range(0, n), () => Math.floor(r() * 5)) }
    for (const window_size of [0, 6]) {
      const a = everyPattern(x, { seed: 5, window_size })
      const b = everyPattern(x, { seed: 5, window_size })
      expect(a.map((o) => Array.from(o))).toEqual(b.map((o) => Array.from(o)))
    }
    const bySeed = (name: string, seed: number, window_size = 0): number[] => Array.from(applyPattern(name, x.positions, x.scores, { seed, window_size }))
    expect(bySeed('shuffle', 1)).not.toEqual(bySeed('shuffle', 2))
    expect(bySeed('segment', 1)).not.toEqual(bySeed('segment', 2))
    expect(bySeed('sorting', 1, 8)).not.toEqual(bySeed('sorting', 2, 8))
    // The seed is the only randomness: deterministic patterns ignore it without windows.
    expect(bySeed('folding', 1)).toEqual(bySeed('folding', 2))
  })

  it('the window shuffle only permutes inside consecutive windows, the last one possibly shorter', () => {
    for (const x of INPUTS) {
      const n = x.positions.length
      for (const name of PATTERN_NAMES) {
        const plain = Array.from(applyPattern(name, x.positions, x.scores, { seed: 3 }))
        for (const w of [2, 3, 5, 8, n, n + 4]) {
          if (w <= 1) continue
          const jit = Array.from(applyPattern(name, x.positions, x.scores, { seed: 3, window_size: w }))
          for (let start = 0; start < n; start += w) {
            expect(multiset(jit.slice(start, start + w)), `${x.label} ${name} w=${w} at ${start}`).toEqual(multiset(plain.slice(start, start + w)))
          }
        }
      }
    }
    // Windows of 0 or 1 change nothing and still return a copy.
    const p = Int32Array.from([5, 3, 9])
    for (const w of [0, 1]) {
      const out = windowShuffle(p, w, 42)
      expect(Array.from(out)).toEqual([5, 3, 9])
      expect(out).not.toBe(p)
    }
    // A large window over a long list does move things.
    const long = Int32Array.from(range(0, 100))
    expect(Array.from(windowShuffle(long, 10, 42))).not.toEqual(range(0, 100))
  })

  it('leaves its inputs untouched', () => {
    const x = INPUTS.find((i) => i.label === 'n=20 ties')!
    const p = x.positions.slice()
    const s = x.scores.slice()
    everyPattern(x, { window_size: 4 })
    expect(Array.from(x.positions)).toEqual(Array.from(p))
    expect(Array.from(x.scores)).toEqual(Array.from(s))
  })

  it('an empty list comes back empty, with or without scores', () => {
    for (const name of PATTERN_NAMES) {
      expect(applyPattern(name, new Int32Array(0), undefined).length).toBe(0)
      expect(applyPattern(name, new Int32Array(0), new Float64Array(0), { window_size: 4 }).length).toBe(0)
    }
  })
})

// ───────────────────────────── errors ─────────────────────────────

function reorderError(f: () => unknown): ReorderError {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(ReorderError)
    return e as ReorderError
  }
  throw new Error('expected a ReorderError')
}

describe('errors', () => {
  const p = Int32Array.from([0, 1, 2])
  const s = Float64Array.from([3, 1, 2])

  it('an unknown pattern names the patterns and the likely one', () => {
    const e = reorderError(() => applyPattern('sortin', p, s))
    expect(e.code).toBe('unknown_pattern')
    expect(e.message).toBe(
      "sortin: unknown ordering pattern (did you mean 'sorting'?); the patterns are shuffle, sorting, folding, zigzag, segment, stair, saw",
    )
    expect(reorderError(() => applyPattern('random', p, s)).message).not.toMatch(/did you mean/)
  })

  it('missing scores: only shuffle runs without them', () => {
    for (const name of PATTERN_NAMES.filter((n) => n !== 'shuffle')) {
      const e = reorderError(() => applyPattern(name, p, undefined))
      expect(e.code).toBe('bad_input')
      expect(e.message).toBe(`${name}: this pattern orders by score and needs one score per position; got none (only shuffle runs without scores)`)
    }
    expect(multiset(applyPattern('shuffle', p, undefined))).toEqual([0, 1, 2])
    expect(() => folding(p, undefined, { ascending: true, layers: 2 })).toThrow(/needs one score per position/)
  })

  it('scores and positions of different lengths', () => {
    for (const name of PATTERN_NAMES) {
      const e = reorderError(() => applyPattern(name, p, Float32Array.from([1, 2])))
      expect(e.code).toBe('bad_input')
      expect(e.message).toBe(`${name}: 2 scores for 3 positions; give one score per position`)
    }
    expect(() => applyPattern('sorting', new Int32Array(0), Float64Array.from([1]))).toThrow(/1 scores for 0 positions/)
    expect(() => stair(p, Float64Array.from([1]), { ascending: true, num_sections: 2, folding_ratio: 0.1, layers: 2 })).toThrow(/1 scores for 3 positions/)
  })

  it('bad params name the key', () => {
    const bad = (name: string, params: ApplyPatternParams): string => {
      const e = reorderError(() => applyPattern(name, p, s, params))
      expect(e.code).toBe('bad_params')
      return e.message
    }
    expect(bad('folding', { pattern_params: { layers: 0 } })).toMatch(/^folding: bad pattern_params\.layers: /)
    expect(bad('zigzag', { pattern_params: { zigzag_layer: 2.5 } })).toMatch(/^zigzag: bad pattern_params\.zigzag_layer: /)
    expect(bad('stair', { pattern_params: { num_sections: 0 } })).toMatch(/^stair: bad pattern_params\.num_sections: /)
    expect(bad('saw', { pattern_params: { folding_ratio: -0.1 } })).toMatch(/^saw: bad pattern_params\.folding_ratio: /)
    expect(bad('segment', { pattern_params: { x_pct: 150 } })).toMatch(/^segment: bad pattern_params\.x_pct: /)
    expect(bad('folding', { pattern_params: { layer: 3 } })).toMatch(/^folding: bad pattern_params: .*"layer"/)
    expect(bad('sorting', { pattern_params: { layers: 3 } })).toMatch(/^sorting: bad pattern_params: .*"layers"/)
    expect(bad('sorting', { polarity: 'lower_later' as ApplyPatternParams['polarity'] })).toMatch(/^sorting: bad polarity: /)
    expect(bad('sorting', { window_size: -1 })).toMatch(/^sorting: bad window_size: /)
    expect(bad('sorting', { seed: 1.5 })).toMatch(/^sorting: bad seed: /)
    expect(bad('sorting', { order: 1 } as unknown as ApplyPatternParams)).toMatch(/^sorting: bad params: .*"order"/)
  })

  it('assertPermutation checks lengths and multisets', () => {
    const a = Int32Array.from([4, 4, 7])
    assertPermutation('custom', a, Int32Array.from([7, 4, 4]))
    const short = reorderError(() => assertPermutation('custom', a, Int32Array.from([4, 7])))
    expect(short.code).toBe('not_a_permutation')
    expect(short.message).toBe('custom: the order has 2 entries for 3 positions')
    const other = reorderError(() => assertPermutation('custom', a, Int32Array.from([4, 7, 7])))
    expect(other.message).toBe('custom: the order is not a permutation of the positions (first difference at sorted entry 1: 7 vs 4)')
  })
})

// ───────────────────────────── params schemas ─────────────────────────────

describe('params schemas', () => {
  it('every key is documented and the keys are what the presets write', () => {
    const keys: Record<string, string[]> = {
      shuffle: [],
      sorting: [],
      folding: ['layers', 'folding_layer', 'zigzag_layer'],
      zigzag: ['layers', 'folding_layer', 'zigzag_layer'],
      segment: ['x_pct', 'y_pct', 'front_is_high', 'back_is_high'],
      stair: ['num_sections', 'folding_ratio', 'layers', 'folding_layer', 'zigzag_layer'],
      saw: ['num_sections', 'folding_ratio', 'layers', 'folding_layer', 'zigzag_layer'],
    }
    for (const name of PATTERN_NAMES) {
      const info = paramsInfo(PATTERN_PARAMS[name])
      expect(info.known, name).toEqual(keys[name])
      for (const [k, prop] of Object.entries(info.properties)) expect(JSON.stringify(prop), `${name}.${k}`).toMatch(/"description"/)
    }
    const ordering = paramsInfo(OrderingParams)
    expect(ordering.known).toEqual(['polarity', 'ascending', 'window_size', 'seed'])
    for (const [k, prop] of Object.entries(ordering.properties)) expect(JSON.stringify(prop), k).toMatch(/"description"/)
  })

  it('defaults, and the shipped presets', () => {
    expect(OrderingParams.parse({})).toEqual({ polarity: 'higher_later', ascending: true, window_size: 0, seed: 42 })
    expect(OrderingParams.parse({ polarity: 'higher_is_better' }).polarity).toBe('higher_later')
    expect(OrderingParams.parse({ polarity: 'lower_is_better' }).polarity).toBe('higher_earlier')
    expect(PATTERN_PARAMS.folding.parse({})).toEqual({ layers: 5 })
    expect(PATTERN_PARAMS.zigzag.parse({})).toEqual({ layers: 5 })
    expect(PATTERN_PARAMS.stair.parse({})).toEqual({ num_sections: 2, folding_ratio: 0, layers: 2 })
    expect(PATTERN_PARAMS.segment.parse({})).toEqual({ x_pct: 10, y_pct: 10, front_is_high: false, back_is_high: true })
    expect(PATTERN_PARAMS.folding.parse({ layers: 3 })).toEqual({ layers: 3 })
    expect(PATTERN_PARAMS.stair.parse({ num_sections: 2, folding_ratio: 0.225, layers: 3 })).toEqual({ num_sections: 2, folding_ratio: 0.225, layers: 3 })
    expect(PATTERN_PARAMS.saw.parse({ num_sections: 3, folding_ratio: 0.075, layers: 2 })).toEqual({ num_sections: 3, folding_ratio: 0.075, layers: 2 })
  })

  it('layers: the first of layers, folding_layer, zigzag_layer that is set', () => {
    expect(PATTERN_PARAMS.folding.parse({ folding_layer: 4 })).toEqual({ layers: 4 })
    expect(PATTERN_PARAMS.zigzag.parse({ zigzag_layer: 6 })).toEqual({ layers: 6 })
    expect(PATTERN_PARAMS.saw.parse({ zigzag_layer: 3, folding_layer: 4 }).layers).toBe(4)
    expect(PATTERN_PARAMS.saw.parse({ layers: 2, folding_layer: 4 }).layers).toBe(2)
    expect(PATTERN_PARAMS.folding.parse({ layers: null, zigzag_layer: 3 })).toEqual({ layers: 3 })
    expect(identityRun('folding', 10, { folding_layer: 3 })).toEqual([0, 3, 6, 9, 1, 4, 7, 2, 5, 8])
  })
})
