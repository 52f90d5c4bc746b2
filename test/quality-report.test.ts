/**
 * bench/quality-report.ts on hand-made runs: which pairs are compared, the paired numbers (re-derived here in plain
 * loops), the verdict and its agreement with the expected direction, the worst domain, the outlier rule, and the
 * generated section of docs/results.md.
 */
import { describe, expect, it } from 'vitest'
import type { Family } from '../bench/quality-design.ts'
import { DOCS_BEGIN, DOCS_END, type RunResult, compare, replaceGenerated, stabilityTable, trainingStats } from '../bench/quality-report.ts'
import { expectClose } from './close.ts'

const FAMILY: Record<string, Family> = { random: 'select', loss: 'select', uniform: 'mix', stratified: 'mix', doremi: 'mix', shuffle: 'reorder', sorting: 'reorder' }

function run(method: string, seed: number, losses: Record<string, number>, data = 'demo'): RunResult {
  const sets = Object.values(losses)
  return {
    data,
    family: FAMILY[method]!,
    method,
    seed,
    model: 'tiny',
    fingerprint: 'x',
    commands: [],
    steps: 140,
    losses,
    headline: sets.reduce((a, b) => a + b, 0) / sets.length,
    wallSeconds: method === 'random' ? 10 : 20,
    started: '',
    finished: '',
    load: { before: [0, 0, 0], after: [0, 0, 0] },
    stats: {},
  }
}

const SEEDS = [60, 61, 62, 63, 64, 65]
/** A baseline near 3 with a per-seed wobble, the same at both sets' scale. */
const base = (seed: number): number => 3 + 0.05 * Math.sin(seed)

describe('compare', () => {
  it('pairs by seed and finds a consistent improvement, with its worst domain', () => {
    const runs = [
      ...SEEDS.map((s) => run('random', s, { a: base(s), b: base(s) + 0.2 })),
      // loss: a down by 0.10 + a small per-seed term, b up by 0.02: the headline falls, b is the worst domain.
      ...SEEDS.map((s) => run('loss', s, { a: base(s) - 0.1 - 0.01 * (s - 60), b: base(s) + 0.22 })),
      run('random', 99, { a: 1, b: 1 }), // no partner: left out
    ]
    const [c, ...rest] = compare(runs)
    expect(rest).toEqual([])
    expect(c!.method).toBe('loss')
    expect(c!.baseline).toBe('random')
    expect(c!.seeds).toEqual(SEEDS)
    let sum = 0
    for (const s of SEEDS) sum += (-0.1 - 0.01 * (s - 60) + 0.02) / 2
    expectClose(c!.meanDiff, sum / SEEDS.length, { rel: 1e-9, scale: 3 })
    expect(c!.ci.hi).toBeLessThan(0)
    expect(c!.detected).toBe('lower')
    expect(c!.expected).toBe('lower')
    expect(c!.agreement).toBe('as expected')
    // Exact Wilcoxon with 6 seeds all lower: 2/64.
    expectClose(c!.wilcoxon.p, 2 / 64, { rel: 1e-12 })
    expect(c!.verdict).toBe('lower held-out loss than random')
    expect(c!.worstEval).toBe('b')
    expectClose(c!.perEval.find((e) => e.eval === 'b')!.meanDiff, 0.02, { rel: 1e-9, scale: 3 })
    expect([c!.lower, c!.higher]).toEqual([6, 0])
    expect(c!.wall).toEqual({ method: 20, baseline: 10 })
    expect(c!.steps).toEqual({ method: [140], baseline: [140] })
    expect(c!.outliers).toEqual([])
  })

  it('names effects nobody expected, and gives no verdict below 5 seeds', () => {
    const runs = [...SEEDS.map((s) => run('shuffle', s, { a: base(s) })), ...SEEDS.map((s) => run('sorting', s, { a: base(s) + 0.05 + 0.001 * s }))]
    const [c] = compare(runs)
    expect(c!.expected).toBe('none')
    expect(c!.detected).toBe('higher')
    expect(c!.agreement).toBe('unexpected effect')
    const few = compare(runs.filter((r) => r.seed < 63))
    expect(few[0]!.detected).toBe('too few seeds')
    expect(few[0]!.agreement).toBe('–')
  })

  it('says when the interval clears 0 but Wilcoxon does not, and when nothing is detected', () => {
    // 5 seeds all lower: the exact p cannot go below 2/32 = 0.0625.
    const five = SEEDS.slice(0, 5)
    const runs = [...five.map((s) => run('random', s, { a: base(s) })), ...five.map((s) => run('loss', s, { a: base(s) - 0.1 }))]
    expect(compare(runs)[0]!.verdict).toBe('lower held-out loss than random (but Wilcoxon p ≥ 0.05)')
    const mixed = [...SEEDS.map((s) => run('random', s, { a: base(s) })), ...SEEDS.map((s, i) => run('loss', s, { a: base(s) + (i % 2 === 0 ? 0.1 : -0.1) }))]
    const c = compare(mixed)[0]!
    expect(c.detected).toBe('none')
    expect(c.verdict).toBe('no effect detected')
    expect(c.agreement).toBe('expected effect not detected')
  })

  it('compares a mixer with every baseline that ran, per data set', () => {
    const runs = [
      ...SEEDS.map((s) => run('uniform', s, { a: base(s) })),
      ...SEEDS.map((s) => run('doremi', s, { a: base(s) - 0.01 })),
      ...SEEDS.map((s) => run('stratified', s, { a: base(s) }, 'quality')),
      ...SEEDS.map((s) => run('doremi', s, { a: base(s) - 0.01 }, 'quality')),
    ]
    expect(compare(runs).map((c) => `${c.data}: ${c.method} − ${c.baseline}`)).toEqual(['demo: doremi − uniform', 'quality: doremi − stratified'])
  })

  it('flags the seed beyond 3 scaled MADs (the reported seed 60)', () => {
    const diffs = [0.469, -0.048, -0.09, -0.05, -0.06, -0.07]
    const runs = [...SEEDS.map((s) => run('random', s, { a: 3 })), ...SEEDS.map((s, i) => run('loss', s, { a: 3 + diffs[i]! }))]
    expect(compare(runs)[0]!.outliers.map((o) => o.seed)).toEqual([60])
  })
})

