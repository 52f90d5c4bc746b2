/**
 * The report's sections: which charts a run's model (data.ts) gives, as plain specs the page draws with uPlot
 * (page.ts). A section appears only when the run has its data.
 */
import { BETWEEN_DECISIONS, MAX_SHOWN, spread, type Histograms, type RunReport } from './data.ts'

export interface SeriesSpec {
  label: string
  values: (number | null)[]
}

/**
 * - `line`: lines (with points when there are few);
 * - `points`: points only (sparse values, e.g. eval loss alone);
 * - `steps`: a value holds from its x to the next (proportions of a window);
 * - `stacked`: `steps`, stacked to 1 (shares);
 * - `histogram`: x holds the bin edges (one more than the values), a stepped outline per series;
 * - `bars`: one bar per category (x = 0…n−1, named by `categories`).
 */
export type ChartKind = 'line' | 'points' | 'steps' | 'stacked' | 'histogram' | 'bars'

export interface ChartSpec {
  id: string
  title: string
  kind: ChartKind
  xLabel: string
  yLabel: string
  x: number[]
  series: SeriesSpec[]
  categories?: string[]
  /** Series drawn as points only (e.g. eval loss over the train loss line). */
  pointsOnly?: string[]
}

export interface Section {
  id: string
  title: string
  /** What the charts show, one short paragraph. */
  note: string
  charts: ChartSpec[]
}

const hasValue = (s: SeriesSpec): boolean => s.values.some((v) => v !== null && Number.isFinite(v))
/** Charts with at least one value to draw, series without any left out. */
function drawable(charts: ChartSpec[]): ChartSpec[] {
  return charts.map((c) => ({ ...c, series: c.series.filter(hasValue) })).filter((c) => c.x.length > 0 && c.series.length > 0)
}

function lossSection(r: RunReport): Section {
  const x = r.steps.map((p) => p.step)
  const charts: ChartSpec[] = [
    {
      id: 'loss',
      title: 'Loss',
      kind: 'line',
      xLabel: 'step',
      yLabel: 'loss',
      x,
      series: [
        { label: 'train loss', values: r.steps.map((p) => p.loss) },
        { label: 'eval loss', values: r.steps.map((p) => p.evalLoss) },
      ],
      pointsOnly: ['eval loss'],
    },
    { id: 'lr', title: 'Learning rate', kind: 'line', xLabel: 'step', yLabel: 'learning rate', x, series: [{ label: 'learning rate', values: r.steps.map((p) => p.lr) }] },
    { id: 'grad-norm', title: 'Gradient norm (before clipping)', kind: 'line', xLabel: 'step', yLabel: 'grad norm', x, series: [{ label: 'grad norm', values: r.steps.map((p) => p.gradNorm) }] },
  ]
  return { id: 'training', title: 'Training', note: 'Per optimizer step, unrounded, from dataflex/metrics.jsonl; eval loss where the run evaluated.', charts }
}

/** Window values as steps: each holds from its first step, and the last window is closed at its last step. */
function stepped(points: { steps: [number, number] }[], values: (number | null)[][]): { x: number[]; columns: (number | null)[][] } {
  const last = points.at(-1)
  if (last === undefined) return { x: [], columns: values }
  return { x: [...points.map((p) => p.steps[0]), last.steps[1]], columns: values.map((col) => [...col, col.at(-1) ?? null]) }
}

