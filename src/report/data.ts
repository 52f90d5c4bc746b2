/**
 * The run report's data model: a run's artefacts under `<output_dir>/dataflex/` (the two logs, the summary and
 * settings files, the saved selections) read into typed series. Pure: the caller hands over the files' contents
 * (write.ts reads them), so a report can be built from a run still in progress or from hand-written lines.
 */
import { histogram } from '../math/stats.ts'

/** What a report is built from: file contents as read, nothing parsed yet except the JSON files. */
export interface RunFiles {
  /** `dataflex/decisions.jsonl` and `dataflex/metrics.jsonl` ('' when absent). */
  readonly decisions: string
  readonly metrics: string
  /** `dataflex/summary.json` (written when the run finished), parsed; undefined while it runs. */
  readonly summary?: unknown
  /** The trainer's settings file, parsed, by its name without `.json`: select, mix, weight, reorder, lego. */
  readonly settings: Readonly<Record<string, unknown>>
  /** Saved selections (`dataflex/selections/step_<N>.json`), parsed, by their path relative to output_dir. */
  readonly scoreFiles: Readonly<Record<string, unknown>>
}

export interface StepPoint {
  step: number
  epoch: number
  loss: number
  lr: number
  gradNorm: number | null
  evalLoss: number | null
}

/** One window drawn by domain proportions (a mix update, or a warm-up / static_mix plan). */
export interface MixPoint {
  /** The step the decision follows, and the first and last step it feeds. */
  step: number
  steps: [number, number]
  kind: 'plan' | 'mix'
  /** The mixer's proportions (mix lines), and those the window was drawn with (after mixture_sample_rule). */
  proportions: number[] | null
  sampledWith: number[] | null
  /** Each domain's token-mean training loss over the steps since the previous update (mix lines). */
  windowLoss: (number | null)[] | null
}

export interface ScoreSummary {
  min: number
  mean: number
  max: number
}

export interface SelectionPoint {
  step: number
  strategy: string
  /** Rows in the window (or kept by a filter), and how many the selector returned. */
  count: number
  returned: number | null
  /** Distinct rows; |A∩B| / |A∪B| and the share of rows not in the previous selection (null for the first, or without indices). */
  unique: number | null
  jaccard: number | null
  fresh: number | null
  /** Selected rows per domain (runs with domains, when the line has its indices). */
  perDomain: number[] | null
  scores: ScoreSummary | null
}

/** Histograms of one quantity at several steps, over one shared range. */
export interface Histograms {
  /** What was counted (a selector's metric name, or 'weight'). */
  metric: string
  /** bins + 1 edges, ascending. */
  edges: number[]
  rows: { step: number; counts: number[] }[]
}

export interface WeightPoint {
  step: number
  samples: number
  min: number
  mean: number
  max: number
  ess: number
}

export interface ReorderPoint {
  step: number
  steps: [number, number]
  window: string
  rescored: boolean
  /** Mean score of each tenth of the served order. */
  tenths: number[] | null
  scores: ScoreSummary | null
}

/** A decision's own time, by phase (its `timings` entries `<phase>_ms` / `<phase>_seconds`). */
export interface TimingPoint {
  step: number
  phase: string
  ms: number
}

export interface RunReport {
  trainType: string
  component: string | null
  /** summary.json's plain values (absent while the run is in progress). */
  summary: Record<string, string | number | boolean | null> | null
  steps: StepPoint[]
  domains: string[] | null
  /** Why a select run's selections are not counted per dataset (val_size, packing, …); null otherwise. */
  domainsUnavailable: string | null
  mixes: MixPoint[]
  selections: SelectionPoint[]
  selectionScores: Histograms | null
  weights: WeightPoint[]
  weightHistograms: Histograms | null
  reorders: ReorderPoint[]
  timings: TimingPoint[]
  /** Total ms per phase, with `between decisions`: wall time between decision lines less their decisions' own. */
  phaseTotals: { phase: string; ms: number }[]
  /** Lines or files that could not be read (a report shows what it can). */
  problems: string[]
}

