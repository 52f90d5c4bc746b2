/**
 * The quality study's numbers, from its runs: paired comparisons (bench/stats.ts) and the Markdown of
 * bench/results/<name>.md and of docs/results.md's results section. Input: the runs' records only, so
 * `--report-only` and a full run write the same thing from the same runs.
 */
import { Rng } from '../src/math/rng.ts'
import { type Direction, type Family, FAMILIES, METHODS, baselinesOf, methodNamed } from './quality-design.ts'
import { type Interval, type PairedSummary, madOutliers, mean, median, pairedSummary, sd } from './stats.ts'

/** Shares per domain, keyed by domain name. */
export type Shares = Record<string, number>

/** What a run did, from its decision lines (each part only where the family logs it). */
export interface RunStats {
  /** Rows trained, from every decision line that lists its rows: shares per domain and the share of wrong rows. */
  trained?: { rows: number; distinct: number; share: Shares; corrupted: number }
  /** Selection: the rows the selector picked (the warm-up not counted) and the time it took. */
  select?: { picked: number; distinct: number; share: Shares; corrupted: number; seconds: number }
  /** Mixing: the proportions the last window was drawn with; DoReMi's average domain weights (the proxy's). */
  mix?: { last: Shares; doremi?: Shares }
  /** Reweighting: mean ESS per micro-batch as a share of it; mean weight / micro-batch mean, per domain and for the wrong rows. */
  weight?: { ess: number; relative: Shares; corrupted: number; cleanTwin: number }
  /** Reordering: the last tenth of the rows trained, per domain and its share of wrong rows. */
  reorder?: { lastTenth: Shares; corrupted: number }
  /**
   * Training stability, from metrics.jsonl: the largest gradient norm (before clipping), the run's median, and the
   * steps whose norm exceeded SPIKE_RATIO × the median.
   */
  training?: { maxGradNorm: number; medianGradNorm: number; spikes: number }
}

/** A step whose gradient norm exceeds this multiple of its run's median counts as a spike. */
export const SPIKE_RATIO = 10

/** RunStats.training of a run's per-step gradient norms (null entries: steps that logged none). */
export function trainingStats(gradNorms: readonly (number | null)[]): RunStats['training'] {
  const g = gradNorms.filter((x): x is number => x !== null && Number.isFinite(x))
  if (g.length === 0) return undefined
  const med = median(g)
  return { maxGradNorm: Math.max(...g), medianGradNorm: med, spikes: g.filter((x) => x > SPIKE_RATIO * med).length }
}

export interface RunResult {
  readonly data: string
  readonly family: Family
  readonly method: string
  readonly seed: number
  readonly model: string
  /** Hash of everything the run depends on (settings, presets, data files, model config); --resume compares it. */
  readonly fingerprint: string
  /** One command line per training process. */
  readonly commands: string[]
  readonly steps: number
  /** Held-out loss per eval set. */
  readonly losses: Record<string, number>
  /** The eval sets' losses weighted by their rows. */
  readonly headline: number
  /** Wall seconds of the method's own processes (DoReMi: proxy + final; its reference is the uniform run). */
  readonly wallSeconds: number
  readonly started: string
  readonly finished: string
  /** Load averages (1, 5, 15 min) before and after. */
  readonly load: { readonly before: number[]; readonly after: number[] }
  readonly stats: RunStats
}

export interface EvalDiff {
  readonly eval: string
  readonly methodMean: number
  readonly baselineMean: number
  readonly meanDiff: number
  readonly ci: Interval
  readonly p: number
}

export interface Outlier {
  readonly seed: number
  readonly diff: number
}

export type Detected = Direction | 'too few seeds'

