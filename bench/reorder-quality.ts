/**
 * Reordering quality: a random order (shuffle) vs curricula by the model's loss (sorting, folding, saw; scored once or
 * rescored every interval) and one pipeline (select_then_reorder) vs its parts alone, at equal steps (the same flex-epoch
 * schedule for every method), several seeds, on the demo data with its corrupted-answer domain (arith_noisy). The
 * number is the held-out loss per clean eval set at the end (arith_eval, string_ops_eval, facts_eval), reported as the
 * mean over the sets and the worst set, mean ± sd over seeds, and the paired difference to shuffle at the same seed.
 *
 * usage: npx tsx bench/reorder-quality.ts [seeds=5] [methods=shuffle,sorting,folding,saw,dyn_sorting,dyn_saw,select_then_reorder,select_alone,reorder_alone] [model=small|tiny|<path>] [--resume|--report-only]
 * seeds: N (42..42+N-1) or a list (45,46; one seed: 43,), so that seeds can run in separate processes. Writes
 * bench/results/reorder-quality[-<model>].md. Each run is appended to bench/.work/reorder-quality/results.jsonl;
 * --resume trains only the (method, seed) runs that file lacks; --report-only trains nothing and rewrites the report
 * from that file and the run folders.
 */
import { execFileSync } from 'node:child_process'
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { modelPath } from './models.ts'
import { heldOutLosses, mean, meanSd, sd } from './seed-stats.ts'

const ALL = ['shuffle', 'sorting', 'folding', 'saw', 'dyn_sorting', 'dyn_saw', 'select_then_reorder', 'select_alone', 'reorder_alone']
const reportOnly = process.argv.includes('--report-only')
const resume = process.argv.includes('--resume')
const args = process.argv.slice(2).filter((a) => !a.startsWith('--'))
const seedArg = args[0] ?? '5'
// A list has a comma (one seed alone: '43,').
const seedList = seedArg.includes(',') ? seedArg.split(',').filter((x) => x !== '').map(Number) : Array.from({ length: Number(seedArg) }, (_, i) => 42 + i)
if (seedList.some((x) => !Number.isInteger(x)) || seedList.length === 0) throw new Error(`seeds must be a count or a list of integers, got ${seedArg}`)
const methods = (args[1] ?? ALL.join(',')).split(',')
const modelArg = args[2] ?? 'small'
const model = modelPath(modelArg)
const work = join(REPO_ROOT, 'bench', '.work', 'reorder-quality')
const EVAL = ['arith_eval', 'string_ops_eval', 'facts_eval']
const PIPELINES = new Set(['select_then_reorder', 'select_alone', 'reorder_alone'])
// One flex-epoch = W + U·T = 10 + 10 × 5 = 60 steps of 8 rows = one pass over the 480 rows; 3 flex-epochs.
const W = 10
const U = 10
const T = 5
const EPOCHS = 3
const STEPS = EPOCHS * (W + U * T)
for (const m of methods) if (!ALL.includes(m)) throw new Error(`unknown method ${m}; one of ${ALL.join(', ')}`)

/**
 * The study's presets. Every reorder pattern takes the run's seed (the presets' own default is a fixed 42, which would
 * give shuffle one order for every seed). The loss scores are the model's (`model_loss`), easy first (higher_later).
 * The pipeline's clocks are scaled to the run: a selection every pass (steps 10, 70, 130), a rescoring every interval.
 */
function components(seed: number): string {
  const saw = 'pattern: saw, pattern_params: {num_sections: 3, folding_ratio: 0.075, layers: 2}'
  const dynamic = 'kind: dynamic, score_source: model_loss, reorder_every: 1, consume_once: true, serve: slice'
  const stat = 'kind: static, score_source: model_loss'
  return `reorders:
  shuffle: {params: {kind: static, pattern: shuffle, seed: ${seed}}}
  sorting: {params: {${stat}, pattern: sorting, polarity: higher_later, seed: ${seed}}}
  folding: {params: {${stat}, pattern: folding, polarity: higher_later, pattern_params: {layers: 3}, seed: ${seed}}}
  saw: {params: {${stat}, polarity: higher_later, ${saw}, seed: ${seed}}}
  dyn_sorting: {params: {${dynamic}, pattern: sorting, polarity: higher_later, seed: ${seed}}}
  dyn_saw: {params: {${dynamic}, polarity: higher_later, ${saw}, seed: ${seed}}}
selectors:
  loss: {name: loss, params: {focus: medium, temperature: 1.0}}
pipelines:
  select_then_reorder:
    params:
      stages:
        - {family: selector, component: loss, mode: filter, keep_ratio: 0.5, warmup_step: ${W}, every: ${W + U * T}}
        - {family: reorder, component: dyn_saw, every: ${U}}
  select_alone:
    params:
      stages:
        - {family: selector, component: loss, mode: filter, keep_ratio: 0.5, warmup_step: ${W}, every: ${W + U * T}}
  reorder_alone:
    params:
      stages:
        - {family: reorder, component: dyn_saw, every: ${U}}
`
}

