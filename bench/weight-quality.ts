/**
 * Reweighting quality: plain (uniform) training vs each weighter, equal steps, same samples in the same order, several
 * seeds, on the demo data with its corrupted-answer domain (arith_noisy). The number is the held-out loss per clean
 * eval set at the end (arith_eval, string_ops_eval, facts_eval), reported as the mean over the sets and the worst
 * set, mean ± sd over seeds, and how many seeds beat the uniform run of the same seed.
 *
 * usage: npx tsx bench/weight-quality.ts [seeds=5] [methods=uniform,loss_linupper,loss_quadratic,adapt,joint_update_aware,outlier_guard] [model=small|tiny|<path>]
 * Writes bench/results/weight-quality[-<model>].md
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { modelPath } from './models.ts'
import { heldOutLosses, mean, meanSd } from './seed-stats.ts'

const seeds = Number(process.argv[2] ?? 5)
const methods = (process.argv[3] ?? 'uniform,loss_linupper,loss_quadratic,adapt,joint_update_aware,outlier_guard').split(',')
const modelArg = process.argv[4] ?? 'small'
const model = modelPath(modelArg)
const work = join(REPO_ROOT, 'bench', '.work', 'weight-quality')
const EVAL = ['arith_eval', 'string_ops_eval', 'facts_eval']
const EPOCHS = 3
const WARMUP = 20

/** The study's weighter presets: DataFlex's defaults except where named. */
const COMPONENTS = `weighters:
  loss_linupper: {name: loss, params: {strategy: linupper, delta: 1.0}}
  loss_quadratic: {name: loss, params: {strategy: quadratic, delta: 1.0}}
  adapt: {name: adapt, params: {tau: 1.0, refresh_interval: 50, anchor_batch_size: 8}}
  joint_update_aware: {name: joint_update_aware, params: {beta: 0.1, tau: 0.05, target_update_step: 50, target_num_batches: 0}}
  outlier_guard: {name: custom, params: {path: ${join(REPO_ROOT, 'examples', 'strategies', 'outlier_guard.ts')}, max_ratio: 2.0}}
`

/** configs/weight.yaml on the benchmark model, GA 1, EPOCHS epochs; the anchors/target set is the clean eval sets. */
function train(out: string, seed: number, components: string, method: string): number {
  const t0 = performance.now()
  const weighted = method === 'uniform' ? ['train_type=static'] : [`component_name=${method}`, `warmup_step=${WARMUP}`, `components_cfg_file=${components}`]
  execFileSync(
    process.execPath,
    [
      'bin/dataflex.mjs',
      'train',
      'configs/weight.yaml',
      `model_name_or_path=${model}`,
      `seed=${seed}`,
      `output_dir=${out}`,
      'gradient_accumulation_steps=1',
      `num_train_epochs=${EPOCHS}`,
      `eval_dataset=${EVAL.join(',')}`,
      'eval_on_each_dataset=true',
      ...weighted,
    ],
    { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] },
  )
  return (performance.now() - t0) / 1000
}

/** Mean effective sample size per micro-batch over the weighed steps, as a share of the micro-batch (1 = uniform). */
function essShare(out: string): number | undefined {
  const lines = readFileSync(join(out, 'dataflex', 'decisions.jsonl'), 'utf8').trim().split('\n')
  const weighed = lines.map((l) => JSON.parse(l) as { kind: string; samples?: number; weights?: { ess: number } }).filter((d) => d.kind === 'weight')
  return weighed.length === 0 ? undefined : mean(weighed.map((d) => d.weights!.ess / d.samples!))
}

interface Result {
  method: string
  seed: number
  losses: number[]
  seconds: number
  ess?: number
}
const results: Result[] = []
const started = new Date().toISOString().slice(0, 16).replace('T', ' ')
const loadStart = loadavg().map((x) => x.toFixed(2)).join(' ')
mkdirSync(work, { recursive: true })
const components = join(work, 'components.yaml')
writeFileSync(components, COMPONENTS)
for (const seed of Array.from({ length: seeds }, (_, i) => 42 + i)) {
  for (const method of methods) {
    const out = join(work, `${method}-${seed}`)
    const seconds = train(out, seed, components, method)
    const file = join(out, 'eval_results.json')
    results.push({ method, seed, losses: heldOutLosses(JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>, EVAL, file), seconds, ess: essShare(out) })
    console.log(JSON.stringify(results.at(-1)))
  }
}

