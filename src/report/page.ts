/**
 * The report page's script: draws every chart spec of the embedded data with uPlot (inlined before this script as
 * the global `uPlot`). Runs in the browser; html.ts compiles it to one inline script, so it imports types only.
 *
 * What it drew is left in `window.dataflexReport` (charts and the values each one plotted, errors, the series
 * colours), which the browser test reads.
 */
import type UPlot from 'uplot'
import type { ChartSpec, PageData } from './charts.ts'

declare const uPlot: typeof UPlot

interface Drawn {
  id: string
  section: string
  /** Finite y values plotted, over all series. */
  values: number
  series: number
}

declare global {
  interface Window {
    dataflexReport?: { charts: Drawn[]; errors: string[]; instances: UPlot[]; palette: string[] }
  }
}

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf']
const HEIGHT = 280
/** Tick steps for integer x axes (steps, positions): 1, 2, 5, 10, 20, 50, … */
const INTEGER_TICKS = Array.from({ length: 24 }, (_, i) => [1, 2, 5][i % 3]! * 10 ** Math.floor(i / 3))
const color = (i: number): string => PALETTE[i % PALETTE.length]!
/** The palette colour at the given opacity (hex alpha suffix). */
const tint = (i: number, alpha: number): string => color(i) + Math.round(alpha * 255).toString(16).padStart(2, '0')

function fmt(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–'
  if (Number.isInteger(v)) return String(v)
  const a = Math.abs(v)
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(Number(v.toPrecision(5)))
}

const finite = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v)

/** The uPlot options and aligned data of one spec. */
function build(spec: ChartSpec, width: number): { opts: UPlot.Options; data: UPlot.AlignedData } {
  const paths = uPlot.paths
  const few = spec.x.length <= 60
  let columns: (number | null)[][] = spec.series.map((s) => s.values)
  const series: UPlot.Series[] = spec.series.map((s, i) => {
    const pointsOnly = spec.kind === 'points' || (spec.pointsOnly ?? []).includes(s.label)
    return {
      label: s.label,
      stroke: color(i),
      width: 1.5,
      spanGaps: true,
      value: (_u: UPlot, v: number) => fmt(v),
      points: { show: pointsOnly || few, size: pointsOnly ? 7 : 4 },
      ...(pointsOnly ? { paths: () => null } : {}),
    }
  })
  const bands: UPlot.Band[] = []
  let xRange: UPlot.Scale['range'] | undefined
  let xValues: UPlot.Axis['values'] | undefined
  let xSplits: UPlot.Axis['splits'] | undefined
  let xValue: UPlot.Series['value'] = (_u, v) => fmt(v)
  if (spec.kind === 'steps' || spec.kind === 'stacked' || spec.kind === 'histogram') {
    series.forEach((s) => (s.paths = paths.stepped!({ align: 1 })))
  }
  if (spec.kind === 'histogram') {
    // x holds the bin edges: each count holds from its left edge to the next; the last edge closes the last bin.
    columns = columns.map((c) => [...c, c.at(-1) ?? null])
    series.forEach((s, i) => {
      s.fill = tint(i, 0.12)
      s.points = { show: false }
    })
  }
  if (spec.kind === 'stacked') {
    // Cumulative shares, each domain's band filled between its top and the one below; the legend shows its own share.
    const raw = columns
    let below: (number | null)[] = spec.x.map(() => 0)
    columns = raw.map((c) => (below = c.map((v, j) => (finite(v) && finite(below[j]) ? v + below[j] : null))))
    series.forEach((s, i) => {
      s.value = (_u, _v, _si, idx) => fmt(idx === null ? null : raw[i]![idx])
      s.points = { show: false }
      if (i === 0) s.fill = tint(0, 0.45)
      else bands.push({ series: [i + 1, i], fill: tint(i, 0.45) })
    })
  }
  if (spec.kind === 'bars') {
    const names = spec.categories ?? []
    series.forEach((s, i) => {
      s.paths = paths.bars!({ size: [0.6, 120] })
      s.fill = tint(i, 0.6)
      s.points = { show: false }
    })
    xRange = [-0.5, spec.x.length - 0.5]
    xSplits = () => spec.x
    xValues = (_u, splits) => splits.map((v) => names[v] ?? '')
    xValue = (_u, v) => names[v] ?? ''
  }
  const opts: UPlot.Options = {
    title: spec.title,
    width,
    height: HEIGHT,
    scales: { x: { time: false, ...(xRange ? { range: xRange } : {}) }, ...(spec.kind === 'stacked' ? { y: { range: [0, 1] } } : {}) },
    axes: [
      {
        label: spec.xLabel,
        ...(spec.kind === 'histogram' ? {} : { incrs: INTEGER_TICKS }),
        ...(xSplits ? { splits: xSplits } : {}),
        ...(xValues ? { values: xValues } : {}),
      },
      { label: spec.yLabel, size: 64, values: (_u, splits) => splits.map(fmt) },
    ],
    series: [{ label: spec.xLabel, value: xValue }, ...series],
    bands,
    legend: { live: true },
  }
  return { opts, data: [spec.x, ...columns] as unknown as UPlot.AlignedData }
}

function main(): void {
  const state: NonNullable<Window['dataflexReport']> = { charts: [], errors: [], instances: [], palette: PALETTE }
  window.dataflexReport = state
  const data = JSON.parse(document.getElementById('report-data')!.textContent!) as PageData
  for (const section of data.sections) {
    for (const spec of section.charts) {
      const el = document.querySelector<HTMLElement>(`[data-chart="${spec.id}"]`)
      try {
        if (el === null) throw new Error('no element for it')
        const { opts, data: aligned } = build(spec, el.clientWidth || 900)
        const u = new uPlot(opts, aligned, el)
        state.instances.push(u)
        const values = aligned.slice(1).reduce((n, col) => n + Array.from(col as ArrayLike<number | null>).filter(finite).length, 0)
        state.charts.push({ id: spec.id, section: section.id, values, series: aligned.length - 1 })
      } catch (err) {
        const message = `chart ${spec.id}: ${err instanceof Error ? err.message : String(err)}`
        state.errors.push(message)
        console.error(message)
      }
    }
  }
  window.addEventListener('resize', () => {
    for (const u of state.instances) u.setSize({ width: u.root.parentElement?.clientWidth ?? u.width, height: HEIGHT })
  })
}

main()
