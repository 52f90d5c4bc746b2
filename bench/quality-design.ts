/**
 * The quality study's design (bench/quality-study.ts; prose and reasons in docs/results.md): the data sets, each
 * family's schedule, and every method with its baseline(s), its expected direction and how it is trained.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { REPO_ROOT } from '../src/bridge/python.ts'

export type Family = 'select' | 'mix' | 'weight' | 'reorder'
export const FAMILIES: readonly Family[] = ['select', 'mix', 'weight', 'reorder']

/** The sign of (method − baseline) held-out loss expected before any run: lower is better. */
export type Direction = 'lower' | 'higher' | 'none'

export interface EvalSet {
  readonly name: string
  readonly rows: number
  /** Its share of the headline held-out loss (rows / all held-out rows). */
  readonly weight: number
}

export interface DataSet {
  readonly name: string
  readonly dir: string
  /** Training datasets (the domains) in `dataset:` order, so row i of the pool is in the domain whose range holds i. */
  readonly domains: readonly { readonly name: string; readonly rows: number; readonly start: number }[]
  readonly evals: readonly EvalSet[]
  readonly poolRows: number
  /** The domain with wrong answers and the pool indices of its wrong rows. */
  readonly corrupted: { readonly domain: string; readonly rate: number; readonly indices: ReadonlySet<number> }
  readonly about: string
}

interface DataSpec {
  readonly dir: string
  readonly domains: readonly string[]
  readonly evals: readonly string[]
  readonly corrupted: { readonly domain: string; readonly labels: string }
  readonly about: string
}

const DATA: Record<string, DataSpec> = {
  demo: {
    dir: 'data/demo',
    domains: ['arith_clean', 'arith_noisy', 'string_ops', 'facts'],
    evals: ['arith_eval', 'string_ops_eval', 'facts_eval'],
    corrupted: { domain: 'arith_noisy', labels: 'arith_noisy_labels.json' },
    about: '`data/make_demo_data.py`: four domains of 120 rows; arith_noisy has 30% wrong answers; three clean held-out sets of 24 rows (their concatenation is `demo_eval`)',
  },
  quality: {
    dir: 'data/quality',
    domains: ['target', 'add', 'add_noisy', 'parity', 'facts'],
    evals: ['target_eval', 'add_eval', 'parity_eval', 'facts_eval'],
    corrupted: { domain: 'add_noisy', labels: 'add_noisy_labels.json' },
    about: '`data/make_quality_data.py`: target 160, add 320, add_noisy 480 (40% wrong answers), parity 160 (easy), facts 120 (hard); clean held-out sets target_eval 48 (half of the held-out rows), add_eval, parity_eval and facts_eval 16 each',
  },
}
export const DATA_NAMES = Object.keys(DATA)

function rowsIn(dir: string, name: string): number {
  const info = JSON.parse(readFileSync(join(REPO_ROOT, dir, 'dataset_info.json'), 'utf8')) as Record<string, { file_name: string }>
  const entry = info[name]
  if (entry === undefined) throw new Error(`${dir}/dataset_info.json has no ${name}`)
  return (JSON.parse(readFileSync(join(REPO_ROOT, dir, entry.file_name), 'utf8')) as unknown[]).length
}

export function loadDataSet(name: string): DataSet {
  const spec = DATA[name]
  if (spec === undefined) throw new Error(`unknown data set ${name}; one of ${DATA_NAMES.join(', ')}`)
  let start = 0
  const domains = spec.domains.map((d) => {
    const rows = rowsIn(spec.dir, d)
    const out = { name: d, rows, start }
    start += rows
    return out
  })
  const evalRows = spec.evals.map((e) => rowsIn(spec.dir, e))
  const totalEval = evalRows.reduce((a, b) => a + b, 0)
  const labels = JSON.parse(readFileSync(join(REPO_ROOT, spec.dir, spec.corrupted.labels), 'utf8')) as { wrong_indices: number[]; noise_rate: number }
  const offset = domains.find((d) => d.name === spec.corrupted.domain)!.start
  return {
    name,
    dir: spec.dir,
    domains,
    evals: spec.evals.map((e, i) => ({ name: e, rows: evalRows[i]!, weight: evalRows[i]! / totalEval })),
    poolRows: start,
    corrupted: { domain: spec.corrupted.domain, rate: labels.noise_rate, indices: new Set(labels.wrong_indices.map((i) => i + offset)) },
    about: spec.about,
  }
}

