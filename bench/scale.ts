/**
 * Selection at pool sizes 1k / 10k / 100k (docs/select.md#large-pools): for each size and strategy, one
 * `dataflex train` run on a synthetic pool (bench/make-synthetic-pool.ts) that makes exactly one selection before
 * its single training step. Reports the selection's time (the decision log's select_ms and the selector's own
 * timing_ms) and the peak resident memory (VmHWM from /proc/<pid>/status, polled every 200 ms) of the Node process
 * and of the Python sidecar. `random` is the baseline: what a run holds whatever the selector.
 *
 * usage: npx tsx bench/scale.ts [sizes=1000,10000,100000] [strategies=random,less,cluster_less] [model=tiny]
 * writes scale.md and its structured twin (.json) into bench/harness.ts's reportDir() for the default sizes,
 * bench/.work/scale/scale.md for any other set.
 * Linux only (/proc).
 */
import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { join, relative } from 'node:path'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { makeSyntheticPool } from './make-synthetic-pool.ts'
import { reportDir, writeRaw, type RawMeasurement } from './harness.ts'
import { modelPath } from './models.ts'

const DEFAULT_SIZES = '1000,10000,100000'
const sizesArg = process.argv[2] ?? DEFAULT_SIZES
const sizes = sizesArg.split(',').map(Number)
const strategies = (process.argv[3] ?? 'random,less,cluster_less').split(',')
const model = modelPath(process.argv[4] ?? 'tiny')
const work = join(REPO_ROOT, 'bench', '.work', 'scale')
const report = sizesArg === DEFAULT_SIZES ? join(reportDir(), 'scale.md') : join(work, 'scale.md')

// Presets of the run: LESS at the paper's d = 8192; cluster_less with its defaults (k = N / 64, Lloyd up to
// minibatch_threshold = 10k rows, mini-batch k-means and an on-disk embedding file above).
const COMPONENTS = `selectors:
  random:
    name: random
    params: {}
  less:
    name: less
    params: {proj_dim: 8192, seed: 123}
  cluster_less:
    name: cluster_less
    params: {proj_dim: 8192, seed: 123}
`

/** Peak RSS (kB) seen per process of the tree under `root`, by command name. */
class PeakMemory {
  readonly peaks = new Map<number, { comm: string; hwmKb: number }>()

  constructor(private readonly root: number) {}

  poll(): void {
    const parent = new Map<number, number>()
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue
      try {
        // comm may hold spaces and parentheses: the fields after the last ')' are fixed.
        const stat = readFileSync(`/proc/${e}/stat`, 'utf8')
        parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]))
      } catch {
        // the process ended between readdir and read
      }
    }
    const tree = new Set([this.root])
    for (let grew = true; grew; ) {
      grew = false
      for (const [pid, ppid] of parent) {
        if (tree.has(ppid) && !tree.has(pid)) {
          tree.add(pid)
          grew = true
        }
      }
    }
    for (const pid of tree) {
      try {
        const status = readFileSync(`/proc/${pid}/status`, 'utf8')
        const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0)
        const comm = /Name:\s+(\S+)/.exec(status)?.[1] ?? '?'
        const prev = this.peaks.get(pid)
        if (!prev || hwm > prev.hwmKb) this.peaks.set(pid, { comm, hwmKb: hwm })
      } catch {
        // gone
      }
    }
  }

  /** Largest peak among processes whose name starts with `prefix`, in MiB. */
  maxMiB(prefix: string): number {
    let m = 0
    for (const p of this.peaks.values()) if (p.comm.startsWith(prefix)) m = Math.max(m, p.hwmKb)
    return m / 1024
  }
}

interface Result {
  n: number
  strategy: string
  wallS: number
  selectMs: number
  timing: Record<string, number>
  info: Record<string, unknown>
  nodeMiB: number
  pythonMiB: number
}