function mixSection(r: RunReport): Section | undefined {
  if (r.mixes.length === 0) return undefined
  const k = Math.max(...r.mixes.map((m) => (m.proportions ?? m.sampledWith)!.length))
  const names = Array.from({ length: k }, (_, d) => r.domains?.[d] ?? `domain ${d}`)
  const column = (get: (m: RunReport['mixes'][number]) => number[] | null) => names.map((_, d) => r.mixes.map((m) => get(m)?.[d] ?? null))
  const mixer = stepped(r.mixes, column((m) => m.proportions ?? m.sampledWith))
  const drawn = stepped(r.mixes, column((m) => m.sampledWith))
  const differs = r.mixes.some((m) => m.proportions !== null && m.sampledWith !== null && m.proportions.some((p, d) => Math.abs(p - m.sampledWith![d]!) > 1e-12))
  const updates = r.mixes.filter((m) => m.windowLoss !== null)
  const charts: ChartSpec[] = [
    { id: 'proportions', title: 'Domain proportions', kind: 'stacked', xLabel: 'step', yLabel: 'share', x: mixer.x, series: names.map((label, d) => ({ label, values: mixer.columns[d]! })) },
    ...(differs ? [{ id: 'sampled-with', title: 'Proportions drawn with (after mixture_sample_rule)', kind: 'stacked' as const, xLabel: 'step', yLabel: 'share', x: drawn.x, series: names.map((label, d) => ({ label, values: drawn.columns[d]! })) }] : []),
    {
      id: 'domain-loss',
      title: 'Training loss per domain',
      kind: 'line',
      xLabel: 'step',
      yLabel: 'token-mean loss',
      x: updates.map((m) => m.step),
      series: names.map((label, d) => ({ label, values: updates.map((m) => m.windowLoss?.[d] ?? null) })),
    },
  ]
  return {
    id: 'mixing',
    title: 'Domains',
    note: "The proportions each window was drawn by (the mixer's from its first update on), and each domain's token-mean training loss over the steps before each update.",
    charts,
  }
}

function histogramChart(id: string, title: string, h: Histograms, xLabel: string): ChartSpec {
  return { id, title, kind: 'histogram', xLabel, yLabel: 'rows', x: h.edges, series: h.rows.map((row) => ({ label: `step ${row.step}`, values: row.counts })) }
}

function selectionSection(r: RunReport): Section | undefined {
  const s = r.selections
  if (s.length === 0) return undefined
  const x = s.map((p) => p.step)
  const perDomain = r.domains !== null && s.some((p) => p.perDomain !== null)
  const charts: ChartSpec[] = [
    {
      id: 'selected-rows',
      title: 'Rows per selection',
      kind: 'line',
      xLabel: 'step',
      yLabel: 'rows',
      x,
      series: [
        { label: 'in the window', values: s.map((p) => p.count) },
        { label: 'returned by the selector', values: s.map((p) => p.returned) },
        { label: 'distinct', values: s.map((p) => p.unique) },
      ],
    },
    ...(perDomain ? [{ id: 'selected-domains', title: 'Selected rows per domain', kind: 'line' as const, xLabel: 'step', yLabel: 'rows', x, series: r.domains!.map((label, d) => ({ label, values: s.map((p) => p.perDomain?.[d] ?? null) })) }] : []),
    {
      id: 'selection-overlap',
      title: 'Overlap with the previous selection',
      kind: 'line',
      xLabel: 'step',
      yLabel: 'share',
      x,
      series: [
        { label: 'Jaccard |A∩B| / |A∪B|', values: s.map((p) => p.jaccard) },
        { label: 'rows not in the previous', values: s.map((p) => p.fresh) },
      ],
    },
    {
      id: 'selection-scores',
      title: 'Scores of the selected rows',
      kind: 'line',
      xLabel: 'step',
      yLabel: 'score',
      x,
      series: [
        { label: 'min', values: s.map((p) => p.scores?.min ?? null) },
        { label: 'mean', values: s.map((p) => p.scores?.mean ?? null) },
        { label: 'max', values: s.map((p) => p.scores?.max ?? null) },
      ],
    },
    ...(r.selectionScores ? [histogramChart('selection-histogram', `Score histograms (${r.selectionScores.metric})`, r.selectionScores, r.selectionScores.metric)] : []),
  ]
  return {
    id: 'selection',
    title: 'Selections',
    note: `One point per selection, at the step it follows. Histograms read the saved selections (dataflex/selections/), at most ${MAX_SHOWN} of them over one shared range.`,
    charts,
  }
}

function weightSection(r: RunReport): Section | undefined {
  const w = r.weights
  if (w.length === 0) return undefined
  const x = w.map((p) => p.step)
  const charts: ChartSpec[] = [
    {
      id: 'weights',
      title: 'Sample weights per step',
      kind: 'line',
      xLabel: 'step',
      yLabel: 'weight',
      x,
      series: [
        { label: 'min', values: w.map((p) => p.min) },
        { label: 'mean', values: w.map((p) => p.mean) },
        { label: 'max', values: w.map((p) => p.max) },
      ],
    },
    {
      id: 'ess',
      title: 'Effective sample size (Σw)² / Σw²',
      kind: 'line',
      xLabel: 'step',
      yLabel: 'samples',
      x,
      series: [
        { label: 'ESS', values: w.map((p) => p.ess) },
        { label: 'samples', values: w.map((p) => p.samples) },
      ],
    },
    ...(r.weightHistograms ? [histogramChart('weight-histogram', 'Weight histograms (log_weights)', r.weightHistograms, 'weight')] : []),
  ]
  return { id: 'weights', title: 'Weights', note: 'Every weighed step: the weights the step trained with, summarised.', charts }
}