/** The files a run reads from the data set (their contents go into each run's fingerprint). */
export function dataFiles(data: DataSet): string[] {
  const spec = DATA[data.name]!
  const info = JSON.parse(readFileSync(join(REPO_ROOT, spec.dir, 'dataset_info.json'), 'utf8')) as Record<string, { file_name: string }>
  return ['dataset_info.json', spec.corrupted.labels, ...[...spec.domains, ...spec.evals].map((n) => info[n]!.file_name)].map((f) => join(REPO_ROOT, spec.dir, f))
}

/** The pool index's domain. */
export function domainOf(data: DataSet, index: number): string {
  for (const d of data.domains) if (index >= d.start && index < d.start + d.rows) return d.name
  throw new Error(`${data.name}: pool index ${index} is outside its ${data.poolRows} rows`)
}

/** W warm-up steps + U steps × T updates (select, mix: one flex-epoch; reorder: `epochs` of them). */
export interface Windows {
  readonly warmup: number
  readonly update: number
  readonly times: number
}
export interface Schedule {
  readonly select: Windows
  readonly mix: Windows
  readonly weight: { readonly steps: number; readonly warmup: number }
  readonly reorder: Windows & { readonly epochs: number }
}
export const windowSteps = (w: Windows): number => w.warmup + w.update * w.times

/**
 * Full-run schedules. select: configs/select_quality.yaml's own (140 steps), so the demo's selection runs are the
 * issue's runs. mix: 140 steps as well. weight: three passes over the demo's 480 rows, one over data/quality's 1 360.
 * reorder: a flex-epoch is one pass over the pool (demo: 3 of them), so every row is served once per pass.
 */
const FULL: Record<string, Schedule> = {
  demo: {
    select: { warmup: 20, update: 20, times: 6 },
    mix: { warmup: 20, update: 20, times: 6 },
    weight: { steps: 180, warmup: 20 },
    reorder: { warmup: 10, update: 10, times: 5, epochs: 3 },
  },
  quality: {
    select: { warmup: 20, update: 20, times: 6 },
    mix: { warmup: 20, update: 20, times: 6 },
    weight: { steps: 170, warmup: 20 },
    reorder: { warmup: 10, update: 20, times: 8, epochs: 1 },
  },
}
/** --smoke: a few steps per run, to check the whole pipeline; the numbers mean nothing. */
const SMOKE: Schedule = {
  select: { warmup: 2, update: 2, times: 2 },
  mix: { warmup: 2, update: 2, times: 2 },
  weight: { steps: 6, warmup: 2 },
  reorder: { warmup: 2, update: 2, times: 2, epochs: 1 },
}
export const scheduleOf = (data: string, smoke: boolean): Schedule => (smoke ? SMOKE : FULL[data]!)

export function familySteps(family: Family, s: Schedule): number {
  switch (family) {
    case 'select':
      return windowSteps(s.select)
    case 'mix':
      return windowSteps(s.mix)
    case 'weight':
      return s.weight.steps
    case 'reorder':
      return windowSteps(s.reorder) * s.reorder.epochs
  }
}