/** Bins of every histogram in a report. */
const HISTOGRAM_BINS = 20
/** Steps a histogram or per-window chart shows at most (evenly spread, the first and last always in). */
export const MAX_SHOWN = 8
const SETTINGS_TYPES: Readonly<Record<string, string>> = {
  select: 'dynamic_select',
  mix: 'dynamic_mix',
  weight: 'dynamic_weight',
  reorder: 'dynamic_reorder',
  lego: 'dynamic_lego',
}
export const BETWEEN_DECISIONS = 'between decisions'

type Json = Record<string, unknown>

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null)
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null)
function nums(v: unknown): number[] | null {
  return Array.isArray(v) && v.every((x) => typeof x === 'number') ? (v as number[]) : null
}
function nullableNums(v: unknown): (number | null)[] | null {
  return Array.isArray(v) ? v.map(num) : null
}
function pair(v: unknown): [number, number] | null {
  const a = nums(v)
  return a !== null && a.length === 2 ? [a[0]!, a[1]!] : null
}
function scoreSummary(v: unknown): ScoreSummary | null {
  if (!isObject(v)) return null
  const [min, mean, max] = [num(v['min']), num(v['mean']), num(v['max'])]
  return min === null || mean === null || max === null ? null : { min, mean, max }
}

/** The JSON lines of a log; a line that does not parse is named in `problems` and left out. */
function jsonLines(text: string, file: string, problems: string[]): Json[] {
  const out: Json[] = []
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return
    try {
      const v: unknown = JSON.parse(line)
      if (isObject(v)) out.push(v)
      else problems.push(`${file}:${i + 1}: not a JSON object`)
    } catch {
      problems.push(`${file}:${i + 1}: not JSON`)
    }
  })
  return out
}

function stepPoints(lines: Json[]): StepPoint[] {
  const out: StepPoint[] = []
  for (const l of lines) {
    const step = num(l['step'])
    const loss = num(l['loss'])
    if (step === null || loss === null) continue
    out.push({ step, epoch: num(l['epoch']) ?? 0, loss, lr: num(l['lr']) ?? 0, gradNorm: num(l['grad_norm']), evalLoss: num(l['eval_loss']) })
  }
  return out
}

/**
 * Domain names and row counts: a mix or lego run's domains, or a select run's datasets (when the executor knew their
 * rows); the executor concatenates them in list order. `unavailable` says why a select run's are not known.
 */
function domainsOf(settings: RunFiles['settings']): { names: string[]; rows: number[] } | { unavailable: string } | null {
  const s = settings['mix'] ?? settings['lego']
  if (isObject(s)) {
    const list = s['domains']
    if (!Array.isArray(list) || list.length === 0) return null
    const names: string[] = []
    const rows: number[] = []
    for (const d of list) {
      const name = isObject(d) ? str(d['name']) : null
      const n = isObject(d) ? num(d['rows']) : null
      if (name === null || n === null) return null
      names.push(name)
      rows.push(n)
    }
    return { names, rows }
  }
  const sel = settings['select']
  const ds = isObject(sel) && isObject(sel['datasets']) ? sel['datasets'] : null
  if (ds === null) return null
  const names = Array.isArray(ds['names']) ? ds['names'].map(str) : []
  const rows = nums(ds['rows'])
  if (names.length > 0 && names.every((n) => n !== null) && rows !== null && rows.length === names.length) return { names: names as string[], rows }
  return { unavailable: str(ds['unavailable']) ?? 'not recorded' }
}

/** Rows per domain of `indices`, the domains being consecutive row ranges of the given sizes. */
function countByDomain(indices: readonly number[], rows: readonly number[]): number[] {
  const ends: number[] = []
  let end = 0
  for (const n of rows) ends.push((end += n))
  const counts = new Array<number>(rows.length).fill(0)
  for (const r of indices) {
    const d = ends.findIndex((end) => r < end)
    if (d >= 0) counts[d]!++
  }
  return counts
}

/** |A∩B| / |A∪B| and the share of B's distinct rows not in A. */
function overlap(a: ReadonlySet<number>, b: ReadonlySet<number>): { jaccard: number; fresh: number } {
  let both = 0
  for (const r of b) if (a.has(r)) both++
  const union = a.size + b.size - both
  return { jaccard: union === 0 ? 1 : both / union, fresh: b.size === 0 ? 0 : (b.size - both) / b.size }
}