function reorderSection(r: RunReport): Section | undefined {
  const o = r.reorders
  if (o.length === 0) return undefined
  const withTenths = o.filter((p) => p.tenths !== null)
  const shown = spread(withTenths.length, MAX_SHOWN).map((i) => withTenths[i]!)
  const x = o.map((p) => p.step)
  const charts: ChartSpec[] = [
    {
      id: 'order-tenths',
      title: 'Score by position in the served order',
      kind: 'line',
      xLabel: 'tenth of the window',
      yLabel: 'mean score',
      x: Array.from({ length: 10 }, (_, i) => i + 1),
      series: shown.map((p) => ({ label: `step ${p.step}`, values: p.tenths! })),
    },
    {
      id: 'order-scores',
      title: 'Scores of each window',
      kind: 'line',
      xLabel: 'step',
      yLabel: 'score',
      x,
      series: [
        { label: 'min', values: o.map((p) => p.scores?.min ?? null) },
        { label: 'mean', values: o.map((p) => p.scores?.mean ?? null) },
        { label: 'max', values: o.map((p) => p.scores?.max ?? null) },
      ],
    },
  ]
  return {
    id: 'reorder',
    title: 'Orderings',
    note: `The mean score of each tenth of a window's served order (the curriculum's shape; at most ${MAX_SHOWN} windows shown), and each window's score range.`,
    charts,
  }
}

function timingSection(r: RunReport): Section | undefined {
  if (r.phaseTotals.length === 0) return undefined
  const phases = [...new Set(r.timings.map((t) => t.phase))]
  const steps = [...new Set(r.timings.map((t) => t.step))].sort((a, b) => a - b)
  const at = new Map(steps.map((s, i) => [s, i]))
  const columns = phases.map(() => new Array<number | null>(steps.length).fill(null))
  for (const t of r.timings) {
    const col = columns[phases.indexOf(t.phase)]!
    const i = at.get(t.step)!
    col[i] = (col[i] ?? 0) + t.ms
  }
  const charts: ChartSpec[] = [
    {
      id: 'phase-totals',
      title: 'Time per phase',
      kind: 'bars',
      xLabel: 'phase',
      yLabel: 'seconds',
      x: r.phaseTotals.map((_, i) => i),
      categories: r.phaseTotals.map((p) => p.phase),
      series: [{ label: 'seconds', values: r.phaseTotals.map((p) => p.ms / 1000) }],
    },
    { id: 'decision-times', title: 'Decision time per step', kind: 'points', xLabel: 'step', yLabel: 'ms', x: steps, series: phases.map((label, k) => ({ label, values: columns[k]! })) },
  ]
  return {
    id: 'timing',
    title: 'Time',
    note: `From the decision log: each decision's own time (its timings), and "${BETWEEN_DECISIONS}": the wall time between two decision lines less the later one's decision (training, evaluation, checkpoints), up to the last line.`,
    charts,
  }
}

/** The report's sections, in page order, each with only the charts that have values. */
export function sections(r: RunReport): Section[] {
  return [lossSection(r), mixSection(r), selectionSection(r), weightSection(r), reorderSection(r), timingSection(r)]
    .filter((s): s is Section => s !== undefined)
    .map((s) => ({ ...s, charts: drawable(s.charts) }))
    .filter((s) => s.charts.length > 0)
}

/** Everything the page shows, embedded in it as JSON. */
export interface PageData {
  title: string
  outputDir: string
  /** When the report was written (ISO), and whether the run had finished then (summary.json written). */
  writtenAt: string
  finished: boolean
  /** The run's facts as label/value rows. */
  overview: [string, string][]
  sections: Section[]
  problems: string[]
}
