/**
 * Wall time of our static run (`dataflex train`) vs plain `llamafactory-cli train` on the same YAML, run side by side
 * in this script, alternating, each paying its own imports and start-up. Besides the totals it shows where the
 * seconds go: both runs write LLaMA-Factory's `trainer_log.jsonl` (one line per logged step, by the same callback),
 * so the time each line appears splits a run into start-up (process start → first logged step, less those steps),
 * per-step time (slope between the first and the last logged step) and tail (last logged step → exit: save, final
 * eval, metrics). CPU seconds are the whole process tree's (bash `times` over the waited-for children).
 *
 * usage: npx tsx bench/static-vs-lf.ts [config=configs/demo.yaml] [pairs=5] [key=value ...]
 * writes static-vs-lf.md and its structured twin (.json) into bench/harness.ts's reportDir()
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { REPO_ROOT, resolvePython, sidecarEnv } from '../src/bridge/index.ts'
import { median, reportDir, writeRaw, type RawMeasurement } from './harness.ts'

const config = process.argv[2] ?? 'configs/demo.yaml'
const pairs = Number(process.argv[3] ?? 5)
// Further key=value overrides go to both runs (e.g. num_train_epochs=2).
const overrides = process.argv.slice(4)
const python = resolvePython().executable
const lfCli = join(dirname(python), 'llamafactory-cli')
const work = join(REPO_ROOT, 'bench', '.work')
mkdirSync(work, { recursive: true })

interface Timing {
  wall: number
  cpu: number
  /** Seconds from process start at which each trainer_log.jsonl line (step) appeared. */
  logged: { step: number; at: number }[]
}

async function timed(cmd: string, args: string[], outputDir: string): Promise<Timing> {
  const log = join(outputDir, 'trainer_log.jsonl')
  const logged: Timing['logged'] = []
  let seen = 0
  const t0 = performance.now()
  const poll = setInterval(() => {
    if (!existsSync(log)) return
    const lines = readFileSync(log, 'utf8').split('\n').filter((l) => l.trim() !== '')
    const at = (performance.now() - t0) / 1000
    for (; seen < lines.length; seen++) {
      const step = (JSON.parse(lines[seen]!) as { current_steps?: number }).current_steps
      if (typeof step === 'number') logged.push({ step, at })
    }
  }, 20)
  // `times` prints the shell's and its waited-for descendants' user/sys seconds: the whole process tree's CPU.
  const child = spawn('bash', ['-c', '"$@" >/dev/null; rc=$?; times >&2; exit $rc', 'bash', cmd, ...args], {
    cwd: REPO_ROOT,
    env: sidecarEnv(process.env),
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-65536)))
  const code = await new Promise<number | null>((res) => child.on('close', res))
  clearInterval(poll)
  const wall = (performance.now() - t0) / 1000
  if (code !== 0) throw new Error(`${cmd} exited ${code}:\n${stderr}`)
  const times = stderr.trim().split('\n').at(-1)!.trim().split(/\s+/)
  const sec = (s: string): number => {
    const m = /^(\d+)m([\d.]+)s$/.exec(s)
    return m ? Number(m[1]) * 60 + Number(m[2]) : NaN
  }
  return { wall, cpu: sec(times[0]!) + sec(times[1]!), logged }
}

/** Start-up, seconds per step and tail of one run, from the arrival times of its logged steps. */
function phases(t: Timing): { startup: number; perStep: number; tail: number } {
  const first = t.logged[0]
  const last = t.logged.at(-1)
  if (!first || !last || last.step === first.step) return { startup: NaN, perStep: NaN, tail: NaN }
  const perStep = (last.at - first.at) / (last.step - first.step)
  return { startup: first.at - first.step * perStep, perStep, tail: t.wall - last.at }
}

const ours: Timing[] = []
const lf: Timing[] = []
for (let r = 0; r < pairs; r++) {
  // Alternate which side goes first, so a drift in machine load does not favour one.
  const order: ('lf' | 'ours')[] = r % 2 === 0 ? ['lf', 'ours'] : ['ours', 'lf']
  for (const side of order) {
    const dir = join(work, `${side}-${r}`)
    rmSync(dir, { recursive: true, force: true })
    if (side === 'lf') lf.push(await timed(lfCli, ['train', config, `output_dir=${dir}`, ...overrides], dir))
    else ours.push(await timed(process.execPath, ['bin/dataflex.mjs', 'train', config, `output_dir=${dir}`, ...overrides], dir))
  }
  console.log(`pair ${r}: llamafactory-cli ${lf.at(-1)!.wall.toFixed(2)} s, dataflex ${ours.at(-1)!.wall.toFixed(2)} s`)
}