/** A method against its baseline: the paired summary of the headline held-out loss (diffs: method − baseline). */
export interface Comparison extends PairedSummary {
  readonly data: string
  readonly family: Family
  readonly method: string
  readonly baseline: string
  readonly expected: Direction
  readonly methodMean: number
  readonly baselineMean: number
  readonly detected: Detected
  readonly verdict: string
  readonly agreement: string
  readonly perEval: EvalDiff[]
  /** The eval set whose loss rose most (or fell least) against the baseline. */
  readonly worstEval: string
  /** The largest per-set loss of each run (the worst domain of that run), compared the same way. */
  readonly worstSet: { readonly methodMean: number; readonly baselineMean: number; readonly meanDiff: number; readonly ci: Interval }
  readonly wall: { readonly method: number; readonly baseline: number }
  /** Distinct step counts of the method's and the baseline's runs (equal steps: one and the same number). */
  readonly steps: { readonly method: number[]; readonly baseline: number[] }
  readonly outliers: Outlier[]
}

export const BOOTSTRAP_RESAMPLES = 10_000
/** Seed of every bootstrap stream; each comparison and metric derives its own from it. */
export const STUDY_SEED = 20261203

const bootSeed = (...keys: string[]): number => Rng.derive(STUDY_SEED, ...keys).u32()

/**
 * Fewest seeds that get a verdict: a percentile bootstrap of 2–4 values is little more than their range, and the
 * exact Wilcoxon test cannot reach p < 0.05 below 6.
 */
export const MIN_SEEDS = 5

function detect(n: number, ci: Interval): Detected {
  if (n < MIN_SEEDS) return 'too few seeds'
  if (ci.hi < 0) return 'lower'
  if (ci.lo > 0) return 'higher'
  return 'none'
}

/** The verdict follows the bootstrap interval; a Wilcoxon p ≥ 0.05 beside an interval clear of 0 is said too. */
function verdictOf(d: Detected, baseline: string, p: number): string {
  const weak = p >= 0.05 ? ' (but Wilcoxon p ≥ 0.05)' : ''
  switch (d) {
    case 'lower':
      return `lower held-out loss than ${baseline}${weak}`
    case 'higher':
      return `higher held-out loss than ${baseline} (worse)${weak}`
    case 'none':
      return 'no effect detected'
    case 'too few seeds':
      return `too few seeds (fewer than ${MIN_SEEDS})`
  }
}

function agreementOf(expected: Direction, d: Detected): string {
  if (d === 'too few seeds') return '–'
  if (d === expected) return 'as expected'
  if (d === 'none') return 'expected effect not detected'
  return expected === 'none' ? 'unexpected effect' : 'contrary to expectation'
}

const bySeed = (runs: readonly RunResult[], value: (r: RunResult) => number): Map<number, number> => new Map(runs.map((r) => [r.seed, value(r)]))
const worstLoss = (r: RunResult): number => Math.max(...Object.values(r.losses))

