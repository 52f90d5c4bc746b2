/**
 * Selection quality on the demo data: the pool holds a domain whose answers are 30% wrong (arith_noisy); the eval
 * set (demo_eval) is clean. Random vs loss vs LESS (targeting the clean eval set), same steps, same seeds; the
 * number is the final held-out eval loss. Also counts how many noisy rows each strategy picked.
 *
 * usage: npx tsx bench/quality.ts [seeds=3] [strategies=random,loss,less]
 * writes bench/results/quality.md
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { REPO_ROOT } from '../src/bridge/index.ts'

const seeds = Number(process.argv[2] ?? 3)
const strategies = (process.argv[3] ?? 'random,loss,less').split(',')
const work = join(REPO_ROOT, 'bench', '.work', 'quality')
// Row ranges of each domain in the concatenated pool (dataset order in the config; 120 rows each).
const NOISY = [120, 240] as const
const noisyWrong = new Set(
  (JSON.parse(readFileSync(join(REPO_ROOT, 'data', 'demo', 'arith_noisy_labels.json'), 'utf8')) as { wrong_indices: number[] }).wrong_indices.map(
    (i) => i + NOISY[0],
  ),
)

interface Result {
  strategy: string
  seed: number
  evalLoss: number
  seconds: number
  picked: number
  noisy: number
  wrong: number
}
const results: Result[] = []
for (const seed of Array.from({ length: seeds }, (_, i) => 42 + i)) {
  for (const strategy of strategies) {
    const out = join(work, `${strategy}-${seed}`)
    const t0 = performance.now()
    execFileSync(
      process.execPath,
      ['bin/dataflex.mjs', 'train', 'configs/select_quality.yaml', `component_name=${strategy}`, `seed=${seed}`, `output_dir=${out}`],
      { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] },
    )
    const seconds = (performance.now() - t0) / 1000
    const summary = JSON.parse(readFileSync(join(out, 'dataflex', 'summary.json'), 'utf8')) as { evalLoss: number }
    let picked = 0
    let noisy = 0
    let wrong = 0
    for (const line of readFileSync(join(out, 'dataflex', 'decisions.jsonl'), 'utf8').trim().split('\n')) {
      const d = JSON.parse(line) as { kind: string; indices?: number[] }
      if (d.kind !== 'select' || !d.indices) continue
      for (const i of d.indices) {
        picked++
        if (i >= NOISY[0] && i < NOISY[1]) noisy++
        if (noisyWrong.has(i)) wrong++
      }
    }
    results.push({ strategy, seed, evalLoss: summary.evalLoss, seconds, picked, noisy, wrong })
    console.log(JSON.stringify(results.at(-1)))
  }
}
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
const rows = strategies.map((s) => {
  const rs = results.filter((r) => r.strategy === s)
  return `| ${s} | ${mean(rs.map((r) => r.evalLoss)).toFixed(4)} | ${rs.map((r) => r.evalLoss.toFixed(4)).join(', ')} | ${(
    (100 * rs.reduce((a, r) => a + r.noisy, 0)) / Math.max(1, rs.reduce((a, r) => a + r.picked, 0))
  ).toFixed(1)}% | ${((100 * rs.reduce((a, r) => a + r.wrong, 0)) / Math.max(1, rs.reduce((a, r) => a + r.picked, 0))).toFixed(1)}% | ${mean(
    rs.map((r) => r.seconds),
  ).toFixed(0)} |`
})
const md = [
  '# Selection quality on the demo data',
  '',
  '`configs/select_quality.yaml`: tiny Qwen2 + LoRA, pool = arith_clean, arith_noisy (30% wrong answers), string_ops,',
  'facts (480 rows); 20 warm-up steps + 6 selections × 20 steps of 8 samples; final loss on the clean `demo_eval`.',
  `Seeds ${42}..${42 + seeds - 1}. The noisy domain is 25% of the pool, its wrong rows 7.5%.`,
  '',
  '| strategy | mean eval loss | per seed | picked from noisy domain | picked wrong rows | wall (s) |',
  '|---|---|---|---|---|---|',
  ...rows,
  '',
]
mkdirSync(join(REPO_ROOT, 'bench', 'results'), { recursive: true })
writeFileSync(join(REPO_ROOT, 'bench', 'results', 'quality.md'), md.join('\n'))
console.log(md.join('\n'))