const avg = (r: Result): number => mean(r.losses)
const worst = (r: Result): number => Math.max(...r.losses)
const uniformBySeed = new Map(results.filter((r) => r.method === 'uniform').map((r) => [r.seed, r]))
const rows = methods.map((m) => {
  const rs = results.filter((r) => r.method === m)
  const paired = rs.filter((r) => uniformBySeed.has(r.seed))
  const wins = paired.filter((r) => avg(r) < avg(uniformBySeed.get(r.seed)!)).length
  const diff = paired.map((r) => avg(r) - avg(uniformBySeed.get(r.seed)!))
  const perSet = EVAL.map((_, i) => mean(rs.map((r) => r.losses[i]!)).toFixed(4)).join(' / ')
  const ess = rs[0]?.ess === undefined ? '–' : mean(rs.map((r) => r.ess!)).toFixed(3)
  return `| ${m} | **${meanSd(rs.map(avg))}** | ${meanSd(rs.map(worst))} | ${perSet} | ${m === 'uniform' ? '–' : `${meanSd(diff)}`} | ${m === 'uniform' ? '–' : `${wins} / ${paired.length}`} | ${ess} | ${mean(rs.map((r) => r.seconds)).toFixed(0)} |`
})
const md = [
  '# Reweighting quality on the demo data',
  '',
  `\`npx tsx bench/weight-quality.ts ${seeds} ${methods.join(',')} ${modelArg}\` — started ${started} UTC on ${cpus().length} cores ` +
    `(load average at the start ${loadStart}). \`configs/weight.yaml\` with \`model_name_or_path\` = the ${modelArg} model` +
    (modelArg === 'small' ? ' (Qwen2, hidden 256, 4 layers, 3.2M params, `make_tiny_model --size small`)' : '') +
    `, LoRA r=8 on all linear layers, lr 5e-3 cosine, micro-batch 8, GA 1, ${EPOCHS} epochs over the 4 demo datasets`,
  '(480 rows: arith_clean, arith_noisy with 30% of its answers random 4-digit numbers, string_ops, facts) = the same',
  `samples in the same order for every method of a seed. The weighted runs weigh from step ${WARMUP + 1} on. Held-out loss`,
  'at the end on the clean sets arith_eval, string_ops_eval and facts_eval (24 rows each); ADAPT\'s anchors and',
  'joint_update_aware\'s target are those 72 rows. Seeds ' + `${42}..${42 + seeds - 1}` + ' (LoRA initialisation and data order).',
  '- uniform: plain training (`train_type: static`), every sample weight 1.',
  '- loss_linupper / loss_quadratic: the `loss` weighter (Sow et al.), DataFlex\'s default strategy and the one that favours mid-range losses.',
  '- adapt, joint_update_aware: DataFlex\'s defaults (joint_update_aware\'s target: the whole eval set, `target_num_batches: 0`).',
  '- outlier_guard: `examples/strategies/outlier_guard.ts` (a sample above 2 × the micro-batch median loss weighted down to that bound).',
  '',
  '| method | mean held-out loss over the sets (mean ± sd over seeds) | worst-set held-out loss | per set (arith / string / facts) | difference to uniform, same seed (mean ± sd) | beats uniform on the mean (same seed) | mean ESS / micro-batch | wall per run (s) |',
  '|---|---|---|---|---|---|---|---|',
  ...rows,
  '',
]
mkdirSync(join(REPO_ROOT, 'bench', 'results'), { recursive: true })
const file = `weight-quality${modelArg === 'small' ? '' : `-${modelArg}`}.md`
writeFileSync(join(REPO_ROOT, 'bench', 'results', file), md.join('\n'))
console.log(md.join('\n'))
