/**
 * Figures in the README and docs are generated from the suites' JSON of one reference CPU, never typed: a span
 * `<!-- fig:KEY -->76×<!-- /fig -->` holds the value of KEY as bench/figures.json defines it (suite, path into the
 * suite's JSON, format). `npx tsx bench/figures.ts` rewrites every span; `--check` only reports, and exits 1 when a
 * span is stale or names a key or value that does not exist (test/figures.test.ts runs it).
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { basename, dirname, join, relative } from 'node:path'
import { REPO_ROOT } from '../src/bridge/python.ts'
import { RESULTS_ROOT } from './harness.ts'

interface Figure {
  suite: string
  path: string[]
  /** Show 1 / value (a speed-up from a time ratio). */
  invert?: boolean
  digits: number
  suffix?: string
}

interface FigureConfig {
  reference_cpu: string
  /** Markdown files to fill, relative to the repository; `dir/*.md` is every .md of that folder. */
  files: string[]
  figures: Record<string, Figure>
}

const SPAN = /<!-- fig:([\w.\-/]+) -->(.*?)<!-- \/fig -->/g

export function loadConfig(): FigureConfig {
  return JSON.parse(readFileSync(join(REPO_ROOT, 'bench', 'figures.json'), 'utf8')) as FigureConfig
}

function markdownFiles(cfg: FigureConfig): string[] {
  return cfg.files.flatMap((f) => {
    if (!f.endsWith('/*.md')) return [join(REPO_ROOT, f)]
    const d = join(REPO_ROOT, dirname(f))
    return readdirSync(d)
      .filter((n) => n.endsWith('.md'))
      .sort()
      .map((n) => join(d, n))
  })
}

/** The text of a figure, or an error message. */
export function figureText(cfg: FigureConfig, key: string): { text: string } | { error: string } {
  const fig = cfg.figures[key]
  if (!fig) return { error: `unknown figure ${key} (not in bench/figures.json)` }
  const file = join(RESULTS_ROOT, cfg.reference_cpu, `${fig.suite}.json`)
  let v: unknown
  try {
    v = JSON.parse(readFileSync(file, 'utf8'))
  } catch {
    return { error: `${key}: no ${relative(REPO_ROOT, file)}` }
  }
  for (const p of fig.path) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[p] : undefined
  if (typeof v !== 'number' || !Number.isFinite(v)) return { error: `${key}: ${fig.path.join(' → ')} is not a number in ${relative(REPO_ROOT, file)}` }
  const x = fig.invert ? 1 / v : v
  return { text: `${x.toFixed(fig.digits)}${fig.suffix ?? ''}` }
}

export interface FigureProblem {
  file: string
  key: string
  problem: string
}

/** Fills (or, with write false, only checks) every span; returns what was stale or missing. */
export function fillFigures(write: boolean): FigureProblem[] {
  const cfg = loadConfig()
  const problems: FigureProblem[] = []
  for (const file of markdownFiles(cfg)) {
    const md = readFileSync(file, 'utf8')
    const out = md.replace(SPAN, (span, key: string, shown: string) => {
      const got = figureText(cfg, key)
      const rel = relative(REPO_ROOT, file)
      if ('error' in got) {
        problems.push({ file: rel, key, problem: got.error })
        return span
      }
      if (got.text !== shown) problems.push({ file: rel, key, problem: `shows ${shown}, the JSON gives ${got.text}` })
      return `<!-- fig:${key} -->${got.text}<!-- /fig -->`
    })
    if (write && out !== md) writeFileSync(file, out)
  }
  return problems
}

if (process.argv[1] && basename(process.argv[1]).startsWith('figures.')) {
  const check = process.argv.includes('--check')
  const problems = fillFigures(!check)
  for (const p of problems) console.log(`${p.file}: ${p.key}: ${p.problem}`)
  const missing = problems.filter((p) => !p.problem.startsWith('shows '))
  if (check ? problems.length > 0 : missing.length > 0) process.exit(1)
  console.log(check ? 'figures: all up to date' : `figures: ${problems.length - missing.length} updated`)
}