/** Presets of the mixing, reweighting and reordering methods, with clocks scaled to the schedule. */
export function studyComponents(s: Schedule): string {
  const r = s.reorder
  const pass = windowSteps(r)
  const saw = 'pattern: saw, pattern_params: {num_sections: 3, folding_ratio: 0.075, layers: 2}'
  const loss = 'kind: static, score_source: model_loss, polarity: higher_later'
  return `# Written by bench/quality-study.ts: the study's presets (docs/results.md). Reorder seeds: the run's seed.
mixers:
  odm_study: {name: odm, params: {warmup_steps: ${s.mix.warmup}}}
  ado_study: {name: ado, params: {start_step: ${s.mix.warmup}, ignore_steps: 5}}
weighters:
  loss_linupper: {name: loss, params: {strategy: linupper, delta: 1.0}}
  loss_quadratic: {name: loss, params: {strategy: quadratic, delta: 1.0}}
  adapt: {name: adapt, params: {tau: 1.0, refresh_interval: 50, anchor_batch_size: 8}}
  joint_update_aware: {name: joint_update_aware, params: {beta: 0.1, tau: 0.05, target_update_step: 50, target_num_batches: 0}}
reorders:
  shuffle: {params: {kind: static, pattern: shuffle}}
  sorting: {params: {${loss}, pattern: sorting}}
  folding: {params: {${loss}, pattern: folding, pattern_params: {layers: 3}}}
  dyn_saw: {params: {kind: dynamic, score_source: model_loss, polarity: higher_later, ${saw}, reorder_every: 1, consume_once: true, serve: slice}}
selectors:
  loss_medium: {name: loss, params: {focus: medium, temperature: 1.0}}
pipelines:
  select_then_reorder:
    params:
      stages:
        - {family: selector, component: loss_medium, mode: filter, keep_ratio: 0.5, warmup_step: ${r.warmup}, every: ${pass}}
        - {family: reorder, component: dyn_saw, every: ${r.update}}
`
}

/** DoReMi step 2's preset: the reference is step 1's run (the uniform run of the same seed). */
export const doremiComponents = (reference: string): string =>
  `mixers:\n  doremi_study:\n    name: doremi\n    params: {reference_model_path: ${JSON.stringify(reference)}, reweight_eta: 1.0, reweight_eps: 0.001}\n`

/** One training process: a config and its key=value overrides (output_dir added by the runner). */
export interface Train {
  readonly label: string
  readonly config: string
  readonly args: readonly string[]
}

export interface RunContext {
  readonly data: DataSet
  readonly schedule: Schedule
  readonly model: string
  readonly seed: number
  /** The study's components file for this data set. */
  readonly components: string
  /** The output folder of another method's run at this seed (DoReMi's reference). */
  readonly runDir: (method: string) => string
  /** Where this run may write files of its own. */
  readonly dir: string
}

/** What one run costs, in units the time model prices (bench/quality-study.ts). */
export interface Work {
  readonly processes: number
  readonly steps: number
  /** Rows through a no-grad forward (loss scoring, reference losses, embeddings). */
  readonly forwardRows: number
  /** Rows through a per-sample gradient (LESS). */
  readonly gradientRows: number
}

export interface Method {
  readonly name: string
  readonly family: Family
  /** Baseline methods are what the others are compared with. */
  readonly baseline: boolean
  /** Run unless --methods names the methods. */
  readonly byDefault: boolean
  /** Methods whose run this one reads (trained first at the same seed). */
  readonly needs?: readonly string[]
  /** Expected direction of (this − baseline) on the headline held-out loss, per data set and baseline. */
  readonly expected?: (data: string, baseline: string) => Direction
  readonly about: string
  readonly trains: (ctx: RunContext) => Train[]
  readonly work: (data: DataSet, s: Schedule) => Work
}

const evalRows = (d: DataSet): number => d.evals.reduce((a, e) => a + e.rows, 0)
const plain = (steps: number, extra: Partial<Work> = {}): Work => ({ processes: 1, steps, forwardRows: 0, gradientRows: 0, ...extra })
const always =
  (d: Direction) =>
  (): Direction =>
    d

function common(ctx: RunContext): string[] {
  const d = ctx.data
  return [
    `model_name_or_path=${ctx.model}`,
    `dataset_dir=${d.dir}`,
    `dataset=${d.domains.map((x) => x.name).join(',')}`,
    `eval_dataset=${d.evals.map((e) => e.name).join(',')}`,
    'eval_on_each_dataset=true',
    `seed=${ctx.seed}`,
    'gradient_accumulation_steps=1',
  ]
}

const windows = (w: Windows): string[] => [`warmup_step=${w.warmup}`, `update_step=${w.update}`, `update_times=${w.times}`]

function select(name: string, byDefault: boolean, about: string, expected: Direction | undefined, work: (d: DataSet, s: Schedule) => Partial<Work>): Method {
  return {
    name,
    family: 'select',
    baseline: expected === undefined,
    byDefault,
    ...(expected === undefined ? {} : { expected: always(expected) }),
    about,
    trains: (ctx) => [
      { label: name, config: 'configs/select_quality.yaml', args: [...common(ctx), ...windows(ctx.schedule.select), 'num_train_epochs=1', `component_name=${name}`] },
    ],
    work: (d, s) => plain(windowSteps(s.select), work(d, s)),
  }
}

