/**
 * One-off: the suite JSON of reports measured before bench/run.ts existed, parsed from their Markdown tables, so the
 * figures have a source without re-running a benchmark. Keys are those the scripts write now
 * (selectors_vs_dataflex.py's `structured`, static-vs-lf.ts); each file says `imported_from`.
 *
 * usage: npx tsx bench/import-md.ts [cpu-slug=amd-epyc]
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { RESULTS_ROOT, gitCommit, summarize, writeSuite, type Machine, type RawMeasurement } from './harness.ts'

const slug = process.argv[2] ?? 'amd-epyc'
const dir = join(RESULTS_ROOT, slug)

/** The rows of the first Markdown table after `heading` (or the first table), as cells. */
function table(md: string, heading?: string): string[][] {
  const from = heading ? md.indexOf(heading) : 0
  if (from < 0) throw new Error(`no ${heading}`)
  const lines = md.slice(from).split('\n')
  const start = lines.findIndex((l) => l.startsWith('|'))
  const rows: string[][] = []
  for (const l of lines.slice(start + 2)) {
    if (!l.startsWith('|')) break
    rows.push(l.split('|').slice(1, -1).map((c) => c.trim()))
  }
  return rows
}

function machine(md: string, date: string): Machine {
  return { cpu_model: 'AMD EPYC', cpu_slug: slug, cores: 2, load_before: [], load_after: [], date, git_commit: `unknown (imported at ${gitCommit()})`, node: 'unknown' }
}

function importSelect(): void {
  const file = `reports/selectors-vs-dataflex.md`
  const md = readFileSync(join(dir, file), 'utf8')
  const ms: Record<string, RawMeasurement> = {}
  const add = (key: string, unit: string, x: number, tag: string, baseline?: string): void => {
    const m = (ms[key] ??= { unit, samples: [], tags: [], ...(baseline ? { baseline } : {}) })
    m.samples.push(x)
    m.tags!.push(tag)
  }
  const rows = table(md, '## Every run')
  const caseKey = (label: string): string => {
    const m = /^(\w+) \/ (\w+)( \(max_samples (\d+)\))?$/.exec(label)
    if (!m) throw new Error(`case ${label}`)
    return `${m[1]}/${m[2]}${m[4] ? `-cap${m[4]}` : ''}`
  }
  const hasDataflex = new Set(rows.filter((r) => r[1] === 'dataflex').map((r) => caseKey(r[0]!)))
  for (const r of rows) {
    const k = caseKey(r[0]!)
    const side = r[1]!
    const tag = r[3]!
    const wall = r[4]!.split(',').reduce((a, x) => a + Number(x), 0)
    const pss = Number(r[8]!.split('/')[0])
    const base = (key: string): string | undefined => (side === 'ours' && hasDataflex.has(k) ? `${k}/dataflex/${key}` : undefined)
    add(`${k}/${side}/select_wall_s`, 's', wall, tag, base('select_wall_s'))
    add(`${k}/${side}/select_tree_cpu_s`, 's', Number(r[5]), tag, base('select_tree_cpu_s'))
    add(`${k}/${side}/rows_per_s`, 'rows/s', Number(r[6]), tag, base('rows_per_s'))
    add(`${k}/${side}/peak_pss_mb`, 'MB', pss, tag, base('peak_pss_mb'))
  }
  // DataFlex-only variants against ours on the plain selector, as the script pairs them.
  for (const k of Object.keys(ms)) {
    const m = /^(\w+)\/loss_bs1\/dataflex\/(select_wall_s|select_tree_cpu_s)$/.exec(k)
    if (m) ms[`${m[1]}/loss_bs1/ours/${m[2]}`] = { ...ms[`${m[1]}/loss/ours/${m[2]}`]!, baseline: k }
  }
  const date = /started (\d{4}-\d\d-\d\d \d\d:\d\d)/.exec(md)?.[1] ?? 'unknown'
  writeSuite({ suite: 'select', command: 'bench/selectors-vs-dataflex.sh --repeats 3', machine: machine(md, date), report: file, imported_from: `bench/results/${slug}/${file}`, measurements: summarize({ measurements: ms }) })
}

function importOverhead(): void {
  const file = 'reports/static-vs-lf.md'
  const md = readFileSync(join(dir, file), 'utf8')
  const ms: Record<string, RawMeasurement> = {}
  for (const r of table(md)) {
    const name = r[0] === 'llamafactory-cli train' ? 'llamafactory-cli' : 'dataflex'
    const samples = r[2]!.split(',').map(Number)
    ms[`${name}/wall_s`] = { unit: 's', samples, tags: samples.map((_, i) => `p${i}`), ...(name === 'dataflex' ? { baseline: 'llamafactory-cli/wall_s' } : {}) }
  }
  writeSuite({ suite: 'overhead', command: 'npx tsx bench/static-vs-lf.ts configs/demo.yaml 10', machine: machine(md, 'unknown (report written the same day as its earlier runs)'), report: file, imported_from: `bench/results/${slug}/${file}`, measurements: summarize({ measurements: ms }) })
}

function importScale(): void {
  const file = 'reports/scale.md'
  const md = readFileSync(join(dir, file), 'utf8')
  const ms: Record<string, RawMeasurement> = {}
  for (const r of table(md)) {
    const [n, strategy] = [r[0]!, r[1]!]
    const base = strategy === 'random' ? undefined : `${n}/random`
    const q = (key: string, unit: string, x: number, compare: boolean): void => {
      ms[`${n}/${strategy}/${key}`] = { unit, samples: [x], ...(compare && base ? { baseline: `${base}/${key}` } : {}) }
    }
    q('select_s', 's', Number(r[2]), false)
    q('node_peak_mib', 'MiB', Number(r[4]), true)
    q('sidecar_peak_mib', 'MiB', Number(r[5]), true)
    q('run_wall_s', 's', Number(r[6]), true)
  }
  const date = /Started (\d{4}-\d\d-\d\d \d\d:\d\d)/.exec(md)?.[1] ?? 'unknown'
  writeSuite({ suite: 'scale', command: 'npx tsx bench/scale.ts', machine: machine(md, date), report: file, imported_from: `bench/results/${slug}/${file}`, measurements: summarize({ measurements: ms }) })
}

importSelect()
importOverhead()
importScale()