/** At most `max` of `n` positions, evenly spread, the first and the last always in. */
export function spread(n: number, max: number): number[] {
  if (n <= max) return Array.from({ length: n }, (_, i) => i)
  return [...new Set(Array.from({ length: max }, (_, i) => Math.round((i * (n - 1)) / (max - 1))))]
}

/** Histograms of each step's values over one range shared by all of them (so they compare bin by bin). */
function sharedHistograms(metric: string, samples: { step: number; values: readonly number[] }[], bins = HISTOGRAM_BINS): Histograms | null {
  const kept = spread(samples.length, MAX_SHOWN).map((i) => samples[i]!)
  let lo = Infinity
  let hi = -Infinity
  for (const s of kept) {
    for (const v of s.values) {
      if (!Number.isFinite(v)) continue
      lo = Math.min(lo, v)
      hi = Math.max(hi, v)
    }
  }
  if (lo > hi) return null
  // One value everywhere: a unit-wide range around it, so the bins have a width.
  if (lo === hi) [lo, hi] = [lo - 0.5, hi + 0.5]
  const edges = Array.from({ length: bins + 1 }, (_, i) => (i === bins ? hi : lo + ((hi - lo) * i) / bins))
  return { metric, edges, rows: kept.map((s) => ({ step: s.step, counts: Array.from(histogram(s.values, lo, hi, bins)) })) }
}

/** A saved selection's indices and its first metric's scores (non-finite scores are written as null). */
function scoreFile(v: unknown): { indices: number[] | null; metric: string; scores: number[] } | null {
  if (!isObject(v) || !isObject(v['metric'])) return null
  const [metric, values] = Object.entries(v['metric'])[0] ?? []
  if (metric === undefined || !Array.isArray(values)) return null
  return { indices: nums(v['indices']), metric, scores: values.map((x) => num(x) ?? NaN) }
}

function selections(lines: Json[], files: RunFiles, domains: { rows: number[] } | null): { points: SelectionPoint[]; scores: Histograms | null } {
  const points: SelectionPoint[] = []
  const scored: { step: number; values: number[] }[] = []
  let metric: string | null = null
  let previous: Set<number> | null = null
  for (const l of lines) {
    if (l['kind'] !== 'select') continue
    const step = num(l['step']) ?? 0
    const saved = scoreFile(files.scoreFiles[str(l['scores_file']) ?? ''])
    if (saved !== null && (metric === null || metric === saved.metric)) {
      metric = saved.metric
      scored.push({ step, values: saved.scores })
    }
    // Beyond 4096 rows a line has only the hash; the saved selection still names the rows (before any top-up).
    const indices = nums(l['indices']) ?? saved?.indices ?? null
    const rows = indices === null ? null : new Set(indices)
    const o = rows !== null && previous !== null ? overlap(previous, rows) : null
    points.push({
      step,
      strategy: str(l['strategy']) ?? '',
      count: num(l['count']) ?? indices?.length ?? 0,
      returned: num(l['returned']),
      unique: rows?.size ?? null,
      jaccard: o?.jaccard ?? null,
      fresh: o?.fresh ?? null,
      perDomain: indices !== null && domains !== null ? countByDomain(indices, domains.rows) : null,
      scores: scoreSummary(l['scores']),
    })
    previous = rows
  }
  return { points, scores: metric === null ? null : sharedHistograms(metric, scored) }
}

function mixes(lines: Json[]): MixPoint[] {
  const out: MixPoint[] = []
  for (const l of lines) {
    const kind = l['kind']
    const steps = pair(l['steps'])
    const sampledWith = nums(l['sampled_with'])
    const proportions = nums(l['proportions'])
    if ((kind !== 'mix' && kind !== 'plan') || steps === null || (sampledWith === null && proportions === null)) continue
    out.push({ step: num(l['step']) ?? 0, steps, kind, proportions, sampledWith, windowLoss: nullableNums(l['window_loss']) })
  }
  return out
}