/** configs/lego.yaml on the benchmark model, GA 1, the clean eval sets each evaluated; dynamic_reorder for the orders. */
function train(out: string, seed: number, componentsFile: string, method: string): number {
  const t0 = performance.now()
  execFileSync(
    process.execPath,
    [
      'bin/dataflex.mjs',
      'train',
      'configs/lego.yaml',
      `model_name_or_path=${model}`,
      `seed=${seed}`,
      `output_dir=${out}`,
      'gradient_accumulation_steps=1',
      `num_train_epochs=${EPOCHS}`,
      `warmup_step=${W}`,
      `update_step=${U}`,
      `update_times=${T}`,
      `eval_dataset=${EVAL.join(',')}`,
      'eval_on_each_dataset=true',
      `train_type=${PIPELINES.has(method) ? 'dynamic_lego' : 'dynamic_reorder'}`,
      `components_cfg_file=${componentsFile}`,
      `component_name=${method}`,
    ],
    { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] },
  )
  return (performance.now() - t0) / 1000
}

function fail(message: string): never {
  throw new Error(message)
}

/**
 * Steps trained, rows trained (summed over the windows' decision lines: `reorder` lines of dynamic_reorder, `plan`
 * lines of dynamic_lego, whose reorder stage also writes `reorder` lines) and distinct rows among them.
 */
function trained(out: string, method: string): { steps: number; rows: number; distinct: number } {
  const steps = (JSON.parse(readFileSync(join(out, 'dataflex', 'summary.json'), 'utf8')) as { steps: number }).steps
  const kind = PIPELINES.has(method) ? 'plan' : 'reorder'
  const lines = readFileSync(join(out, 'dataflex', 'decisions.jsonl'), 'utf8').trim().split('\n')
  const windows = lines.map((l) => JSON.parse(l) as { kind: string; indices?: number[] }).filter((d) => d.kind === kind)
  if (windows.some((d) => d.indices === undefined)) throw new Error(`${out}: a window's decision line has no indices`)
  const all = windows.flatMap((d) => d.indices!)
  return { steps, rows: all.length, distinct: new Set(all).size }
}

interface Run {
  method: string
  seed: number
  seconds: number
  /** When the run started (UTC), the load averages then and when it ended (absent: not recorded). */
  started?: string
  load?: string
  loadAfter?: string
}
type Result = Run & { losses: number[]; steps: number; rows: number; distinct: number }
const stamp = (): { started: string; load: string } => ({ started: new Date().toISOString().slice(0, 16).replace('T', ' '), load: loadavg().map((x) => x.toFixed(2)).join(' ') })
const resultOf = (run: Run): Result => {
  const out = join(work, `${run.method}-${run.seed}`)
  const file = join(out, 'eval_results.json')
  return { ...run, losses: heldOutLosses(JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>, EVAL, file), ...trained(out, run.method) }
}
const ledger = join(work, 'results.jsonl')
mkdirSync(work, { recursive: true })
// The last recorded run of a (method, seed).
const recorded = (): Run[] => (existsSync(ledger) ? readFileSync(ledger, 'utf8').trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Run) : [])
const lastRun = (rs: Run[], method: string, seed: number): Run | undefined => rs.filter((r) => r.method === method && r.seed === seed).at(-1)
const runs: Run[] = []
if (reportOnly) {
  const rs = recorded()
  for (const seed of seedList) {
    for (const method of methods) runs.push(lastRun(rs, method, seed) ?? fail(`${ledger} has no run of ${method} at seed ${seed}`))
  }
} else {
  const before = resume ? recorded() : []
  for (const seed of seedList) {
    const componentsFile = join(work, `components-${seed}.yaml`)
    writeFileSync(componentsFile, components(seed))
    for (const method of methods) {
      const done = lastRun(before, method, seed)
      if (done !== undefined) {
        runs.push(done)
        continue
      }
      const at = stamp()
      const seconds = train(join(work, `${method}-${seed}`), seed, componentsFile, method)
      runs.push({ method, seed, seconds, ...at, loadAfter: stamp().load })
      appendFileSync(ledger, `${JSON.stringify(runs.at(-1))}\n`)
      console.log(JSON.stringify(resultOf(runs.at(-1)!)))
    }
  }
}
const results = runs.map(resultOf)
const seeds = seedList.length
const started = runs[0]!.started ?? 'at a time not recorded'
const loadStart = runs[0]!.load ?? 'not recorded'
const loadEnd = runs.at(-1)!.loadAfter ?? 'not recorded'

