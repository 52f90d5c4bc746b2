/**
 * Mixing quality: uniform vs stratified sampling vs DoReMi (three steps) vs ODM vs ADO, equal
 * steps, several seeds. The number is the held-out loss per eval domain at the end (arith_eval, string_ops_eval,
 * facts_eval: clean), reported as the mean over the domains and the worst domain, mean ± sd over seeds.
 *
 * usage: npx tsx bench/mix-quality.ts [seeds=3] [methods=uniform,stratified,doremi,odm,ado] [model=small|tiny|<path>] [data=demo|mix]
 * data: `demo` (data/demo, four domains of 120 rows) or `mix` (data/mix from data/make_mix_data.py: imbalanced, a large
 * domain of half-wrong answers). Writes bench/results/mix-quality[-<model>][-mix].md
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { modelPath } from './models.ts'
import { heldOutLosses, mean, meanSd } from './seed-stats.ts'

const seeds = Number(process.argv[2] ?? 3)
const methods = (process.argv[3] ?? 'uniform,stratified,doremi,odm,ado').split(',')
const modelArg = process.argv[4] ?? 'small'
const dataArg = process.argv[5] ?? 'demo'
const DATASETS: Record<string, { dir: string; domains: string; about: string }> = {
  demo: { dir: 'data/demo', domains: 'arith_clean,arith_noisy,string_ops,facts', about: 'arith_clean, arith_noisy (30% of its answers are random 4-digit numbers), string_ops, facts (120 rows each)' },
  mix: { dir: 'data/mix', domains: 'arith,arith_noisy,string_ops,facts', about: 'arith (120 rows), arith_noisy (480 rows, 50% of its answers random 4-digit numbers), string_ops (136), facts (120) — `data/make_mix_data.py`' },
}
const DATA = DATASETS[dataArg] ?? fail(`data must be demo or mix, got ${dataArg}`)
const work = join(REPO_ROOT, 'bench', '.work', `mix-quality-${dataArg}`)

function fail(message: string): never {
  throw new Error(message)
}
const model = modelPath(modelArg)
const EVAL = ['arith_eval', 'string_ops_eval', 'facts_eval']
const STEPS = 140

/** Every run: configs/mix.yaml on the benchmark model, 20 warm-up steps + 6 updates × 20 steps of 8 samples. */
function train(out: string, seed: number, extra: string[]): number {
  const t0 = performance.now()
  execFileSync(
    process.execPath,
    [
      'bin/dataflex.mjs',
      'train',
      'configs/mix.yaml',
      `model_name_or_path=${model}`,
      `dataset_dir=${DATA.dir}`,
      `dataset=${DATA.domains}`,
      `seed=${seed}`,
      `output_dir=${out}`,
      'gradient_accumulation_steps=1',
      'warmup_step=20',
      'update_step=20',
      'update_times=6',
      `eval_dataset=${EVAL.join(',')}`,
      'eval_on_each_dataset=true',
      'components_cfg_file=bench/mix-components.yaml',
      ...extra,
    ],
    { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] },
  )
  return (performance.now() - t0) / 1000
}

function heldOut(out: string): number[] {
  const file = join(out, 'eval_results.json')
  return heldOutLosses(JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>, EVAL, file)
}

/** The proportions the run trained on last (its last decision line). */
function lastProportions(out: string): number[] | undefined {
  const lines = readFileSync(join(out, 'dataflex', 'decisions.jsonl'), 'utf8').trim().split('\n')
  const d = JSON.parse(lines.at(-1)!) as { sampled_with?: number[] }
  return d.sampled_with
}

interface Result {
  method: string
  seed: number
  losses: number[]
  seconds: number
  proportions?: number[]
}
const results: Result[] = []
const started = new Date().toISOString().slice(0, 16).replace('T', ' ')
const loadStart = loadavg().map((x) => x.toFixed(2)).join(' ')
mkdirSync(work, { recursive: true })
for (const seed of Array.from({ length: seeds }, (_, i) => 42 + i)) {
  const dir = (m: string) => join(work, `${m}-${seed}`)
  const staticRun = (rule: string) => ['static_mix=true', `train_step=${STEPS}`, `mixture_sample_rule=${rule}`]
  for (const method of methods) {
    const out = dir(method)
    let seconds: number
    if (method === 'uniform' || method === 'stratified') seconds = train(out, seed, staticRun(method))
    else if (method === 'doremi') {
      // Step 1: the reference is the uniform run of this seed (trained first when not in the list).
      const reference = dir('uniform')
      if (!existsSync(join(reference, 'eval_results.json'))) train(reference, seed, staticRun('uniform'))
      // Step 2: the proxy learns domain weights from the excess loss over the reference.
      const components = join(work, `doremi-components-${seed}.yaml`)
      writeFileSync(components, `mixers:\n  doremi_study:\n    name: doremi\n    params: {reference_model_path: ${reference}, reweight_eta: 1.0, reweight_eps: 0.001}\n`)
      const proxy = dir('doremi-proxy')
      const proxySeconds = train(proxy, seed, [`components_cfg_file=${components}`, 'component_name=doremi_study'])
      // Step 3: the final model on the fixed mixture of step 2's average weights.
      seconds = proxySeconds + train(out, seed, ['static_mix=true', `train_step=${STEPS}`, 'mixture_sample_rule=mixture', `init_mixture_proportions=${join(proxy, 'doremi_average_weights.json')}`])
    } else seconds = train(out, seed, [`component_name=${method}_study`])
    results.push({ method, seed, losses: heldOut(out), seconds, proportions: lastProportions(out) })
    console.log(JSON.stringify(results.at(-1)))
  }
}