async function runOne(n: number, strategy: string, dataDir: string, components: string): Promise<Result> {
  const out = join(work, `run-${strategy}-${n}`)
  const args = [
    'bin/dataflex.mjs',
    'train',
    'configs/select_quality.yaml',
    `model_name_or_path=${model}`,
    `dataset_dir=${dataDir}`,
    'dataset=synthetic_pool',
    'eval_dataset=synthetic_eval',
    `components_cfg_file=${components}`,
    `component_name=${strategy}`,
    'do_eval=false',
    // One selection (after step 0, before any training) and one step trained on it.
    'warmup_step=0',
    'update_step=1',
    'update_times=1',
    'max_steps=1',
    'logging_steps=1',
    `output_dir=${out}`,
  ]
  const t0 = performance.now()
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] })
  const mem = new PeakMemory(child.pid!)
  const timer = setInterval(() => mem.poll(), 200)
  const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)))
  clearInterval(timer)
  if (code !== 0) throw new Error(`${strategy} at ${n} rows: dataflex train exited with ${code}`)
  const wallS = (performance.now() - t0) / 1000
  const decisions = readFileSync(join(out, 'dataflex', 'decisions.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { kind: string; timings?: { select_ms?: number; timing_ms?: Record<string, number> }; info?: Record<string, unknown> })
    .filter((d) => d.kind === 'select')
  if (decisions.length !== 1) throw new Error(`${strategy} at ${n} rows: expected one selection, got ${decisions.length}`)
  const d = decisions[0]!
  return {
    n,
    strategy,
    wallS,
    selectMs: d.timings?.select_ms ?? Number.NaN,
    timing: d.timings?.timing_ms ?? {},
    info: d.info ?? {},
    nodeMiB: mem.maxMiB('node'),
    pythonMiB: mem.maxMiB('python'),
  }
}

mkdirSync(work, { recursive: true })
const components = join(work, 'components.yaml')
writeFileSync(components, COMPONENTS)
const started = new Date().toISOString().slice(0, 16).replace('T', ' ')
const loadStart = loadavg().map((x) => x.toFixed(2)).join(' ')
const results: Result[] = []
for (const n of sizes) {
  const dataDir = makeSyntheticPool(n)
  for (const strategy of strategies) {
    const r = await runOne(n, strategy, dataDir, components)
    results.push(r)
    console.log(`${n}\t${strategy}\tselect ${(r.selectMs / 1000).toFixed(1)} s\tnode ${r.nodeMiB.toFixed(0)} MiB\tpython ${r.pythonMiB.toFixed(0)} MiB`)
  }
}

const fmt = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '–')
const timingText = (t: Record<string, number>): string =>
  Object.entries(t)
    .filter(([k]) => k !== 'total')
    .map(([k, v]) => `${k} ${fmt(v / 1000)}`)
    .join(', ')
const lines = [
  '# Selection at scale',
  '',
  `Written by \`${['npx tsx bench/scale.ts', ...process.argv.slice(2)].join(' ')}\`.`,
  `Started ${started} UTC; ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, load average at start ${loadStart}.`,
  `Model ${relative(REPO_ROOT, model) || model}; synthetic pool from bench/make-synthetic-pool.ts; one selection, then one training step.`,
  'Peak memory is VmHWM (peak resident set) of the Node process and of the Python sidecar over the whole run;',
  '`random` needs no model op, so its row is what a run holds whatever the selector.',
  '',
  '| rows | strategy | selection s | breakdown (s) | Node peak MiB | sidecar peak MiB | run wall s | notes |',
  '|---:|---|---:|---|---:|---:|---:|---|',
  ...results.map((r) => {
    const notes =
      r.strategy === 'cluster_less'
        ? `k ${String(r.info.num_clusters)}, ${r.info.embeddings_on_disk ? 'mini-batch, embeddings on disk' : 'Lloyd, in memory'}, ${String(r.info.kmeans_iterations)} iterations`
        : ''
    return `| ${r.n} | ${r.strategy} | ${fmt(r.selectMs / 1000)} | ${timingText(r.timing)} | ${r.nodeMiB.toFixed(0)} | ${r.pythonMiB.toFixed(0)} | ${fmt(r.wallS)} | ${notes} |`
  }),
  '',
]
mkdirSync(join(report, '..'), { recursive: true })
writeFileSync(report, lines.join('\n'))
const measurements: Record<string, RawMeasurement> = {}
for (const r of results) {
  // One run per size and strategy; memory is compared with `random` at the same size (what any run holds).
  const base = r.strategy === 'random' ? undefined : `${r.n}/random`
  const q = (key: string, unit: string, x: number, compare: boolean): void => {
    measurements[`${r.n}/${r.strategy}/${key}`] = { unit, samples: [x], ...(compare && base ? { baseline: `${base}/${key}` } : {}) }
  }
  q('select_s', 's', r.selectMs / 1000, false)
  q('node_peak_mib', 'MiB', r.nodeMiB, true)
  q('sidecar_peak_mib', 'MiB', r.pythonMiB, true)
  q('run_wall_s', 's', r.wallS, true)
}
writeRaw(report, { measurements })
console.log(`wrote ${report}`)