/** Every (method, baseline) pair with runs on both sides, per data set, in the design's order. */
export function compare(runs: readonly RunResult[]): Comparison[] {
  const out: Comparison[] = []
  const datas = [...new Set(runs.map((r) => r.data))]
  for (const data of datas) {
    for (const m of METHODS) {
      if (m.baseline || m.expected === undefined) continue
      const mine = runs.filter((r) => r.data === data && r.method === m.name)
      if (mine.length === 0) continue
      for (const b of baselinesOf(m)) {
        const theirs = runs.filter((r) => r.data === data && r.method === b.name)
        const common = new Set(mine.map((r) => r.seed).filter((s) => theirs.some((t) => t.seed === s)))
        if (common.size === 0) continue
        const ms = mine.filter((r) => common.has(r.seed))
        const bs = theirs.filter((r) => common.has(r.seed))
        const key = [data, m.name, b.name]
        const head = pairedSummary(bySeed(ms, (r) => r.headline), bySeed(bs, (r) => r.headline), { seed: bootSeed(...key, 'headline'), resamples: BOOTSTRAP_RESAMPLES })
        const evals = Object.keys(ms[0]!.losses)
        const perEval = evals.map((e): EvalDiff => {
          const s = pairedSummary(bySeed(ms, (r) => r.losses[e]!), bySeed(bs, (r) => r.losses[e]!), { seed: bootSeed(...key, e), resamples: BOOTSTRAP_RESAMPLES })
          return { eval: e, methodMean: mean(ms.map((r) => r.losses[e]!)), baselineMean: mean(bs.map((r) => r.losses[e]!)), meanDiff: s.meanDiff, ci: s.ci, p: s.wilcoxon.p }
        })
        const worst = pairedSummary(bySeed(ms, worstLoss), bySeed(bs, worstLoss), { seed: bootSeed(...key, 'worst'), resamples: BOOTSTRAP_RESAMPLES })
        const expected = m.expected(data, b.name)
        const detected = detect(head.seeds.length, head.ci)
        out.push({
          data,
          family: m.family,
          method: m.name,
          baseline: b.name,
          expected,
          seeds: head.seeds,
          diffs: head.diffs,
          methodMean: mean(ms.map((r) => r.headline)),
          baselineMean: mean(bs.map((r) => r.headline)),
          meanDiff: head.meanDiff,
          sdDiff: head.sdDiff,
          ci: head.ci,
          wilcoxon: head.wilcoxon,
          lower: head.lower,
          higher: head.higher,
          detected,
          verdict: verdictOf(detected, b.name, head.wilcoxon.p),
          agreement: agreementOf(expected, detected),
          perEval,
          worstEval: perEval.reduce((a, e) => (e.meanDiff > a.meanDiff ? e : a)).eval,
          worstSet: { methodMean: mean(ms.map(worstLoss)), baselineMean: mean(bs.map(worstLoss)), meanDiff: worst.meanDiff, ci: worst.ci },
          wall: { method: mean(ms.map((r) => r.wallSeconds)), baseline: mean(bs.map((r) => r.wallSeconds)) },
          steps: { method: [...new Set(ms.map((r) => r.steps))], baseline: [...new Set(bs.map((r) => r.steps))] },
          outliers: madOutliers(head.diffs).map((i) => ({ seed: head.seeds[i]!, diff: head.diffs[i]! })),
        })
      }
    }
  }
  return out
}

// ---------------------------------------------------------------- Markdown