const med = (ts: Timing[], f: (t: Timing) => number): number => median(ts.map(f))
const summary = JSON.parse(readFileSync(join(work, `ours-${pairs - 1}`, 'dataflex', 'summary.json'), 'utf8')) as {
  steps: number
  stepSecondsMedian: number | null
  bridgeOverheadUsPerStep?: number
}
const row = (name: string, ts: Timing[]): string => {
  const p = ts.map(phases)
  return (
    `| ${name} | ${med(ts, (t) => t.wall).toFixed(2)} | ${ts.map((t) => t.wall.toFixed(2)).join(', ')} | ${med(ts, (t) => t.cpu).toFixed(2)} | ` +
    `${median(p.map((x) => x.startup)).toFixed(2)} | ${(median(p.map((x) => x.perStep)) * 1000).toFixed(2)} | ${median(p.map((x) => x.tail)).toFixed(2)} |`
  )
}
const ratios = ours.map((o, i) => o.wall / lf[i]!.wall)
const lines = [
  `# Static run: dataflex vs llamafactory-cli`,
  '',
  `Config \`${config}\` ${overrides.join(' ')}, ${summary.steps} optimizer steps, ${pairs} pairs (order alternating), ` +
    `${cpus().length}-core ${cpus()[0]?.model.trim() ?? 'CPU'}, load average before: ${loadavg()[0]!.toFixed(2)}. Wall time includes imports, ` +
    'dataset preprocessing and model load for both.',
  '',
  '| run | median wall (s) | all (s) | median CPU (s) | start-up (s) | per step (ms) | tail (s) |',
  '|---|---|---|---|---|---|---|',
  row('llamafactory-cli train', lf),
  row('dataflex train', ours),
  '',
  `Ratio dataflex / llamafactory-cli, whole process: **${(median(ours.map((t) => t.wall)) / median(lf.map((t) => t.wall))).toFixed(3)}** ` +
    `(median of medians; per pair: ${ratios.map((x) => x.toFixed(3)).join(', ')}); CPU seconds: ` +
    `${(med(ours, (t) => t.cpu) / med(lf, (t) => t.cpu)).toFixed(3)}.`,
  '',
  'Start-up = process start → first logged step, less that many steps at the per-step rate; per step = slope between the',
  'first and last logged steps (includes evaluations and checkpoints in between); tail = last logged step → exit.',
  '',
  `Executor step time (median): ${((summary.stepSecondsMedian ?? NaN) * 1000).toFixed(2)} ms; bridge overhead per step ` +
    `(TypeScript wall around train_steps minus executor time, per step): ${summary.bridgeOverheadUsPerStep?.toFixed(0) ?? 'n/a'} µs`,
  '',
]
const report = join(reportDir(), 'static-vs-lf.md')
mkdirSync(reportDir(), { recursive: true })
writeFileSync(report, lines.join('\n'))
const tags = lf.map((_, i) => `p${i}`)
const quantities = (name: string, ts: Timing[], base?: string): Record<string, RawMeasurement> => {
  const p = ts.map(phases)
  const q = (unit: string, samples: number[], key: string): RawMeasurement => ({ unit, samples, tags, ...(base ? { baseline: `${base}/${key}` } : {}) })
  return {
    [`${name}/wall_s`]: q('s', ts.map((t) => t.wall), 'wall_s'),
    [`${name}/cpu_s`]: q('s', ts.map((t) => t.cpu), 'cpu_s'),
    [`${name}/startup_s`]: q('s', p.map((x) => x.startup), 'startup_s'),
    [`${name}/per_step_ms`]: q('ms', p.map((x) => x.perStep * 1000), 'per_step_ms'),
    [`${name}/tail_s`]: q('s', p.map((x) => x.tail), 'tail_s'),
  }
}
writeRaw(report, { measurements: { ...quantities('llamafactory-cli', lf), ...quantities('dataflex', ours, 'llamafactory-cli') } })
console.log(lines.join('\n'))
