/**
 * One command for every benchmark suite: `npm run bench -- <suite> [options of its script]` or `npm run bench -- all`.
 * Each suite builds what it needs, runs its script with the reports pointed at bench/results/<cpu-slug>/ (so runs on
 * different CPU models never overwrite each other; the scripts' own reports in its reports/ subfolder), and writes
 * <suite>.json (every sample, median, min, max, ratios against the baseline, the machine, load before and after,
 * date, commit) and the table <suite>.md.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { REPO_ROOT } from '../src/bridge/python.ts'
import {
  RESULTS_ROOT,
  cpuModel,
  cpuSlug,
  gitCommit,
  loadAverage,
  summarize,
  writeSuite,
  type RawMeasurement,
  type RawResults,
} from './harness.ts'
import { modelPath } from './models.ts'

interface Suite {
  what: string
  /** The script's Markdown report: its file name in the CPU folder's reports/. */
  report: string
  /** Builds what the runs need (the DataFlex venv, the small model). */
  setup?: () => void
  command: (args: string[]) => string[]
  /** Structured results of a script that writes its own JSON format rather than BENCH_JSON. */
  collect?: () => RawResults
}

const tsx = (script: string) => (args: string[]) => [process.execPath, '--import', 'tsx', script, ...args]
const py = (script: string) => (args: string[]) => [join(REPO_ROOT, 'bench', '.work', 'dataflex-venv', 'bin', 'python'), script, ...args]
const pythonSide = (): void => run(['bash', 'bench/setup-python.sh'], {})
const smallModel = (): void => void modelPath('small')

const SUITES: Record<string, Suite> = {
  overhead: { what: 'static run vs llamafactory-cli train', report: 'static-vs-lf.md', command: tsx('bench/static-vs-lf.ts') },
  select: { what: 'selectors vs the Python DataFlex', report: 'selectors-vs-dataflex.md', command: (a) => ['bash', 'bench/selectors-vs-dataflex.sh', ...a] },
  mix: { what: 'mixing overhead, and vs the Python DataFlex', report: 'mix-overhead.md', setup: pythonSide, command: py('bench/mix_overhead.py') },
  weight: { what: 'reweighting overhead, and vs the Python DataFlex', report: 'weight-overhead.md', setup: pythonSide, command: py('bench/weight_overhead.py') },
  reorder: { what: 'reordering overhead', report: 'reorder-overhead.md', setup: smallModel, command: (a) => ['python3', 'bench/reorder_overhead.py', ...a] },
  bridge: { what: 'bridge round trips and array throughput', report: 'bridge.md', command: tsx('bench/bridge.bench.ts') },
  scale: { what: 'selection at 1k/10k/100k rows', report: 'scale.md', command: tsx('bench/scale.ts') },
  e2e: { what: 'each family end to end vs a static run of the same steps', report: 'e2e.md', setup: smallModel, command: tsx('bench/e2e.ts') },
  quality: {
    what: 'held-out loss of each family vs its baseline (paired seeds)',
    report: '../../quality-study.md',
    command: tsx('bench/quality-study.ts'),
    collect: qualityMeasurements,
  },
}

function run(cmd: string[], env: Record<string, string>): void {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { cwd: REPO_ROOT, stdio: 'inherit', env: { ...process.env, ...env } })
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} exited ${r.status ?? r.signal}`)
}

/** The quality study keeps its own report format (bench/results/quality-study.json); its paired differences are the samples. */
function qualityMeasurements(): RawResults {
  const path = join(RESULTS_ROOT, 'quality-study.json')
  const data = JSON.parse(readFileSync(path, 'utf8')) as {
    comparisons: { data: string; method: string; baseline: string; diffs: number[]; seeds: number[] }[]
  }
  const measurements: Record<string, RawMeasurement> = {}
  for (const c of data.comparisons) {
    measurements[`${c.data}/${c.method}-minus-${c.baseline}/heldout_loss`] = { unit: 'loss', samples: c.diffs, tags: c.seeds.map(String) }
  }
  return { measurements }
}

function runSuite(name: string, args: string[]): void {
  const suite = SUITES[name]!
  const model = cpuModel()
  const slug = cpuSlug(model)
  // The scripts' own reports go to a subfolder: several share their suite's name (bridge.md, scale.md, e2e.md).
  const dir = join(RESULTS_ROOT, slug, 'reports')
  const rawPath = join(REPO_ROOT, 'bench', '.work', `${name}.raw.json`)
  rmSync(rawPath, { force: true })
  const cores = cpus().length
  const before = loadAverage()
  console.log(`[bench] ${name}: ${suite.what}; ${cores} cores (${model}) → ${dir}; load average ${before.join(' ')}`)
  if (before[0]! > cores / 2) {
    console.warn(
      `\n[bench] WARNING: load average ${before[0]} on ${cores} cores: other jobs are running, and wall times will be` +
        ' inflated and noisy. Prefer a quiet machine; the load is recorded in the results.\n',
    )
  }
  const date = new Date().toISOString()
  suite.setup?.()
  run(suite.command(args), {
    BENCH_REPORT_DIR: dir,
    BENCH_JSON: rawPath,
    HF_HUB_OFFLINE: '1',
    HF_DATASETS_OFFLINE: '1',
    TRANSFORMERS_OFFLINE: '1',
  })
  const raw = suite.collect ? suite.collect() : existsSync(rawPath) ? (JSON.parse(readFileSync(rawPath, 'utf8')) as RawResults) : undefined
  if (!raw) throw new Error(`${name}: the script wrote no structured results (${rawPath})`)
  const json = writeSuite({
    suite: name,
    command: `npm run bench -- ${[name, ...args].join(' ')}`,
    machine: {
      cpu_model: model,
      cpu_slug: slug,
      cores,
      load_before: before,
      load_after: loadAverage(),
      date,
      git_commit: gitCommit(),
      node: process.version,
    },
    report: `reports/${suite.report}`,
    measurements: summarize(raw),
  })
  console.log(`[bench] wrote ${json} and ${json.replace(/\.json$/, '.md')}`)
}

const [name, ...args] = process.argv.slice(2)
if (name === 'all') {
  for (const s of Object.keys(SUITES)) runSuite(s, [])
} else if (name && SUITES[name]) {
  runSuite(name, args)
} else {
  console.error('usage: npm run bench -- <suite> [options of its script] | all\n')
  for (const [k, s] of Object.entries(SUITES)) console.error(`  ${k.padEnd(9)} ${s.what}`)
  process.exit(name ? 1 : 0)
}