const f4 = (x: number): string => x.toFixed(4)
const signed = (x: number): string => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(4)}`
const ci = (i: Interval): string => `[${signed(i.lo)}, ${signed(i.hi)}]`
const pct = (x: number): string => `${(100 * x).toFixed(1)}%`
const pv = (p: number): string => (p >= 0.001 ? p.toFixed(3) : p.toExponential(1))
const shares = (s: Shares | undefined): string =>
  s === undefined
    ? '–'
    : Object.entries(s)
        .map(([k, v]) => `${k} ${pct(v)}`)
        .join(', ')

const ratios = (s: Shares): string =>
  Object.entries(s)
    .map(([k, v]) => `${k} ${v.toFixed(3)}`)
    .join(', ')

function meanShares(list: (Shares | undefined)[]): Shares | undefined {
  const present = list.filter((s): s is Shares => s !== undefined)
  if (present.length === 0) return undefined
  const keys = Object.keys(present[0]!)
  return Object.fromEntries(keys.map((k) => [k, mean(present.map((s) => s[k] ?? 0))]))
}

/** One line per comparison; the table of docs/results.md and of the report. */
export function summaryTable(cs: readonly Comparison[]): string[] {
  return [
    '| family | method − baseline | expected | mean Δ held-out loss [95% bootstrap CI] | Wilcoxon p | seeds lower / higher | verdict | against expectation | worst domain (mean Δ) | wall s, method / baseline |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...cs.map((c) => {
      const w = c.perEval.find((e) => e.eval === c.worstEval)!
      return (
        `| ${c.family} | ${c.method} − ${c.baseline} | ${c.expected} | **${signed(c.meanDiff)}** ${ci(c.ci)} | ${pv(c.wilcoxon.p)}${c.wilcoxon.exact ? '' : ' (normal)'} | ` +
        `${c.lower} / ${c.higher} of ${c.seeds.length} | ${c.verdict} | ${c.agreement} | ${c.worstEval} (${signed(w.meanDiff)}) | ${c.wall.method.toFixed(0)} / ${c.wall.baseline.toFixed(0)} |`
      )
    }),
  ]
}

function methodTable(runs: readonly RunResult[], evals: readonly string[]): string[] {
  const methods = METHODS.filter((m) => runs.some((r) => r.method === m.name))
  return [
    `| family | method | headline held-out loss (mean ± sd) | ${evals.join(' | ')} | worst set | steps | seeds | wall per run, s |`,
    `|---|---|---|${evals.map(() => '---|').join('')}---|---|---|---|`,
    ...methods.map((m) => {
      const rs = runs.filter((r) => r.method === m.name)
      const h = rs.map((r) => r.headline)
      return (
        `| ${m.family} | ${m.name}${m.baseline ? ' (baseline)' : ''} | ${f4(mean(h))} ± ${f4(sd(h))} | ${evals.map((e) => f4(mean(rs.map((r) => r.losses[e]!)))).join(' | ')} | ` +
        `${f4(mean(rs.map(worstLoss)))} | ${[...new Set(rs.map((r) => r.steps))].join(', ')} | ${rs.length} | ${mean(rs.map((r) => r.wallSeconds)).toFixed(0)} |`
      )
    }),
  ]
}

function perEvalTable(cs: readonly Comparison[]): string[] {
  return [
    '| method − baseline | eval set | method | baseline | mean Δ [95% CI] | Wilcoxon p |',
    '|---|---|---|---|---|---|',
    ...cs.flatMap((c) => c.perEval.map((e) => `| ${c.method} − ${c.baseline} | ${e.eval} | ${f4(e.methodMean)} | ${f4(e.baselineMean)} | ${signed(e.meanDiff)} ${ci(e.ci)} | ${pv(e.p)} |`)),
    '',
    'Worst domain of each run (its highest held-out loss over the sets), method vs baseline:',
    '',
    '| method − baseline | method | baseline | mean Δ [95% CI] |',
    '|---|---|---|---|',
    ...cs.map((c) => `| ${c.method} − ${c.baseline} | ${f4(c.worstSet.methodMean)} | ${f4(c.worstSet.baselineMean)} | ${signed(c.worstSet.meanDiff)} ${ci(c.worstSet.ci)} |`),
  ]
}

/** One line of what a run did, for the tables of means and for the outliers. */
export function statsLine(s: RunStats): string {
  const parts: string[] = []
  if (s.select) parts.push(`picked ${s.select.picked} (${s.select.distinct} distinct): ${shares(s.select.share)}; wrong rows ${pct(s.select.corrupted)}; selection ${s.select.seconds.toFixed(1)} s`)
  else if (s.trained) parts.push(`trained ${s.trained.rows} rows (${s.trained.distinct} distinct): ${shares(s.trained.share)}; wrong rows ${pct(s.trained.corrupted)}`)
  if (s.mix) parts.push(`last window drawn with ${shares(s.mix.last)}${s.mix.doremi ? `; DoReMi average weights ${shares(s.mix.doremi)}` : ''}`)
  if (s.weight)
    parts.push(
      `ESS ${pct(s.weight.ess)} of a micro-batch; weight / its micro-batch's mean: ${ratios(s.weight.relative)}; wrong rows ${s.weight.corrupted.toFixed(3)}, ` +
        `their domain's right rows ${s.weight.cleanTwin.toFixed(3)}`,
    )
  if (s.reorder) parts.push(`last tenth of the rows trained: ${shares(s.reorder.lastTenth)}; wrong rows ${pct(s.reorder.corrupted)}`)
  if (s.training) parts.push(`grad norm max ${s.training.maxGradNorm.toFixed(1)} (median ${s.training.medianGradNorm.toFixed(2)}), ${Number.isInteger(s.training.spikes) ? s.training.spikes : s.training.spikes.toFixed(1)} spike step(s)`)
  return parts.join('; ') || '–'
}