function weights(lines: Json[]): { points: WeightPoint[]; histograms: Histograms | null } {
  const points: WeightPoint[] = []
  const logged: { step: number; values: number[] }[] = []
  for (const l of lines) {
    if (l['kind'] !== 'weight' || !isObject(l['weights'])) continue
    const w = l['weights']
    const [step, min, mean, max, ess] = [num(l['step']), num(w['min']), num(w['mean']), num(w['max']), num(w['ess'])]
    if (step === null || min === null || mean === null || max === null || ess === null) continue
    points.push({ step, samples: num(l['samples']) ?? 0, min, mean, max, ess })
    const each = nums(l['sample_weights'])
    if (each !== null) logged.push({ step, values: each })
  }
  return { points, histograms: logged.length === 0 ? null : sharedHistograms('weight', logged) }
}

function reorders(lines: Json[]): ReorderPoint[] {
  const out: ReorderPoint[] = []
  for (const l of lines) {
    const steps = pair(l['steps'])
    if (l['kind'] !== 'reorder' || steps === null) continue
    out.push({
      step: num(l['step']) ?? 0,
      steps,
      window: str(l['window']) ?? str(l['stage']) ?? '',
      rescored: l['rescored'] === true,
      tenths: nums(l['score_tenths']),
      scores: scoreSummary(l['scores']),
    })
  }
  return out
}

const TIMING = /^(.+)_(ms|seconds)$/

/** Each line's own time by phase, and the wall time between lines that their decisions do not account for. */
function timings(lines: Json[]): { points: TimingPoint[]; totals: { phase: string; ms: number }[] } {
  const points: TimingPoint[] = []
  const totals = new Map<string, number>()
  let between = 0
  let lastAt: number | null = null
  for (const l of lines) {
    let own = 0
    const t = l['timings']
    if (isObject(t)) {
      for (const [key, value] of Object.entries(t)) {
        const m = TIMING.exec(key)
        const v = num(value)
        // Nested entries (a strategy's own `timing_ms: {...}`) break a phase down; only the top level adds up.
        if (m === null || v === null) continue
        const ms = m[2] === 'seconds' ? v * 1000 : v
        points.push({ step: num(l['step']) ?? 0, phase: m[1]!, ms })
        totals.set(m[1]!, (totals.get(m[1]!) ?? 0) + ms)
        own += ms
      }
    }
    // A line is stamped once its decision is made: the gap since the previous line is training plus this decision.
    const at = Date.parse(str(l['time']) ?? '')
    if (Number.isNaN(at)) continue
    if (lastAt !== null) between += Math.max(0, at - lastAt - own)
    lastAt = at
  }
  const list = [...totals].map(([phase, ms]) => ({ phase, ms }))
  if (between > 0) list.push({ phase: BETWEEN_DECISIONS, ms: between })
  return { points, totals: list }
}

function plainSummary(v: unknown): RunReport['summary'] {
  if (!isObject(v)) return null
  const out: NonNullable<RunReport['summary']> = {}
  for (const [k, x] of Object.entries(v)) {
    if (x === null || typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') out[k] = x
  }
  return out
}

/** The report's model of a run, from its files. */
export function runReport(files: RunFiles): RunReport {
  const problems: string[] = []
  const decisions = jsonLines(files.decisions, 'decisions.jsonl', problems)
  const metrics = jsonLines(files.metrics, 'metrics.jsonl', problems)
  const summary = plainSummary(files.summary)
  const fromSettings = Object.keys(SETTINGS_TYPES).find((k) => files.settings[k] !== undefined)
  const trainType = str(summary?.['train_type']) ?? (fromSettings === undefined ? 'static' : SETTINGS_TYPES[fromSettings]!)
  const settings = fromSettings === undefined ? undefined : files.settings[fromSettings]
  const component = str(summary?.['component']) ?? (isObject(settings) ? str(settings['component']) : null)
  const found = domainsOf(files.settings)
  const domains = found !== null && 'rows' in found ? found : null
  const sel = selections(decisions, files, domains)
  const w = weights(decisions)
  const t = timings(decisions)
  return {
    trainType,
    component,
    summary,
    steps: stepPoints(metrics),
    domains: domains?.names ?? null,
    domainsUnavailable: found !== null && 'unavailable' in found ? found.unavailable : null,
    mixes: mixes(decisions),
    selections: sel.points,
    selectionScores: sel.scores,
    weights: w.points,
    weightHistograms: w.histograms,
    reorders: reorders(decisions),
    timings: t.points,
    phaseTotals: t.totals,
    problems,
  }
}