const fmt = meanSd
const avg = (r: Result): number => mean(r.losses)
const worst = (r: Result): number => Math.max(...r.losses)
const stratBySeed = new Map(results.filter((r) => r.method === 'stratified').map((r) => [r.seed, r]))
const rows = methods.map((m) => {
  const rs = results.filter((r) => r.method === m)
  const wins = rs.filter((r) => m !== 'stratified' && stratBySeed.has(r.seed) && avg(r) < avg(stratBySeed.get(r.seed)!)).length
  const perDomain = EVAL.map((_, i) => mean(rs.map((r) => r.losses[i]!)).toFixed(4)).join(' / ')
  const props = rs[0]?.proportions ? rs.map((r) => `[${r.proportions!.map((p) => p.toFixed(2)).join(', ')}]`).join(' ') : '–'
  return `| ${m} | **${fmt(rs.map(avg))}** | ${fmt(rs.map(worst))} | ${perDomain} | ${m === 'stratified' ? '–' : `${wins} / ${rs.length}`} | ${props} | ${mean(rs.map((r) => r.seconds)).toFixed(0)} |`
})
const md = [
  `# Mixing quality on the ${dataArg} data`,
  '',
  `\`npx tsx bench/mix-quality.ts ${seeds} ${methods.join(',')} ${modelArg} ${dataArg}\` — started ${started} UTC on ${cpus().length} cores ` +
    `(load average at the start ${loadStart}). \`configs/mix.yaml\` with \`model_name_or_path\` = the ${modelArg} model` +
    (modelArg === 'small' ? ' (Qwen2, hidden 256, 4 layers, 3.2M params, `make_tiny_model --size small`)' : '') +
    ', LoRA r=8 on all linear layers, lr 5e-3 cosine;',
  `domains = ${DATA.about}; ${STEPS} steps of 8`,
  'samples for every method: 20 warm-up steps on uniform proportions + 6 updates × 20 steps. Held-out loss at the end on',
  'arith_eval, string_ops_eval and facts_eval (24 clean rows each; arith_eval serves both arithmetic domains).',
  'Seeds ' + `${42}..${42 + seeds - 1}` + ' (the seed drives LoRA initialisation, the draws and the data order).',
  '- uniform / stratified: `static_mix: true` with `mixture_sample_rule: uniform` / `stratified`' + (dataArg === 'demo' ? ' (the same mixture here: every domain has 120 rows).' : ' (by domain size).'),
  '- doremi: step 1 = the uniform run of the same seed (the reference), step 2 = a proxy run with the doremi mixer',
  '  (η = 1, c = 1e-3, loss reweighted by the domain weights, an update every 20 steps), step 3 = the reported run, a',
  '  static mixture read from step 2\'s `doremi_average_weights.json`. Its wall time counts steps 2 and 3.',
  '- odm, ado: the presets of `bench/mix-components.yaml` (ODM with its own warm-up cut to 20 steps).',
  '',
  '| method | mean held-out loss over domains (mean ± sd over seeds) | worst-domain held-out loss | per domain (arith / string / facts) | beats stratified on the mean (same seed) | last proportions drawn (clean, noisy, string, facts) per seed | wall per run (s) |',
  '|---|---|---|---|---|---|---|',
  ...rows,
  '',
]
mkdirSync(join(REPO_ROOT, 'bench', 'results'), { recursive: true })
const file = `mix-quality${modelArg === 'small' ? '' : `-${modelArg}`}${dataArg === 'demo' ? '' : `-${dataArg}`}.md`
writeFileSync(join(REPO_ROOT, 'bench', 'results', file), md.join('\n'))
console.log(md.join('\n'))