describe('replaceGenerated', () => {
  it('replaces what lies between the markers and keeps the rest', () => {
    const text = `# Title\n\nintro\n\n${DOCS_BEGIN}\nold table\n${DOCS_END}\n\nafter\n`
    expect(replaceGenerated(text, 'new table\n')).toBe(`# Title\n\nintro\n\n${DOCS_BEGIN}\n\nnew table\n\n${DOCS_END}\n\nafter\n`)
    // Idempotent on its own output.
    const once = replaceGenerated(text, 'x')
    expect(replaceGenerated(once, 'x')).toBe(once)
    expect(() => replaceGenerated('no markers', 'x')).toThrow(/markers/)
  })
})

describe('training stability', () => {
  it('trainingStats: the largest norm, the median, and the steps above 10× the median (null steps left out)', () => {
    // Median of [1, 1, 2, 3, 25, 40] is (2 + 3) / 2 = 2.5; above 25 only 40 (25 is not above).
    expect(trainingStats([1, null, 2, 25, 1, 3, 40])).toEqual({ maxGradNorm: 40, medianGradNorm: 2.5, spikes: 1 })
    expect(trainingStats([null, null])).toBeUndefined()
  })

  it("stabilityTable: per method, runs with a spike and the mean headline of those runs against the others", () => {
    const calm = { maxGradNorm: 2, medianGradNorm: 1, spikes: 0 }
    const rs = [
      { ...run('loss', 60, { a: 3.5 }), stats: { training: { maxGradNorm: 248, medianGradNorm: 1, spikes: 3 } } },
      { ...run('loss', 61, { a: 3.0 }), stats: { training: calm } },
      { ...run('loss', 62, { a: 3.2 }), stats: { training: calm } },
      { ...run('random', 60, { a: 3.1 }), stats: { training: calm } },
    ]
    const table = stabilityTable(rs)
    expect(table.find((l) => l.startsWith('| random |'))).toBe('| random | 0 of 1 | – | 3.1000 | – |')
    expect(table.find((l) => l.startsWith('| loss |'))).toBe('| loss | 1 of 3 | 3.5000 | 3.1000 | 60 (3, max 248) |')
  })
})