/** Two-sided 95% Student t quantiles by degrees of freedom (1..10), for the paired differences' interval. */
const T95 = [NaN, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]
const ci95 = (xs: number[]): string => {
  const df = xs.length - 1
  if (df < 1 || df >= T95.length) return '–'
  const h = (T95[df]! * sd(xs)) / Math.sqrt(xs.length)
  return `[${(mean(xs) - h).toFixed(4)}, ${(mean(xs) + h).toFixed(4)}]`
}
const avg = (r: Result): number => mean(r.losses)
const worst = (r: Result): number => Math.max(...r.losses)
const shuffleBySeed = new Map(results.filter((r) => r.method === 'shuffle').map((r) => [r.seed, r]))
const verdicts: { m: string; diff: number; wins: number; n: number; ci: string }[] = []
const rows = methods.map((m) => {
  const rs = results.filter((r) => r.method === m)
  const paired = rs.filter((r) => shuffleBySeed.has(r.seed))
  const wins = paired.filter((r) => avg(r) < avg(shuffleBySeed.get(r.seed)!)).length
  const diff = paired.map((r) => avg(r) - avg(shuffleBySeed.get(r.seed)!))
  const perSet = EVAL.map((_, i) => mean(rs.map((r) => r.losses[i]!)).toFixed(4)).join(' / ')
  const steps = [...new Set(rs.map((r) => `${r.steps} / ${r.rows}`))].join(', ')
  const vsShuffle = m === 'shuffle' || paired.length === 0
  if (!vsShuffle) verdicts.push({ m, diff: mean(diff), wins, n: paired.length, ci: ci95(diff) })
  const walls = rs.map((r) => r.seconds)
  return (
    `| ${m} | **${meanSd(rs.map(avg))}** | ${meanSd(rs.map(worst))} | ${perSet} | ${vsShuffle ? '–' : meanSd(diff)} | ${vsShuffle ? '–' : ci95(diff)} | ${vsShuffle ? '–' : `${wins} / ${paired.length}`} | ` +
    `${steps} | ${mean(rs.map((r) => r.distinct)).toFixed(0)} | ${mean(walls).toFixed(0)} (${Math.min(...walls).toFixed(0)}–${Math.max(...walls).toFixed(0)}) |`
  )
})
/** The pipeline against each of its parts, paired by seed. */
function pipelineVsParts(): string[] {
  const by = (m: string): Map<number, Result> => new Map(results.filter((r) => r.method === m).map((r) => [r.seed, r]))
  const pipe = by('select_then_reorder')
  if (pipe.size === 0) return []
  const lines = ['Pipeline vs its parts (select_then_reorder minus the part, same seed; negative: the pipeline is lower):', '']
  for (const part of ['select_alone', 'reorder_alone', 'dyn_saw']) {
    const other = by(part)
    const diff = [...pipe].filter(([seed]) => other.has(seed)).map(([seed, r]) => avg(r) - avg(other.get(seed)!))
    if (diff.length === 0) continue
    lines.push(`- vs ${part}: ${meanSd(diff)}, 95% t interval ${ci95(diff)}, pipeline lower at ${diff.filter((x) => x < 0).length} / ${diff.length} seeds`)
  }
  return lines
}
function list(vs: typeof verdicts): string {
  return vs.length === 0 ? 'none' : vs.map((v) => `${v.m} (${v.diff >= 0 ? '+' : ''}${v.diff.toFixed(4)}, ${v.wins}/${v.n} seeds)`).join(', ')
}
function excludesZero(ci: string): boolean {
  const [lo, hi] = ci.slice(1, -1).split(', ').map(Number) as [number, number]
  return lo > 0 || hi < 0
}
const md = [
  '# Reordering quality on the demo data',
  '',
  `\`npx tsx bench/reorder-quality.ts ${seedArg} ${methods.join(',')} ${modelArg}\` — started ${started} UTC on ${cpus().length} cores ` +
    `(load average at the start ${loadStart}, at the end ${loadEnd})${reportOnly ? '; this report was rewritten from the recorded runs with `--report-only`' : ''}. \`configs/lego.yaml\` with \`model_name_or_path\` = the ${modelArg} model` +
    (modelArg === 'small' ? ' (Qwen2, hidden 256, 4 layers, 3.2M params, `make_tiny_model --size small`)' : '') +
    ', LoRA r=8 on all linear layers, lr 5e-3 cosine, micro-batch 8, GA 1, over the 4 demo datasets',
  '(480 rows: arith_clean, arith_noisy with 30% of its answers random 4-digit numbers, string_ops, facts). Every method',
  `runs the same flex-epoch schedule: warmup_step ${W}, update_step ${U}, update_times ${T} (a flex-epoch = ${W + U * T} steps = one pass`,
  `over the 480 rows), ${EPOCHS} flex-epochs = ${STEPS} optimizer steps of 8 rows. Held-out loss at the end on the clean sets`,
  'arith_eval, string_ops_eval and facts_eval (24 rows each). Seeds ' + seedList.join(', ') + ' (LoRA initialisation, the warm-up draws,',
  'the shuffle order and the selector\'s draws). The study\'s presets are written per seed to `bench/.work/reorder-quality/components-<seed>.yaml`.',
  '- shuffle (the baseline): `dynamic_reorder`, static, pattern shuffle (seeded with the run seed): one random order of the',
  '  480 rows read as a stream, so every row once per pass, the same order each pass.',
  '- sorting / folding / saw: static, `score_source: model_loss` (each row\'s mean token loss under the initial model,',
  '  scored once), easy → hard (`polarity: higher_later`); folding `layers: 3`; saw `num_sections: 3, folding_ratio:',
  '  0.075, layers: 2` (the shipped presets\' pattern params). The order is read as a stream: the warm-up takes its head.',
  '- dyn_sorting / dyn_saw: dynamic, `model_loss` rescored at every interval (`reorder_every: 1`) over the rows not yet',
  '  served in the pass, `consume_once: true`, `serve: slice`; the warm-up of each flex-epoch is a random draw.',
  '- select_then_reorder (`dynamic_lego`): the shipped pipeline\'s stages with clocks scaled to the run: the `loss` selector',
  `  (focus medium) in filter mode, keep_ratio 0.5, warmup_step ${W}, every ${W + U * T} (a new kept half at steps ${W}, ${W + U * T + W}, ${2 * (W + U * T) + W}),`,
  `  then dyn_saw rescored every ${U} steps over the kept half (the shipped preset: warmup 10, every 100 / every 20).`,
  '- select_alone: that selector stage alone in `dynamic_lego` (each interval a uniform draw from the kept half).',
  methods.includes('reorder_alone')
    ? '- reorder_alone: that reorder stage alone in `dynamic_lego` (dyn_saw over all rows); dyn_saw is the same reorder through `dynamic_reorder`.'
    : '- The reorder part alone: dyn_saw (the same reorder through `dynamic_reorder`, over all rows).',
  'Wall times are whole processes on a 2-core machine shared with other jobs; they move with the load (this study is about',
  'quality, not speed: `bench/results/reorder-overhead.md` measures cost).',
  '',
  '| method | mean held-out loss over the sets (mean ± sd over seeds) | worst-set held-out loss | per set (arith / string / facts) | difference to shuffle, same seed (mean ± sd) | 95% t interval of that difference | beats shuffle on the mean (same seed) | steps / rows trained | distinct rows trained (mean) | wall per run, s (min–max) |',
  '|---|---|---|---|---|---|---|---|---|---|',
  ...rows,
  '',
  `Lower mean held-out loss than shuffle (paired mean difference < 0): ${list(verdicts.filter((v) => v.diff < 0))}.`,
  `Not lower than shuffle: ${list(verdicts.filter((v) => v.diff >= 0))}.`,
  `A 95% interval of the paired difference that excludes 0: ${list(verdicts.filter((v) => v.ci !== '–' && excludesZero(v.ci)))}.`,
  '',
  ...pipelineVsParts(),
  '',
]
mkdirSync(join(REPO_ROOT, 'bench', 'results'), { recursive: true })
const file = `reorder-quality${modelArg === 'small' ? '' : `-${modelArg}`}.md`
writeFileSync(join(REPO_ROOT, 'bench', 'results', file), md.join('\n'))
console.log(md.join('\n'))
