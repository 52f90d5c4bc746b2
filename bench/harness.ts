/**
 * What every benchmark suite shares: the machine a run measured (CPU model, its folder name, cores, load, commit),
 * where reports go, the structured results each script writes beside its Markdown report, and the summary (median,
 * min, max, ratios against a baseline) with its Markdown table. `bench/run.ts` drives the suites with it;
 * `bench/figures.ts` reads the summaries back.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { REPO_ROOT } from '../src/bridge/python.ts'

export const RESULTS_ROOT = join(REPO_ROOT, 'bench', 'results')

/** One measured quantity as a script records it: every sample, in run order. */
export interface RawMeasurement {
  unit: string
  samples: number[]
  /** The repeat each sample came from: samples of two quantities with the same tag ran in the same round. */
  tags?: string[]
  /** The key of the quantity this one is compared with (its ratio is this / baseline). */
  baseline?: string
}

export interface RawResults {
  measurements: Record<string, RawMeasurement>
}

export interface Spread {
  median: number
  min: number
  max: number
}

export interface Summary extends Spread {
  unit: string
  samples: number[]
  tags?: string[]
  baseline?: string
  /** this / baseline: of the medians, of the minima, and per round where both ran in the same rounds. */
  ratio?: { of_medians: number; of_mins: number; per_pair?: Spread & { samples: number[] } }
}

export interface Machine {
  cpu_model: string
  cpu_slug: string
  cores: number
  load_before: number[]
  load_after: number[]
  date: string
  git_commit: string
  node: string
}

export interface SuiteResult {
  suite: string
  command: string
  machine: Machine
  /** The script's own Markdown report, relative to the CPU folder. */
  report?: string
  measurements: Record<string, Summary>
}

/** /proc/cpuinfo's "model name" (what separates results of different machines), else Node's view of it. */
export function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))
    if (m) return m[1]!.trim()
  } catch {
    // not Linux: fall through
  }
  return cpus()[0]?.model.trim() || 'unknown-cpu'
}

/** A folder name for a CPU model: "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz" → "intel-xeon-gold-6338-cpu-2-00ghz". */
export function cpuSlug(model: string): string {
  return (
    model
      .toLowerCase()
      .replace(/\((r|tm)\)/g, '')
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-|-$/g, '') || 'unknown-cpu'
  )
}

export function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim()
  } catch {
    return 'unknown'
  }
}

export const loadAverage = (): number[] => loadavg().map((x) => Math.round(x * 100) / 100)

/**
 * Where a script writes its Markdown report: the folder `bench/run.ts` names (the CPU's folder under bench/results),
 * else scratch, so a direct run never overwrites measured results.
 */
export function reportDir(): string {
  return process.env.BENCH_REPORT_DIR ?? join(REPO_ROOT, 'bench', '.work', 'results')
}

/** The structured twin of a report: to the path `bench/run.ts` names, else beside the report as .json. */
export function writeRaw(reportPath: string, raw: RawResults): void {
  const out = process.env.BENCH_JSON ?? reportPath.replace(/\.md$/, '.json')
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(out, JSON.stringify(raw, null, 1) + '\n')
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  if (s.length === 0) return Number.NaN
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

function spread(xs: readonly number[]): Spread {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) }
}

export function summarize(raw: RawResults): Record<string, Summary> {
  const out: Record<string, Summary> = {}
  for (const [key, m] of Object.entries(raw.measurements)) {
    const samples = m.samples.filter((x) => Number.isFinite(x))
    if (samples.length === 0) continue
    const s: Summary = { unit: m.unit, samples: m.samples, ...spread(samples), ...(m.tags ? { tags: m.tags } : {}) }
    const base = m.baseline === undefined ? undefined : raw.measurements[m.baseline]
    if (base) {
      const b = base.samples.filter((x) => Number.isFinite(x))
      s.baseline = m.baseline
      s.ratio = { of_medians: median(samples) / median(b), of_mins: Math.min(...samples) / Math.min(...b) }
      if (m.tags && base.tags) {
        const byTag = new Map(base.tags.map((t, i) => [t, base.samples[i]!]))
        const pairs = m.tags.flatMap((t, i) => {
          const d = byTag.get(t)
          const x = m.samples[i]!
          return d !== undefined && Number.isFinite(d) && Number.isFinite(x) ? [x / d] : []
        })
        if (pairs.length > 0) s.ratio.per_pair = { samples: pairs, ...spread(pairs) }
      }
    }
    out[key] = s
  }
  return out
}

function num(x: number): string {
  if (!Number.isFinite(x)) return '–'
  const a = Math.abs(x)
  return a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : a >= 1 ? x.toFixed(2) : x.toPrecision(3)
}

export function suiteMarkdown(r: SuiteResult): string {
  const m = r.machine
  const lines = [
    `# Benchmark suite \`${r.suite}\``,
    '',
    `\`${r.command}\` at ${r.machine.git_commit}, ${m.date}; ${m.cores} cores (${m.cpu_model}), Node ${m.node}; ` +
      `load average before ${m.load_before.join(' ')}, after ${m.load_after.join(' ')}.`,
    ...(r.report ? ['', `Details, setup and caveats: [${r.report}](${r.report}).`] : []),
    '',
    'Ratio = this quantity / its baseline: of the medians, and per round where both ran in the same round (median, min–max).',
    '',
    '| quantity | unit | n | median | min – max | baseline | × baseline (medians) | × baseline per round |',
    '|---|---|---:|---:|---|---|---:|---|',
  ]
  for (const [key, s] of Object.entries(r.measurements)) {
    const pp = s.ratio?.per_pair
    lines.push(
      `| ${key} | ${s.unit} | ${s.samples.length} | ${num(s.median)} | ${num(s.min)} – ${num(s.max)} | ${s.baseline ?? '–'} | ` +
        `${s.ratio ? s.ratio.of_medians.toFixed(3) : '–'} | ${pp ? `${pp.median.toFixed(3)} (${pp.min.toFixed(3)}–${pp.max.toFixed(3)})` : '–'} |`,
    )
  }
  return lines.join('\n') + '\n'
}

/** Writes `<suite>.json` and `<suite>.md` into the result's CPU folder; returns the JSON path. */
export function writeSuite(r: SuiteResult): string {
  const dir = join(RESULTS_ROOT, r.machine.cpu_slug)
  mkdirSync(dir, { recursive: true })
  const json = join(dir, `${r.suite}.json`)
  writeFileSync(json, JSON.stringify(r, null, 1) + '\n')
  writeFileSync(join(dir, `${r.suite}.md`), suiteMarkdown(r))
  return json
}

export function readSuite(path: string): SuiteResult | undefined {
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as SuiteResult) : undefined
}