function meanStats(rs: readonly RunResult[]): RunStats {
  const out: RunStats = {}
  const t = rs.map((r) => r.stats.trained).filter((x) => x !== undefined)
  if (t.length > 0) out.trained = { rows: mean(t.map((x) => x.rows)), distinct: mean(t.map((x) => x.distinct)), share: meanShares(t.map((x) => x.share))!, corrupted: mean(t.map((x) => x.corrupted)) }
  const s = rs.map((r) => r.stats.select).filter((x) => x !== undefined)
  if (s.length > 0)
    out.select = { picked: mean(s.map((x) => x.picked)), distinct: Math.round(mean(s.map((x) => x.distinct))), share: meanShares(s.map((x) => x.share))!, corrupted: mean(s.map((x) => x.corrupted)), seconds: mean(s.map((x) => x.seconds)) }
  const m = rs.map((r) => r.stats.mix).filter((x) => x !== undefined)
  if (m.length > 0) out.mix = { last: meanShares(m.map((x) => x.last))!, ...(m.some((x) => x.doremi) ? { doremi: meanShares(m.map((x) => x.doremi))! } : {}) }
  const w = rs.map((r) => r.stats.weight).filter((x) => x !== undefined)
  if (w.length > 0) out.weight = { ess: mean(w.map((x) => x.ess)), relative: meanShares(w.map((x) => x.relative))!, corrupted: mean(w.map((x) => x.corrupted)), cleanTwin: mean(w.map((x) => x.cleanTwin)) }
  const o = rs.map((r) => r.stats.reorder).filter((x) => x !== undefined)
  if (o.length > 0) out.reorder = { lastTenth: meanShares(o.map((x) => x.lastTenth))!, corrupted: mean(o.map((x) => x.corrupted)) }
  const g = rs.map((r) => r.stats.training).filter((x) => x !== undefined)
  if (g.length > 0) out.training = { maxGradNorm: mean(g.map((x) => x.maxGradNorm)), medianGradNorm: mean(g.map((x) => x.medianGradNorm)), spikes: mean(g.map((x) => x.spikes)) }
  return out
}

/**
 * Per method: how many runs had a gradient-norm spike, and the mean headline loss of those runs against the others.
 * It tells a method that destabilises training on some seeds from one whose effect is steady.
 */
export function stabilityTable(rs: readonly RunResult[]): string[] {
  const rows = METHODS.filter((m) => rs.some((r) => r.method === m.name)).map((m) => {
    const mine = rs.filter((r) => r.method === m.name && r.stats.training !== undefined)
    const spiky = mine.filter((r) => r.stats.training!.spikes > 0)
    const calm = mine.filter((r) => r.stats.training!.spikes === 0)
    const headline = (xs: readonly RunResult[]): string => (xs.length === 0 ? '–' : f4(mean(xs.map((r) => r.headline))))
    const seeds = spiky.map((r) => `${r.seed} (${r.stats.training!.spikes}, max ${r.stats.training!.maxGradNorm.toFixed(0)})`).join(', ')
    return `| ${m.name} | ${spiky.length} of ${mine.length} | ${headline(spiky)} | ${headline(calm)} | ${seeds || '–'} |`
  })
  return [
    `| method | runs with a spike | mean headline, those runs | mean headline, the others | seeds (spike steps, max norm) |`,
    '|---|---|---|---|---|',
    ...rows,
  ]
}

