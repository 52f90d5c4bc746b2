/**
 * Wall time of our static run (`dataflex train`) vs plain `llamafactory-cli train` on the same YAML, run side by side
 * in this script, alternating, each paying its own imports and start-up. Also reports how much of our per-step time
 * is bridge overhead: TypeScript's wall time around `train_steps` minus the executor's own step time.
 *
 * usage: npx tsx bench/static-vs-lf.ts [config=configs/demo.yaml] [repeats=2] [key=value ...]
 * writes bench/results/static-vs-lf.md
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { REPO_ROOT, resolvePython, sidecarEnv } from '../src/bridge/index.ts'

const config = process.argv[2] ?? 'configs/demo.yaml'
const repeats = Number(process.argv[3] ?? 2)
// Further key=value overrides go to both runs (e.g. num_train_epochs=2).
const overrides = process.argv.slice(4)
const python = resolvePython().executable
const lfCli = join(dirname(python), 'llamafactory-cli')
const work = join(REPO_ROOT, 'bench', '.work')
mkdirSync(work, { recursive: true })

function timed(cmd: string, args: string[]): number {
  const t0 = performance.now()
  execFileSync(cmd, args, { cwd: REPO_ROOT, env: sidecarEnv(process.env), stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 28 })
  return (performance.now() - t0) / 1000
}

const ours: number[] = []
const lf: number[] = []
for (let r = 0; r < repeats; r++) {
  const oDir = join(work, `ours-${r}`)
  const lDir = join(work, `lf-${r}`)
  rmSync(oDir, { recursive: true, force: true })
  rmSync(lDir, { recursive: true, force: true })
  lf.push(timed(lfCli, ['train', config, `output_dir=${lDir}`, ...overrides]))
  ours.push(timed(process.execPath, ['bin/dataflex.mjs', 'train', config, `output_dir=${oDir}`, ...overrides]))
  console.log(`repeat ${r}: llamafactory-cli ${lf.at(-1)!.toFixed(1)} s, dataflex ${ours.at(-1)!.toFixed(1)} s`)
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const summary = JSON.parse(readFileSync(join(work, `ours-${repeats - 1}`, 'dataflex', 'summary.json'), 'utf8')) as {
  steps: number
  stepSecondsMedian: number | null
  bridgeOverheadUsPerStep?: number
}
const lines = [
  `# Static run: dataflex vs llamafactory-cli`,
  '',
  `Config \`${config}\` ${overrides.join(' ')}, ${summary.steps} optimizer steps, ${repeats} alternating repeats, 2-core CPU, wall time including`,
  'imports, dataset preprocessing and model load for both.',
  '',
  '| run | median wall (s) | all (s) |',
  '|---|---|---|',
  `| llamafactory-cli train | ${median(lf).toFixed(2)} | ${lf.map((x) => x.toFixed(2)).join(', ')} |`,
  `| dataflex train | ${median(ours).toFixed(2)} | ${ours.map((x) => x.toFixed(2)).join(', ')} |`,
  '',
  `Ratio dataflex / llamafactory-cli: **${(median(ours) / median(lf)).toFixed(3)}**`,
  '',
  `Executor step time (median): ${((summary.stepSecondsMedian ?? NaN) * 1000).toFixed(2)} ms; bridge overhead per step ` +
    `(TypeScript wall around train_steps minus executor time, per step): ${summary.bridgeOverheadUsPerStep?.toFixed(0) ?? 'n/a'} µs`,
  '',
]
mkdirSync(join(REPO_ROOT, 'bench', 'results'), { recursive: true })
writeFileSync(join(REPO_ROOT, 'bench', 'results', 'static-vs-lf.md'), lines.join('\n'))
console.log(lines.join('\n'))