function mixArgs(ctx: RunContext, extra: string[], components = ctx.components): string[] {
  return [...common(ctx), ...windows(ctx.schedule.mix), `components_cfg_file=${components}`, ...extra]
}
const staticMix = (ctx: RunContext, rule: string): string[] => ['static_mix=true', `train_step=${windowSteps(ctx.schedule.mix)}`, `mixture_sample_rule=${rule}`]

function weight(name: string, byDefault: boolean, about: string, expected: Direction | undefined, forward: (d: DataSet, s: Schedule) => number): Method {
  return {
    name,
    family: 'weight',
    baseline: expected === undefined,
    byDefault,
    ...(expected === undefined ? {} : { expected: always(expected) }),
    about,
    trains: (ctx) => {
      const w = ctx.schedule.weight
      const how = expected === undefined ? ['train_type=static'] : [`component_name=${name}`, 'log_weights=true']
      return [{ label: name, config: 'configs/weight.yaml', args: [...common(ctx), `max_steps=${w.steps}`, `warmup_step=${w.warmup}`, `components_cfg_file=${ctx.components}`, ...how] }]
    },
    work: (d, s) => plain(s.weight.steps, { forwardRows: forward(d, s) }),
  }
}

function reorder(name: string, byDefault: boolean, about: string, expected: Direction | undefined, forward: (d: DataSet, s: Schedule) => number, lego = false): Method {
  return {
    name,
    family: 'reorder',
    baseline: expected === undefined,
    byDefault,
    ...(expected === undefined ? {} : { expected: always(expected) }),
    about,
    trains: (ctx) => {
      const r = ctx.schedule.reorder
      return [
        {
          label: name,
          config: 'configs/lego.yaml',
          args: [
            ...common(ctx),
            ...windows(r),
            `num_train_epochs=${r.epochs}`,
            `train_type=${lego ? 'dynamic_lego' : 'dynamic_reorder'}`,
            `components_cfg_file=${ctx.components}`,
            `component_name=${name}`,
          ],
        },
      ]
    },
    work: (d, s) => plain(windowSteps(s.reorder) * s.reorder.epochs, { forwardRows: forward(d, s) }),
  }
}

const refreshes = (s: Schedule): number => Math.ceil(Math.max(0, s.weight.steps - s.weight.warmup) / 50)

