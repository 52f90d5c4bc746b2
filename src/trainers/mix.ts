/**
 * `train_type: dynamic_mix`: every dataset of `dataset:` is a domain. The run is a warm-up window on the initial
 * proportions, then one window per mixer update (mix-schedule.ts), or one fixed mixture (`static_mix`). Before each
 * window the trainer draws exactly B_g × its steps samples by the window's proportions (mix-draw.ts) and trains them
 * as one pass; what the mixer learns of training comes from that pass's own forward: per-sample loss sums and token
 * counts (and excess losses over a reference model, for DoReMi), added up per domain and step. Every decision goes to
 * decisions.jsonl; the Python DataFlex's per-update files are written too, for existing scripts.
 */
import { appendFileSync, existsSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import type { LoadedConfig } from '../config/index.ts'
import { Rng } from '../math/rng.ts'
import type { Domain, DomainStats, HeldOut, MixContext, MixerInstance, MixResult, OutputRecord, StepStats } from '../strategies/mixer.ts'
import type { ResolvedComponent } from '../strategies/presets.ts'
import type { ModelOps } from '../strategies/types.ts'
import { writeFileAtomic } from '../util/atomic.ts'
import type { DriverSummary, TrainDriver, TrainedSamples } from './driver.ts'
import type { Executor, LoadInfo, PassPlan } from './executor.ts'
import { apportion, DomainStreams, normalized, ruleProportions, type StreamState } from './mix-draw.ts'
import { datasetNames, domainRows, holdOut, initialProportions, mixerEvalSets, type InitialProportions } from './mix-domains.ts'
import { buildMixSchedule, type MixSchedule, type MixWindow } from './mix-schedule.ts'
import { BridgeModelOps } from './model-ops.ts'
import type { StepPosition } from './schedule.ts'
import { createComponent, indexFields, prepareComponent, restoreState, StrategyError, StrategyRuntime } from './strategy-runtime.ts'
import type { Trainer, TrainerOptions } from './trainer.ts'
import { microBatchRows, passPlanOf, shuffled, walk } from './walk.ts'

export type ResolvedMixer = ResolvedComponent<'mixer'>

export interface MixPrepared {
  /** Undefined with `static_mix: true` (no mixer runs). */
  mixer: ResolvedMixer | undefined
  domains: string[]
  initial: InitialProportions
  /** Each domain's `mixer_eval_dataset` set, if any. */
  evalSets: (string | undefined)[]
}

export interface MixRunOptions extends TrainerOptions {
  /** The model handle mixers get; default: the executor's ops. */
  modelOps?: (exec: Executor, info: LoadInfo) => ModelOps
}

/** Zeroed per-domain sums for k domains (with excess sums when a reference model is used). */
function zeroStats(k: number, excess: boolean): DomainStats {
  return {
    lossSum: new Float64Array(k),
    tokens: new Float64Array(k),
    samples: new Float64Array(k),
    ...(excess ? { excessSum: new Float64Array(k) } : {}),
  }
}

function addInto(into: DomainStats, s: DomainStats): void {
  for (let d = 0; d < into.lossSum.length; d++) {
    into.lossSum[d]! += s.lossSum[d]!
    into.tokens[d]! += s.tokens[d]!
    into.samples[d]! += s.samples[d]!
    if (into.excessSum && s.excessSum) into.excessSum[d]! += s.excessSum[d]!
  }
}

/** Per-step, per-domain sums of a trained pass (samples arrive in plan order; a stopped pass has fewer). */
export function passStats(plan: PassPlan, trained: TrainedSamples, domainOf: Int32Array, k: number, firstStep: number): StepStats[] {
  const out: StepStats[] = []
  let sample = 0
  let micro = 0
  const n = trained.lossSum.length
  for (let s = 0; s < plan.stepSizes.length && sample < n; s++) {
    const st = { step: firstStep + s, ...zeroStats(k, trained.excessSum !== undefined) }
    for (let m = 0; m < plan.stepSizes[s]!; m++, micro++) {
      for (let j = 0; j < plan.microSizes[micro]! && sample < n; j++, sample++) {
        const d = domainOf[plan.indices[sample]!]!
        st.lossSum[d]! += trained.lossSum[sample]!
        st.tokens[d]! += trained.tokens[sample]!
        st.samples[d]! += 1
        if (st.excessSum) st.excessSum[d]! += trained.excessSum![sample]!
      }
    }
    out.push(st)
  }
  return out
}

/** A step's statistics as plain JSON (checkpoints), and back. */
export interface StepStatsJson {
  step: number
  lossSum: number[]
  tokens: number[]
  samples: number[]
  excessSum?: number[]
}

export function statsJson(st: StepStats): StepStatsJson {
  return {
    step: st.step,
    lossSum: Array.from(st.lossSum),
    tokens: Array.from(st.tokens),
    samples: Array.from(st.samples),
    ...(st.excessSum ? { excessSum: Array.from(st.excessSum) } : {}),
  }
}

export function statsOf(j: StepStatsJson): StepStats {
  return {
    step: j.step,
    lossSum: Float64Array.from(j.lossSum),
    tokens: Float64Array.from(j.tokens),
    samples: Float64Array.from(j.samples),
    ...(j.excessSum ? { excessSum: Float64Array.from(j.excessSum) } : {}),
  }
}

/** What a checkpoint of a mix run holds besides the sidecar's half. */
interface MixState {
  instance: unknown
  current: number[]
  pending: StepStatsJson[]
  seen: number[]
  updates: number
  streams: StreamState[]
  records: Record<string, number>
}

/** A record's file must be a plain name inside the output directory. */
function recordFile(name: string, strategy: string): string {
  if (name === '' || basename(name) !== name || name.startsWith('.')) {
    throw new StrategyError('unsupported', `${strategy}: output file '${name}' must be a plain file name`)
  }
  return name
}

/**
 * A mixer's per-update compatibility files in the output directory (`doremi_weights.jsonl`, …), appended line by line.
 * Their sizes go into each checkpoint; a resumed run cuts them back (and empties one first written after it).
 */
export class RecordFiles {
  private sizes = new Map<string, number>()
  private restored: Map<string, number> | undefined

  constructor(private readonly outputDir: string) {}

  append(records: readonly OutputRecord[], strategy: string): void {
    for (const r of records) {
      const name = recordFile(r.file, strategy)
      const path = join(this.outputDir, name)
      if (this.restored !== undefined && !this.restored.has(name) && !this.sizes.has(name)) writeFileSync(path, '')
      appendFileSync(path, JSON.stringify(r.record) + '\n')
      this.sizes.set(name, statSync(path).size)
    }
  }

  state(): Record<string, number> {
    return Object.fromEntries(this.sizes)
  }

  restore(sizes: Record<string, number>): void {
    this.restored = new Map(Object.entries(sizes))
    for (const [name, size] of this.restored) {
      const path = join(this.outputDir, recordFile(name, 'resume'))
      if (existsSync(path)) truncateSync(path, size)
      this.sizes.set(name, size)
    }
  }
}

export async function runMix(d: TrainDriver, cfg: LoadedConfig, prep: MixPrepared, opts: MixRunOptions): Promise<DriverSummary> {
  const info = d.info
  const names = prep.domains
  const k = names.length
  const rows = domainRows(info, names)
  const domainOf = info.domains!.domain_of_row
  const seed = info.seed
  const b = microBatchRows(info)
  const ga = info.gradient_accumulation_steps
  const rule = cfg.dataflex.mixture_sample_rule ?? 'mixture'
  const outputDir = info.output_dir
  const records = new RecordFiles(outputDir)

  const runtime = prep.mixer ? new StrategyRuntime(prep.mixer, cfg, info, d.runlog, opts.log) : undefined
  const model = opts.modelOps ? opts.modelOps(d.exec, info) : new BridgeModelOps(d.exec, info)

  // The instance first: it says how many rows per domain it wants held out of the draws.
  const fullDomains: Domain[] = names.map((name, i) => ({ name, size: rows[i]!.length }))
  let instance: MixerInstance | undefined
  let domains = fullDomains
  const create = (ds: readonly Domain[]): MixerInstance =>
    createComponent(prep.mixer!, { domains: ds, initial: prep.initial.values, seed, baseDir: prep.mixer!.preset.baseDir })
  if (prep.mixer) instance = create(fullDomains)
  let heldOut: HeldOut[] = []
  let drawable = [...rows]
  if (instance?.heldOut !== undefined && instance.heldOut > 0) {
    ;({ heldOut, drawable } = holdOut(instance.heldOut, rows, prep.evalSets, info, seed))
    domains = names.map((name, i) => ({ name, size: drawable[i]!.length }))
    // The mixer sees the sizes it is drawn from.
    instance = create(domains)
  }
  const empty = domains.filter((dm) => dm.size === 0).map((dm) => dm.name)
  if (empty.length > 0) throw new StrategyError('unsupported', `domain(s) ${empty.join(', ')} have no rows left to draw from`)

  const poolSize = drawable.reduce((a, r) => a + r.length, 0)
  const schedule: MixSchedule = buildMixSchedule({
    poolSize,
    perDeviceBatch: info.per_device_train_batch_size,
    gradAccum: ga,
    worldSize: info.world_size,
    staticMix: cfg.dataflex.static_mix,
    warmupStep: cfg.dataflex.warmup_step,
    updateStep: cfg.dataflex.update_step,
    updateTimes: cfg.dataflex.update_times,
    trainStep: cfg.dataflex.train_step,
    maxSteps: info.max_steps,
    numTrainEpochs: info.num_train_epochs,
  })
  if (cfg.dataflex.train_step > 0 && !cfg.dataflex.static_mix && cfg.dataflex.update_times >= 0 && schedule.maxSteps !== cfg.dataflex.train_step) {
    opts.log(`note: with update_times >= 0 the run is warmup_step + update_step × update_times = ${schedule.maxSteps} steps; train_step (${cfg.dataflex.train_step}) is not used (as in the Python DataFlex)`)
  }
  // Data-sized epochs for the reported epoch: ⌊S / B_g⌋ steps each.
  const stepsPerEpoch = Math.max(1, Math.floor(poolSize / schedule.globalBatch))
  const streams = new DomainStreams(drawable, seed)
  const sizes = domains.map((dm) => dm.size)

  d.runlog.writeJson('mix.json', {
    component: prep.mixer?.key ?? null,
    algorithm: prep.mixer?.algorithm ?? null,
    params: prep.mixer?.rawParams ?? null,
    inputs: prep.mixer?.inputs ?? [],
    domains: names.map((name, i) => ({
      name,
      rows: info.domains!.rows[i],
      raw_rows: info.domains!.raw_rows[i],
      dropped: info.domains!.raw_rows[i]! - info.domains!.rows[i]!,
      drawable: drawable[i]!.length,
      held_out: heldOut[i] ? { split: heldOut[i]!.split, rows: heldOut[i]!.indices.length } : null,
      eval_set: prep.evalSets[i] ?? null,
    })),
    mixture_sample_rule: rule,
    initial_proportions: Array.from(prep.initial.values),
    initial_source: prep.initial.source,
    reference_model: instance?.referenceModel ?? null,
    global_batch: schedule.globalBatch,
    max_steps: schedule.maxSteps,
    updates: schedule.updates,
    windows: schedule.windows.length,
  })

  let current = prep.initial.values
  let pending: StepStats[] = []
  const seen = new Float64Array(k)
  const excess = instance?.referenceModel !== undefined
  let updates = 0
  const stepPositions = (w: MixWindow): StepPosition[] =>
    Array.from({ length: w.steps }, (_, j) => {
      const globalStep = w.firstStep + j
      return { globalStep, epoch: globalStep / stepsPerEpoch, endsPass: globalStep === schedule.maxSteps, maxSteps: schedule.maxSteps }
    })

  const windows = schedule.windows.map((w) => ({ window: w, decisionStep: w.decisionStep, steps: stepPositions(w) }))
  const absorb = (trained: TrainedSamples, plan: PassPlan, firstStep: number): void => {
    const stats = passStats(plan, trained, domainOf, k, firstStep)
    for (const st of stats) for (let i = 0; i < k; i++) seen[i]! += st.samples[i]!
    pending.push(...stats)
  }
  if (opts.resume !== undefined) {
    const saved = opts.resume.trainer as MixState
    if (instance) restoreState(instance, saved.instance, prep.mixer!.strategy)
    current = Float64Array.from(saved.current)
    pending = saved.pending.map(statsOf)
    seen.set(saved.seen)
    updates = saved.updates
    streams.restore(saved.streams)
    records.restore(saved.records)
  }

  await walk(d, {
    maxSteps: schedule.maxSteps,
    windows,
    signal: opts.signal,
    phase: ({ window }) => (window.kind === 'warmup' ? 'warmup' : 'training'),
    ...(opts.resume === undefined ? {} : { resume: opts.resume }),
    checkpoint: (_step, trained, _w, plan, firstStep): MixState => {
      // The pass so far counts as trained: a resumed run hands it to the mixer with the rest of the window.
      const partial = passStats(plan, trained, domainOf, k, firstStep)
      const seenNow = Float64Array.from(seen)
      for (const st of partial) for (let i = 0; i < k; i++) seenNow[i]! += st.samples[i]!
      return {
        instance: instance?.state?.() ?? null,
        current: Array.from(current),
        pending: [...pending, ...partial].map(statsJson),
        seen: Array.from(seenNow),
        updates,
        streams: streams.state(),
        records: records.state(),
      }
    },
    onPass: (trained, _w, plan, _weigh, firstStep) => absorb(trained, plan, firstStep),
    plan: async ({ window: w }) => {
      let used: Float64Array
      let logDecision: (fields: Record<string, unknown>) => void
      if (w.kind === 'update') {
        d.report('mixing', w.decisionStep)
        const u = await update(w)
        used = ruleProportions(rule, u.proportions, sizes)
        logDecision = u.log
      } else {
        used = ruleProportions(rule, current, sizes)
        const strategy = w.kind === 'static' ? 'static_mix' : 'warmup'
        logDecision = (fields) => d.runlog.decision({ step: w.decisionStep, kind: 'plan', strategy, steps: [w.firstStep, w.lastStep], ...fields })
      }
      const counts = apportion(w.numSamples, used)
      const order = shuffled(streams.draw(counts), Rng.derive(seed, 'mix-order', w.decisionStep))
      // One line per window: the proportions drawn with and the samples actually drawn per domain.
      logDecision({ sampled_with: Array.from(used), drawn: Array.from(counts), ...indexFields(order) })
      const plan = passPlanOf(order, b, Array.from({ length: w.steps }, () => ga), 0, stepsPerEpoch * ga, (w.firstStep - 1) * ga)
      const lw = instance?.lossWeights ? (sampleLossWeights(instance, order, domainOf, k, prep.mixer!.strategy) ?? new Float64Array(order.length).fill(1)) : undefined
      if (lw !== undefined) {
        plan.weights = Float32Array.from(lw)
        plan.reduction = 'sample_mean'
      }
      if (instance?.referenceModel !== undefined) plan.referenceModel = instance.referenceModel
      return plan
    },
  })

  if (runtime && instance) {
    runtime.saveState(instance, d.stepsTrained)
    const files = instance.finish?.() ?? {}
    for (const [name, content] of Object.entries(files)) writeFileAtomic(join(outputDir, recordFile(name, prep.mixer!.strategy)), content)
  }
  return d.finish({ train_type: 'dynamic_mix', component: prep.mixer?.key ?? null, static_mix: cfg.dataflex.static_mix, updates })

  /** The mixer's decision at w's step; its decision line is written once the window is drawn. */
  async function update(w: MixWindow): Promise<{ proportions: Float64Array; log: (fields: Record<string, unknown>) => void }> {
    const asked = await askMixer(instance!, prep.mixer!.strategy, pending, excess, records, {
      step: w.decisionStep,
      update: w.update,
      updateTimes: schedule.updateTimes,
      domains,
      current,
      seen: Float64Array.from(seen),
      heldOut,
      rng: Rng.derive(seed, 'mix', w.decisionStep),
      model,
      cacheDir: runtime!.cacheDir,
      log: runtime!.log,
    })
    const fields = {
      step: w.decisionStep,
      kind: 'mix' as const,
      strategy: prep.mixer!.strategy,
      component: prep.mixer!.key,
      update: w.update,
      update_times: schedule.updateTimes,
      steps: [w.firstStep, w.lastStep],
      ...asked.fields,
    }
    const log = (drawn: Record<string, unknown>): void => runtime!.decision({ ...fields, ...drawn }, { info: asked.result.info, ms: asked.ms, timingKey: 'mix_ms' })
    pending = []
    current = asked.proportions
    updates++
    return { proportions: asked.proportions, log }
  }
}

/** A mixer's domain loss weights for each of `rows` (undefined: it has none yet); they must be finite and ≥ 0. */
export function sampleLossWeights(instance: MixerInstance, rows: Int32Array, domainOf: Int32Array, k: number, strategy: string): Float64Array | undefined {
  const lw = instance.lossWeights?.()
  if (lw === undefined) return undefined
  if (lw.length !== k || lw.some((v) => !Number.isFinite(v) || v < 0)) {
    throw new StrategyError('bad_scores', `${strategy}: lossWeights() must give ${k} finite non-negative numbers`)
  }
  return Float64Array.from(rows, (row) => lw[domainOf[row]!]!)
}

/**
 * Asks a mixer for proportions over the steps trained since its last decision (`steps`): checks them, appends its
 * records to their files, and gives the decision line's window fields.
 */
export async function askMixer(
  instance: MixerInstance,
  strategy: string,
  steps: readonly StepStats[],
  excess: boolean,
  records: RecordFiles,
  ctx: Omit<MixContext, 'steps' | 'window' | 'domainLosses'>,
): Promise<{ proportions: Float64Array; result: MixResult; ms: number; fields: Record<string, unknown> }> {
  const k = ctx.domains.length
  const window = zeroStats(k, excess)
  for (const st of steps) addInto(window, st)
  const domainLosses = Float64Array.from(window.lossSum, (l, i) => (window.tokens[i]! > 0 ? l / window.tokens[i]! : NaN))
  const t0 = performance.now()
  const result: MixResult = await instance.mix({ ...ctx, steps, window, domainLosses })
  const ms = performance.now() - t0
  const p = result?.proportions
  const next = p !== undefined && p.length === k ? normalized(p) : null
  if (next === null) {
    throw new StrategyError(
      'bad_scores',
      `${strategy}: mix() at step ${ctx.step} must return ${k} finite non-negative proportions with a positive sum, got ${Array.isArray(p) || ArrayBuffer.isView(p) ? `[${Array.from(p as ArrayLike<number>).join(', ')}]` : p === undefined ? 'none' : `${typeof p} ${JSON.stringify(p)}`}`,
    )
  }
  records.append(result.records ?? [], strategy)
  const fields = {
    proportions: Array.from(next),
    window_steps: steps.length,
    window_samples: Array.from(window.samples),
    window_loss: Array.from(domainLosses, (v) => (Number.isNaN(v) ? null : v)),
    ...(window.excessSum ? { window_excess: Array.from(window.excessSum, (v, i) => (window.tokens[i]! > 0 ? v / window.tokens[i]! : null)) } : {}),
  }
  return { proportions: next, result, ms, fields }
}

/** `train_type: dynamic_mix`: domains, initial proportions and the mixer preset are checked before the sidecar starts. */
export const mixTrainer: Trainer<MixPrepared> = {
  trainType: 'dynamic_mix',
  description: 'each dataset is a domain; a mixer sets the proportions every update_step steps (mixers: section), or static_mix fixes them',
  async prepare(cfg, log) {
    const domains = datasetNames(cfg.lf['dataset'])
    const initial = initialProportions(cfg, domains)
    const evalSets = mixerEvalSets(cfg, domains)
    if (cfg.dataflex.static_mix) {
      if (cfg.dataflex.component_name !== undefined) log(`note: static_mix is true, so component_name '${cfg.dataflex.component_name}' is not used`)
      return { mixer: undefined, domains, initial, evalSets }
    }
    const mixer = await prepareComponent(cfg, 'mixer', log)
    return { mixer, domains, initial, evalSets }
  },
  loadExtras: (_cfg, prep) => ({ domains: { eval_sets: prep.evalSets.filter((s): s is string => s !== undefined) } }),
  train: (d, cfg, prep, opts) => runMix(d, cfg, prep, opts),
}