function outlierLines(cs: readonly Comparison[], runs: readonly RunResult[]): string[] {
  const flagged = cs.filter((c) => c.outliers.length > 0)
  if (flagged.length === 0) return ['No paired difference lies beyond 3 scaled MADs of its comparison\'s median.']
  const find = (c: Comparison, method: string, seed: number): RunResult => runs.find((r) => r.data === c.data && r.method === method && r.seed === seed)!
  const lines: string[] = []
  for (const c of flagged) {
    const med = [...c.diffs].sort((a, b) => a - b)
    lines.push(`**${c.method} − ${c.baseline}** (median Δ ${signed(med[Math.floor((med.length - 1) / 2)]!)} over ${c.seeds.length} seeds):`, '')
    for (const o of c.outliers) {
      const m = find(c, c.method, o.seed)
      const b = find(c, c.baseline, o.seed)
      const sets = Object.keys(m.losses)
      lines.push(
        `- seed ${o.seed}: Δ ${signed(o.diff)} (${c.method} ${f4(m.headline)}, ${c.baseline} ${f4(b.headline)})`,
        `  - per set, ${c.method} / ${c.baseline}: ${sets.map((e) => `${e} ${f4(m.losses[e]!)} / ${f4(b.losses[e]!)}`).join('; ')}`,
        `  - ${c.method}: ${statsLine(m.stats)}`,
        `  - ${c.baseline}: ${statsLine(b.stats)}`,
      )
    }
    lines.push('')
  }
  return lines
}

function perSeedTable(runs: readonly RunResult[], evals: readonly string[]): string[] {
  const sorted = [...runs].sort((a, b) => FAMILIES.indexOf(a.family) - FAMILIES.indexOf(b.family) || METHODS.indexOf(methodNamed(a.method)) - METHODS.indexOf(methodNamed(b.method)) || a.seed - b.seed)
  return [
    `| method | seed | headline | ${evals.join(' | ')} | steps | wall s | load before → after |`,
    `|---|---|---|${evals.map(() => '---|').join('')}---|---|---|`,
    ...sorted.map(
      (r) =>
        `| ${r.method} | ${r.seed} | ${f4(r.headline)} | ${evals.map((e) => f4(r.losses[e]!)).join(' | ')} | ${r.steps} | ${r.wallSeconds.toFixed(0)} | ${r.load.before[0]!.toFixed(2)} → ${r.load.after[0]!.toFixed(2)} |`,
    ),
  ]
}

export interface StudyMeta {
  readonly name: string
  readonly command: string
  readonly date: string
  readonly commit: string
  readonly cpu: string
  readonly cores: number
  /** OMP_NUM_THREADS of every run. */
  readonly threads?: string
  readonly model: string
  readonly smoke: boolean
  readonly seeds: number[]
  readonly data: Record<string, { readonly about: string; readonly evals: readonly { readonly name: string; readonly rows: number; readonly weight: number }[]; readonly schedule: Record<Family, number> }>
  /** (data, method, seed) asked for with no finished run. */
  readonly missing: string[]
}

/** The per-data-set results section: summary table and plot (docs/results.md shows this part). */
export function resultsSection(meta: StudyMeta, cs: readonly Comparison[], imgPrefix: string, data: string): string[] {
  const mine = cs.filter((c) => c.data === data)
  return [
    `### ${data} data`,
    '',
    ...(mine.length === 0 ? ['No comparison has runs on both sides yet.'] : summaryTable(mine)),
    '',
    `![paired differences per seed, ${data} data](${imgPrefix}${meta.name}-${data}.png)`,
    '',
  ]
}

/** docs/results.md's generated part: what ran, then each data set's summary table and plot. */
export function docsSection(meta: StudyMeta, cs: readonly Comparison[]): string {
  return [
    `${meta.seeds.length} seeds (${meta.seeds.join(', ')}), the ${meta.model} model, commit ${meta.commit}, ${meta.date}, ${meta.cpu}.`,
    `Per eval set, what each method trained on, outliers and every run: [bench/results/${meta.name}.md](../bench/results/${meta.name}.md).`,
    ...(meta.missing.length > 0 ? ['', `Missing runs: ${meta.missing.length} (listed in the report).`] : []),
    '',
    ...Object.keys(meta.data).flatMap((d) => resultsSection(meta, cs, 'img/', d)),
  ].join('\n')
}