/** Every method of the study. The expected directions are argued in docs/results.md ("Expected directions"). */
export const METHODS: readonly Method[] = [
  select('random', true, 'uniform draws without replacement (the preset `random`)', undefined, () => ({})),
  select('loss', true, 'the `loss` preset: 5× the draw weight for the middle loss tercile (`focus: medium`)', 'lower', (d, s) => ({ forwardRows: d.poolRows * s.select.times })),
  select('less', true, 'the `less` preset: top-k by the cosine of Adam-preconditioned train gradients to the mean held-out gradient (proj_dim 1024)', 'lower', (d, s) => ({
    gradientRows: (d.poolRows + evalRows(d)) * s.select.times,
  })),
  {
    name: 'uniform',
    family: 'mix',
    baseline: true,
    byDefault: true,
    about: '`static_mix`, `mixture_sample_rule: uniform` (equal domain shares)',
    trains: (ctx) => [{ label: 'uniform', config: 'configs/mix.yaml', args: mixArgs(ctx, staticMix(ctx, 'uniform')) }],
    work: (_, s) => plain(windowSteps(s.mix)),
  },
  {
    name: 'stratified',
    family: 'mix',
    baseline: true,
    byDefault: true,
    about: '`static_mix`, `mixture_sample_rule: stratified` (shares by domain size)',
    trains: (ctx) => [{ label: 'stratified', config: 'configs/mix.yaml', args: mixArgs(ctx, staticMix(ctx, 'stratified')) }],
    work: (_, s) => plain(windowSteps(s.mix)),
  },
  {
    name: 'doremi',
    family: 'mix',
    baseline: false,
    byDefault: true,
    needs: ['uniform'],
    expected: always('lower'),
    about: 'DoReMi in three steps: the uniform run of the seed is the reference; a proxy run with the `doremi` mixer (η 1, c 1e-3); the reported run trains the proxy\'s average weights as a static mixture',
    trains: (ctx) => {
      const proxy = join(ctx.dir, 'proxy')
      const components = join(ctx.dir, 'doremi-components.yaml')
      return [
        { label: 'proxy', config: 'configs/mix.yaml', args: mixArgs(ctx, ['component_name=doremi_study'], components) },
        {
          label: 'doremi',
          config: 'configs/mix.yaml',
          args: mixArgs(ctx, [...staticMix(ctx, 'mixture'), `init_mixture_proportions=${join(proxy, 'doremi_average_weights.json')}`]),
        },
      ]
    },
    work: (_, s) => ({ processes: 2, steps: 2 * windowSteps(s.mix), forwardRows: 8 * windowSteps(s.mix), gradientRows: 0 }),
  },
  {
    name: 'odm',
    family: 'mix',
    baseline: false,
    byDefault: true,
    expected: (data, baseline) => (data === 'quality' && baseline === 'uniform' ? 'higher' : 'none'),
    about: 'the `odm` mixer (Exp3 rewarded by each domain\'s training loss), its warm-up cut to the schedule\'s',
    trains: (ctx) => [{ label: 'odm', config: 'configs/mix.yaml', args: mixArgs(ctx, ['component_name=odm_study']) }],
    work: (_, s) => plain(windowSteps(s.mix)),
  },
  {
    name: 'ado',
    family: 'mix',
    baseline: false,
    byDefault: false,
    expected: always('none'),
    about: 'the `ado` mixer, started after the warm-up',
    trains: (ctx) => [{ label: 'ado', config: 'configs/mix.yaml', args: mixArgs(ctx, ['component_name=ado_study']) }],
    work: (_, s) => plain(windowSteps(s.mix)),
  },
  weight('unweighted', true, 'plain training (`train_type: static`): every sample weight 1, the same rows in the same order', undefined, () => 0),
  weight('loss_linupper', true, 'the `loss` weighter, `strategy: linupper` (DataFlex\'s default): more weight to the higher losses of each micro-batch, flat above its mid-range', 'higher', () => 0),
  weight('loss_quadratic', true, 'the `loss` weighter, `strategy: quadratic`: most weight to the middle of each micro-batch\'s loss range, least to both ends', 'lower', () => 0),
  weight('adapt', true, 'the `adapt` weighter: sigmoid of the cosine of a sample\'s embedding to the held-out rows (the anchors)', 'none', (d, s) => evalRows(d) * refreshes(s)),
  weight('joint_update_aware', false, 'the `joint_update_aware` weighter, its target the whole held-out set', 'none', (d, s) => evalRows(d) * refreshes(s)),
  reorder('shuffle', true, 'a static `shuffle` (seeded by the run): one random order of the pool read as a stream', undefined, () => 0),
  reorder('sorting', true, 'static `sorting` by the initial model\'s per-row loss, easy to hard', 'none', (d) => d.poolRows),
  reorder('folding', true, 'static `folding` (3 layers) by the initial model\'s per-row loss, easy to hard', 'none', (d) => d.poolRows),
  reorder('dyn_saw', false, 'dynamic `saw` by the model\'s loss, rescored over the rows left every interval', 'none', (d, s) => (d.poolRows * s.reorder.times * s.reorder.epochs) / 2),
  reorder(
    'select_then_reorder',
    false,
    '`dynamic_lego`: the loss selector keeps half the pool each pass, dyn_saw orders it',
    'none',
    (d, s) => d.poolRows * s.reorder.epochs * (1 + s.reorder.times / 4),
    true,
  ),
]

export function methodNamed(name: string): Method {
  const m = METHODS.find((x) => x.name === name)
  if (m === undefined) throw new Error(`unknown method ${name}; one of ${METHODS.map((x) => x.name).join(', ')}`)
  return m
}

/** The baselines a method is compared with: every baseline of its family. */
export const baselinesOf = (m: Method): Method[] => METHODS.filter((b) => b.family === m.family && b.baseline)
