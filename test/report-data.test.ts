/**
 * The run report without a browser: the data model (src/report/data.ts) on hand-written log lines, the sections it
 * gives (charts.ts), the page text (html.ts), the atomic write and `dataflex report`'s exit codes.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { Bridge } from '../src/bridge/index.ts'
import { main } from '../src/cli/main.ts'
import { capturedIO } from './support.ts'
import { histogram } from '../src/math/stats.ts'
import { sections } from '../src/report/charts.ts'
import { BETWEEN_DECISIONS, runReport, type RunFiles } from '../src/report/data.ts'
import { pageAssets, pageData, renderPage } from '../src/report/html.ts'
import { hasRunLogs, REPORT_FILE, writeRunReport } from '../src/report/write.ts'
import { TrainDriver } from '../src/trainers/driver.ts'
import type { Executor, LoadInfo } from '../src/trainers/executor.ts'
import { RunLog } from '../src/trainers/runlog.ts'
import { expectAllClose, expectClose } from './close.ts'
import { tempDir } from './temp-dirs.ts'

const lines = (objs: object[]): string => objs.map((o) => JSON.stringify(o)).join('\n') + '\n'
const files = (over: Partial<RunFiles>): RunFiles => ({ decisions: '', metrics: '', settings: {}, scoreFiles: {}, ...over })
const EXACT = { rel: 1e-12 }

const METRICS = [
  { step: 1, epoch: 0.5, loss: 2.5, grad_norm: 1.25, lr: 0.001, tokens: 30 },
  { step: 2, epoch: 1, loss: 2.0, grad_norm: null, lr: 0.002, tokens: 31, eval_loss: 2.25 },
  { step: 3, epoch: 1.5, loss: 1.5, grad_norm: 0.5, lr: 0.001, tokens: 29 },
]

describe('runReport: steps and the run', () => {
  it('reads every metrics line, eval loss where present; an unreadable line is a problem, not a failure', () => {
    const r = runReport(files({ metrics: lines(METRICS) + '{"step": 4, "loss"\n' }))
    expect(r.steps).toEqual([
      { step: 1, epoch: 0.5, loss: 2.5, lr: 0.001, gradNorm: 1.25, evalLoss: null },
      { step: 2, epoch: 1, loss: 2.0, lr: 0.002, gradNorm: null, evalLoss: 2.25 },
      { step: 3, epoch: 1.5, loss: 1.5, lr: 0.001, gradNorm: 0.5, evalLoss: null },
    ])
    expect(r.problems).toEqual(['metrics.jsonl:4: not JSON'])
    expect(r.trainType).toBe('static')
    expect(r.summary).toBeNull()
  })

  it('train_type from summary.json, else from the settings file, else static; component likewise', () => {
    expect(runReport(files({ settings: { mix: { component: 'odm_p' } } }))).toMatchObject({ trainType: 'dynamic_mix', component: 'odm_p' })
    expect(runReport(files({ settings: { weight: {} } }))).toMatchObject({ trainType: 'dynamic_weight', component: null })
    const done = runReport(files({ settings: { select: { component: 'a' } }, summary: { train_type: 'dynamic_select', component: 'b', steps: 3, nested: { x: 1 } } }))
    expect(done).toMatchObject({ trainType: 'dynamic_select', component: 'b', summary: { train_type: 'dynamic_select', component: 'b', steps: 3 } })
    expect(done.summary).not.toHaveProperty('nested')
  })
})

describe('runReport: selections', () => {
  // Two domains of 4 and 6 rows (rows 0–3, then 4–9), as a lego run's settings name them.
  const settings = { lego: { domains: [{ name: 'a', rows: 4 }, { name: 'b', rows: 6 }] } }
  const sel = [
    { step: 2, kind: 'select', strategy: 'loss', count: 4, returned: 4, indices: [0, 1, 5, 6], scores: { min: 0.5, mean: 1, max: 2 }, scores_file: 'dataflex/selections/step_2.json' },
    { step: 4, kind: 'select', strategy: 'loss', count: 4, returned: 3, indices: [1, 6, 7, 7], scores: { min: 0.25, mean: 0.75, max: 1.5 }, scores_file: 'dataflex/selections/step_4.json' },
    // Beyond the logged-indices cap: the saved selection names the rows.
    { step: 6, kind: 'select', strategy: 'loss', count: 3, returned: 3, hash: 'x', scores_file: 'dataflex/selections/step_6.json' },
  ]
  const scoreFiles = {
    'dataflex/selections/step_2.json': { indices: [0, 1, 5, 6], metric: { loss: [0.5, 2, 1, 0.5] } },
    'dataflex/selections/step_4.json': { indices: [1, 6, 7], metric: { loss: [1.5, null, 0.25] } },
    'dataflex/selections/step_6.json': { indices: [9, 8, 1], metric: { loss: [3, 1, 1] } },
  }
  const r = runReport(files({ decisions: lines(sel), settings, scoreFiles }))

  it('counts per domain, distinct rows and the overlap with the previous selection', () => {
    const sets = [[0, 1, 5, 6], [1, 6, 7, 7], [9, 8, 1]].map((a) => new Set(a))
    const expected = sets.map((b, k) => {
      if (k === 0) return { jaccard: null, fresh: null }
      const a = sets[k - 1]!
      let both = 0
      for (const x of b) if (a.has(x)) both++
      return { jaccard: both / (a.size + b.size - both), fresh: (b.size - both) / b.size }
    })
    const perDomain = [[0, 1, 5, 6], [1, 6, 7, 7], [9, 8, 1]].map((rows) => [rows.filter((x) => x < 4).length, rows.filter((x) => x >= 4).length])
    expect(r.domains).toEqual(['a', 'b'])
    expect(r.selections.map((p) => p.step)).toEqual([2, 4, 6])
    expect(r.selections.map((p) => p.unique)).toEqual(sets.map((s) => s.size))
    expect(r.selections.map((p) => p.perDomain)).toEqual(perDomain)
    expect(r.selections.map((p) => p.returned)).toEqual([4, 3, 3])
    expect(r.selections[2]!.scores).toBeNull()
    r.selections.forEach((p, k) => {
      if (k === 0) return expect([p.jaccard, p.fresh]).toEqual([null, null])
      expectClose(p.jaccard!, expected[k]!.jaccard!, EXACT)
      expectClose(p.fresh!, expected[k]!.fresh!, EXACT)
    })
  })

  it('score histograms of the saved selections share one range; a null score is left out', () => {
    const h = r.selectionScores!
    expect(h.metric).toBe('loss')
    const all = [0.5, 2, 1, 0.5, 1.5, 0.25, 3, 1, 1]
    const lo = Math.min(...all)
    const hi = Math.max(...all)
    expect(h.edges).toHaveLength(21)
    expectClose(h.edges[0]!, lo, EXACT)
    expectClose(h.edges[20]!, hi, EXACT)
    const bin = (v: number): number => Math.min(19, Math.floor(((v - lo) / (hi - lo)) * 20))
    const want = [[0.5, 2, 1, 0.5], [1.5, 0.25], [3, 1, 1]].map((vs) => {
      const c = new Array<number>(20).fill(0)
      for (const v of vs) c[bin(v)]!++
      return c
    })
    expect(h.rows).toEqual([2, 4, 6].map((step, k) => ({ step, counts: want[k] })))
  })

  it("a select run's datasets count like domains; when their rows are not known the overview says why", () => {
    const counted = runReport(files({ decisions: lines(sel), scoreFiles, settings: { select: { datasets: { names: ['a', 'b'], rows: [4, 6], unavailable: null } } } }))
    expect(counted.domains).toEqual(['a', 'b'])
    expect(counted.selections.map((p) => p.perDomain)).toEqual(r.selections.map((p) => p.perDomain))
    expect(counted.domainsUnavailable).toBeNull()
    const unknown = runReport(files({ decisions: lines(sel), scoreFiles, settings: { select: { datasets: { names: ['a', 'b'], rows: null, unavailable: 'val_size: the split shuffles the training rows' } } } }))
    expect(unknown.domains).toBeNull()
    expect(unknown.selections.every((p) => p.perDomain === null)).toBe(true)
    expect(unknown.domainsUnavailable).toBe('val_size: the split shuffles the training rows')
    const row = pageData(unknown, '/runs/x', new Date(0)).overview.find(([k]) => k === 'domains')
    expect(row?.[1]).toBe('selections not counted per dataset: val_size: the split shuffles the training rows')
  })

  it('without domains there are no per-domain counts, and no chart for them', () => {
    const plain = runReport(files({ decisions: lines(sel), scoreFiles }))
    expect(plain.selections.every((p) => p.perDomain === null)).toBe(true)
    const ids = sections(plain).flatMap((s) => s.charts.map((c) => c.id))
    expect(ids).toContain('selection-overlap')
    expect(ids).not.toContain('selected-domains')
    expect(sections(r).flatMap((s) => s.charts.map((c) => c.id))).toContain('selected-domains')
  })
})

describe('runReport: mixing, weights, orderings, time', () => {
  it('mix windows: proportions, what they were drawn with, per-domain window losses', () => {
    const decisions = [
      { step: 0, kind: 'plan', strategy: 'warmup', steps: [1, 1], sampled_with: [0.5, 0.5], drawn: [4, 4] },
      { step: 1, kind: 'mix', strategy: 'odm', steps: [2, 3], proportions: [0.75, 0.25], sampled_with: [0.5, 0.5], window_loss: [2.5, null] },
      { step: 3, kind: 'plan', strategy: 'static', steps: [4, 5], samples: 8, hash: 'h' },
    ]
    const r = runReport(files({ decisions: lines(decisions), settings: { mix: { domains: [{ name: 'x', rows: 3 }, { name: 'y', rows: 3 }] } } }))
    expect(r.mixes).toEqual([
      { step: 0, steps: [1, 1], kind: 'plan', proportions: null, sampledWith: [0.5, 0.5], windowLoss: null },
      { step: 1, steps: [2, 3], kind: 'mix', proportions: [0.75, 0.25], sampledWith: [0.5, 0.5], windowLoss: [2.5, null] },
    ])
    const mixing = sections(r).find((s) => s.id === 'mixing')!
    const proportions = mixing.charts.find((c) => c.id === 'proportions')!
    // Each window's shares hold from its first step; the last window is closed at its last step.
    expect(proportions.x).toEqual([1, 2, 3])
    expect(proportions.series).toEqual([
      { label: 'x', values: [0.5, 0.75, 0.75] },
      { label: 'y', values: [0.5, 0.25, 0.25] },
    ])
    // The mixer's shares differ from those drawn with (a sample rule): both charts.
    expect(mixing.charts.map((c) => c.id)).toEqual(['proportions', 'sampled-with', 'domain-loss'])
  })

  it('weights per step, and histograms when every weight is logged', () => {
    const w1 = [0.5, 1, 1.5, 1]
    const w2 = [2, 1, 1, 0]
    const summary = (w: number[]) => {
      let s = 0
      let s2 = 0
      for (const x of w) {
        s += x
        s2 += x * x
      }
      return { min: Math.min(...w), max: Math.max(...w), mean: s / w.length, ess: (s * s) / s2 }
    }
    const decisions = [
      { step: 3, kind: 'weight', strategy: 'loss', samples: 4, weights: summary(w1), sample_weights: w1 },
      { step: 4, kind: 'weight', strategy: 'loss', samples: 4, weights: summary(w2), sample_weights: w2 },
    ]
    const r = runReport(files({ decisions: lines(decisions) }))
    expect(r.weights).toEqual([
      { step: 3, samples: 4, ...summary(w1) },
      { step: 4, samples: 4, ...summary(w2) },
    ])
    expect(r.weightHistograms!.rows.map((row) => row.counts.reduce((a, b) => a + b, 0))).toEqual([4, 4])
    expect(sections(r).find((s) => s.id === 'weights')!.charts.map((c) => c.id)).toEqual(['weights', 'ess', 'weight-histogram'])
  })

  it('orderings: score tenths and score range per window', () => {
    const tenths = Array.from({ length: 10 }, (_, i) => i / 10)
    const decisions = [
      { step: 0, kind: 'reorder', window: 'warmup', steps: [1, 1], rescored: false, count: 8 },
      { step: 1, kind: 'reorder', window: 'select', steps: [2, 3], rescored: true, score_tenths: tenths, scores: { min: 0, mean: 0.45, max: 0.9 } },
    ]
    const r = runReport(files({ decisions: lines(decisions) }))
    expect(r.reorders).toEqual([
      { step: 0, steps: [1, 1], window: 'warmup', rescored: false, tenths: null, scores: null },
      { step: 1, steps: [2, 3], window: 'select', rescored: true, tenths, scores: { min: 0, mean: 0.45, max: 0.9 } },
    ])
    const chart = sections(r).find((s) => s.id === 'reorder')!.charts[0]!
    expect(chart.series).toEqual([{ label: 'step 1', values: tenths }])
  })

  it("time per phase: each line's own `<phase>_ms` / `_seconds`, and the wall time between lines less the later decision", () => {
    const t0 = Date.parse('2026-01-01T00:00:00.000Z')
    const at = (ms: number) => new Date(t0 + ms).toISOString()
    const decisions = [
      { step: 0, kind: 'plan', strategy: 'warmup', time: at(0) },
      { step: 1, kind: 'select', strategy: 'less', timings: { select_ms: 800, timing_ms: { eval_gradients: 300 } }, time: at(5000) },
      { step: 3, kind: 'refresh', strategy: 'adapt', timings: { refresh_seconds: 0.5 }, time: at(9000) },
    ]
    const r = runReport(files({ decisions: lines(decisions) }))
    expect(r.timings).toEqual([
      { step: 1, phase: 'select', ms: 800 },
      { step: 3, phase: 'refresh', ms: 500 },
    ])
    expect(r.phaseTotals).toEqual([
      { phase: 'select', ms: 800 },
      { phase: 'refresh', ms: 500 },
      { phase: BETWEEN_DECISIONS, ms: 5000 - 800 + (4000 - 500) },
    ])
  })

  it('a static run has the training section only (timing needs decision timings or two stamped lines)', () => {
    expect(sections(runReport(files({ metrics: lines(METRICS) }))).map((s) => s.id)).toEqual(['training'])
    // Empty series are dropped: no grad norm at all, no grad-norm chart.
    const noGrad = METRICS.map((m) => ({ ...m, grad_norm: null }))
    expect(sections(runReport(files({ metrics: lines(noGrad) })))[0]!.charts.map((c) => c.id)).toEqual(['loss', 'lr'])
  })
})

describe('histogram (src/math/stats.ts)', () => {
  it('equal-width bins, the last one closed; out of range and non-finite values left out', () => {
    const values = [0, 0.1, 0.5, 0.99, 1, -1, 2, NaN, Infinity]
    const want = [0, 0, 0, 0]
    for (const v of values) if (v >= 0 && v <= 1) want[Math.min(3, Math.floor(v * 4))]!++
    expect(Array.from(histogram(values, 0, 1, 4))).toEqual(want)
    expect(() => histogram(values, 1, 1, 4)).toThrow(RangeError)
  })
})

describe('the page', () => {
  it('is one file: uPlot and the page script inline, the data as JSON that cannot close its element', () => {
    const r = runReport(files({ metrics: lines(METRICS), summary: { train_type: 'static', note: '</script><b>' } }))
    const html = renderPage(pageData(r, '/runs/x', new Date(0)), pageAssets())
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!github\.com\/leeoniya)/)
    expect(html).toContain("default-src 'none'")
    expect(html).toContain(readFileSync(join('node_modules', 'uplot', 'dist', 'uPlot.iife.min.js'), 'utf8').slice(0, 200))
    // The one `</script>` in the summary is escaped in the JSON; only the three real elements close.
    expect(html.match(/<\/script>/g)).toHaveLength(3)
    const json = /<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(html)![1]!
    const data = JSON.parse(json) as { overview: [string, string][]; sections: { id: string }[] }
    expect(data.overview).toContainEqual(['note', '</script><b>'])
    expect(data.sections.map((s) => s.id)).toEqual(['training'])
    expectAllClose(
      (JSON.parse(json) as { sections: { charts: { series: { values: number[] }[] }[] }[] }).sections[0]!.charts[0]!.series[0]!.values,
      METRICS.map((m) => m.loss),
      EXACT,
    )
  })

  it('writeRunReport writes dataflex/report.html atomically (no temporary file left), from the files on disk', () => {
    const out = tempDir('report-write')
    expect(hasRunLogs(out)).toBe(false)
    mkdirSync(join(out, 'dataflex', 'selections'), { recursive: true })
    writeFileSync(join(out, 'dataflex', 'metrics.jsonl'), lines(METRICS))
    writeFileSync(join(out, 'dataflex', 'decisions.jsonl'), lines([{ step: 1, kind: 'select', strategy: 'loss', count: 2, indices: [0, 1], scores_file: 'dataflex/selections/step_1.json' }]))
    writeFileSync(join(out, 'dataflex', 'selections', 'step_1.json'), JSON.stringify({ indices: [0, 1], metric: { loss: [1, 2] } }))
    writeFileSync(join(out, 'dataflex', 'select.json'), '{ broken')
    expect(hasRunLogs(out)).toBe(true)
    const path = writeRunReport(out)
    expect(path).toBe(join(out, 'dataflex', REPORT_FILE))
    expect(readdirSync(join(out, 'dataflex')).filter((n) => n.includes('.tmp'))).toEqual([])
    const html = readFileSync(path, 'utf8')
    expect(html).toContain('data-chart="selection-histogram"')
    expect(html).toContain('dataflex/select.json') // named under "Not shown"
  })
})

describe('the report at the end of a run (TrainDriver.finish)', () => {
  /** A driver whose executor only finishes: what finish() writes, and what it logs. */
  function driver(out: string): { d: TrainDriver; logged: string[] } {
    const info = {
      stage: 'sft',
      output_dir: out,
      logging_strategy: 'steps',
      logging_steps: 1,
      logging_first_step: false,
      eval_strategy: 'no',
      eval_steps: null,
      eval_delay: 0,
      save_strategy: 'no',
      save_steps: 500,
      trainable_params: 1,
    } as unknown as LoadInfo
    const exec = { finish: async () => ({ train_loss: 1, global_step: 3, eval_loss: null, step_seconds_median: null }) } as unknown as Executor
    const runlog = new RunLog(out)
    runlog.open()
    runlog.steps(METRICS.map(({ step, epoch, loss, grad_norm, lr, tokens }) => ({ step, epoch, loss, grad_norm, lr, tokens })))
    const logged: string[] = []
    return { d: new TrainDriver(exec, { on: () => () => {} } as unknown as Bridge, info, runlog, () => {}, (line) => logged.push(line)), logged }
  }

  it('writes dataflex/report.html after summary.json', async () => {
    const out = tempDir('report-finish')
    const { d, logged } = driver(out)
    await d.finish()
    expect(logged).toEqual([])
    expect(readFileSync(join(out, 'dataflex', REPORT_FILE), 'utf8')).toContain('<td>status</td><td>finished</td>')
  })

  it('a report that cannot be written is a warning; the run finishes', async () => {
    const out = tempDir('report-finish-fails')
    const { d, logged } = driver(out)
    mkdirSync(join(out, 'dataflex', REPORT_FILE)) // rename() cannot replace a folder with a file
    await expect(d.finish()).resolves.toMatchObject({ steps: 3 })
    expect(logged).toHaveLength(1)
    expect(logged[0]).toMatch(/^warning: the run report was not written: /)
    expect(JSON.parse(readFileSync(join(out, 'dataflex', 'summary.json'), 'utf8'))).toMatchObject({ steps: 3 })
  })
})

describe('dataflex report', () => {
  const io = capturedIO

  it('exits 2 with a clear message for a folder without DataFlex logs, and 0 after writing the report', async () => {
    const dir = tempDir('report-cli')
    const none = io()
    expect(await main(['report', dir], none.io)).toBe(2)
    expect(none.err()).toContain(`${dir} has no DataFlex run logs`)
    const missing = io()
    expect(await main(['report', join(dir, 'nope')], missing.io)).toBe(2)
    expect(missing.err()).toContain('does not exist')
    mkdirSync(join(dir, 'dataflex'))
    writeFileSync(join(dir, 'dataflex', 'metrics.jsonl'), lines(METRICS))
    const ok = io()
    expect(await main(['report', dir], ok.io)).toBe(0)
    expect(ok.out()).toBe(`wrote ${join(dir, 'dataflex', REPORT_FILE)}\n`)
  })
})