export const DOCS_BEGIN = '<!-- quality-study:begin (generated by bench/quality-study.ts from bench/results/quality-study.json) -->'
export const DOCS_END = '<!-- quality-study:end -->'

/** `text` with what lies between DOCS_BEGIN and DOCS_END replaced by `body` (the markers stay). */
export function replaceGenerated(text: string, body: string): string {
  const a = text.indexOf(DOCS_BEGIN)
  const b = text.indexOf(DOCS_END)
  if (a < 0 || b < a) throw new Error(`docs/results.md lacks the markers ${DOCS_BEGIN} … ${DOCS_END}`)
  return `${text.slice(0, a + DOCS_BEGIN.length)}\n\n${body.trim()}\n\n${text.slice(b)}`
}

export function reportMarkdown(meta: StudyMeta, runs: readonly RunResult[], cs: readonly Comparison[]): string {
  const lines = [
    `# Quality study${meta.smoke ? ' (SMOKE RUN: a few steps per run; the numbers mean nothing)' : ''}`,
    '',
    `Generated by \`${meta.command}\` on ${meta.date} at commit ${meta.commit}, ${meta.cpu} (${meta.cores} cores; torch threads per run: ${meta.threads ?? 'unset'}). Model: ${meta.model}.`,
    `Seeds: ${meta.seeds.join(', ')}. Design, expected directions and how to reproduce: [docs/results.md](../../docs/results.md).`,
    'Every number is a held-out loss (lower is better); Δ = method − baseline at the same seed; the headline loss weights',
    'each eval set by its rows. CI: percentile bootstrap of the mean Δ (10 000 resamples, seeded); Wilcoxon: signed-rank,',
    'two-sided, exact for n ≤ 20. "No effect detected" = the 95% interval contains 0.',
    '',
  ]
  if (meta.missing.length > 0) lines.push(`**Missing runs** (asked for, not finished): ${meta.missing.join(', ')}.`, '')
  const unequal = cs.filter((c) => c.steps.method.length !== 1 || c.steps.baseline.length !== 1 || c.steps.method[0] !== c.steps.baseline[0])
  if (unequal.length > 0)
    lines.push(`**Unequal steps** (method / baseline): ${unequal.map((c) => `${c.data} ${c.method} − ${c.baseline} (${c.steps.method.join(', ')} / ${c.steps.baseline.join(', ')})`).join('; ')}.`, '')
  for (const [data, d] of Object.entries(meta.data)) {
    const rs = runs.filter((r) => r.data === data)
    const mine = cs.filter((c) => c.data === data)
    const evals = d.evals.map((e) => e.name)
    lines.push(
      `## ${data} data`,
      '',
      `${d.about}. Headline weights: ${d.evals.map((e) => `${e.name} ${e.weight.toFixed(3)}`).join(', ')}. Steps per run: ${Object.entries(d.schedule)
        .map(([f, s]) => `${f} ${s}`)
        .join(', ')}.`,
      '',
      ...resultsSection(meta, cs, '../../docs/img/', data).slice(2),
      '### Held-out loss per method',
      '',
      ...methodTable(rs, evals),
      '',
      '### Per eval set, paired',
      '',
      ...perEvalTable(mine),
      '',
      '### What the methods did (means over seeds)',
      '',
      '| method | what it trained on / how it weighed |',
      '|---|---|',
      ...METHODS.filter((m) => rs.some((r) => r.method === m.name)).map((m) => `| ${m.name} | ${statsLine(meanStats(rs.filter((r) => r.method === m.name)))} |`),
      '',
      `### Training stability (a spike: a step whose gradient norm before clipping exceeds ${SPIKE_RATIO}× its run's median)`,
      '',
      ...stabilityTable(rs),
      '',
      '### Outliers (paired difference beyond 3 scaled MADs of the median)',
      '',
      ...outlierLines(mine, rs),
      '',
      '### Every run',
      '',
      ...perSeedTable(rs, evals),
      '',
    )
  }
  return lines.join('\n')
}
