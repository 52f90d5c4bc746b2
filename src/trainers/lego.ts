/**
 * `train_type: dynamic_lego`: a pipeline of components (lego-pipeline.ts) decides each interval of the flex-epoch
 * schedule of dynamic_select. On the index side a selector shrinks (filter) or draws the pool, a mixer draws it by
 * domain proportions, a reorder puts it in curriculum order, and the interval is cut to exactly B_g × its steps; on the
 * loss side weighters (and a mixer's domain loss weights, DoReMi's) multiply into one weight per sample of every
 * micro-batch. Each stage decides by its own clock (warmup_step, every) and otherwise applies its last decision to
 * the pool it is handed; per-sample losses are scored once per boundary and shared (lego-board.ts). Every decision
 * goes to decisions.jsonl; every stage's clock and state go beside each checkpoint.
 */
import { join, resolve } from 'node:path'
import { ConfigError, type LoadedConfig } from '../config/index.ts'
import { hashArrays } from '../math/hash.ts'
import { Rng } from '../math/rng.ts'
import { uniformWithReplacement, uniformWithoutReplacement } from '../math/sampling.ts'
import { findPreset, type ComponentPreset } from '../strategies/components.ts'
import type { ComponentKind } from '../strategies/kinds.ts'
import type { Domain, HeldOut, MixerInstance, StepStats } from '../strategies/mixer.ts'
import type { ResolvedComponent } from '../strategies/presets.ts'
import type { ReorderInstance } from '../strategies/reorder.ts'
import type { ModelOps, SelectorInstance, Stateful } from '../strategies/types.ts'
import type { WeighterInstance } from '../strategies/weighter.ts'
import { writeFileAtomic } from '../util/atomic.ts'
import type { DriverSummary, TrainDriver } from './driver.ts'
import type { Executor, LoadInfo, PassPlan } from './executor.ts'
import { ScoreBoard } from './lego-board.ts'
import { buildPipeline, enforceBudget, isDue, PipelineError, PipelineParamsSchema, quotaDraw, type Pipeline, type PipelineParams, type PipelineStage } from './lego-pipeline.ts'
import { askMixer, passStats, RecordFiles, sampleLossWeights, statsJson, statsOf, type StepStatsJson } from './mix.ts'
import { datasetNames, domainRows, holdOut, initialProportions, mixerEvalSets, type InitialProportions } from './mix-domains.ts'
import { ruleProportions } from './mix-draw.ts'
import { BridgeModelOps } from './model-ops.ts'
import { serveDeps, slotPlanOf, tenths } from './reorder.ts'
import { DynamicStream, StaticStream, streamFor, type Served, type ServeDeps, type Stream, type StreamState } from './reorder-serve.ts'
import { flexSchedule, flexWindows, settleIndices } from './select.ts'
import type { Window } from './select-schedule.ts'
import { checkIndices, createComponent, indexFields, plainState, prepareComponent, restoreState, StrategyError, StrategyRuntime } from './strategy-runtime.ts'
import type { Trainer, TrainerOptions } from './trainer.ts'
import { microBatchRows, passPlanOf, shuffled, walk } from './walk.ts'
import { WeighSession } from './weigh-session.ts'

export interface LegoPrepared {
  key: string
  preset: ComponentPreset
  params: PipelineParams
  pipeline: Pipeline
  /** Each stage's component, by stage id. */
  components: Map<string, ResolvedComponent>
  domains: string[]
  initial: InitialProportions
  evalSets: (string | undefined)[]
}

export interface LegoRunOptions extends TrainerOptions {
  /** The model handle stages get (through the score board); default: the executor's ops. */
  modelOps?: (exec: Executor, info: LoadInfo) => ModelOps
}

/** The pipeline preset named by component_name, its params and stage rules checked, every stage's component resolved. */
export async function prepareLego(cfg: LoadedConfig, log: (line: string) => void): Promise<LegoPrepared> {
  const key = cfg.dataflex.component_name!
  const preset = await findPreset(cfg, 'pipelines', key)
  const at = (path: string): string => `pipelines.${key}.params${path === '' ? '' : `.${path}`}`
  const parsed = PipelineParamsSchema.safeParse(preset.params)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const path = issue.path.join('.')
    throw new ConfigError('bad_value', `pipeline '${key}' (${preset.source}): ${path === '' ? '' : `'${path}' `}${issue.message}`, { key: at(path) })
  }
  const params = parsed.data
  let pipeline: Pipeline
  try {
    pipeline = buildPipeline(params.stages)
  } catch (err) {
    if (!(err instanceof PipelineError)) throw err
    throw new ConfigError('bad_value', `pipeline '${key}' (${preset.source}): ${err.message}`, { key: at(err.at) })
  }
  for (const note of [...preset.warnings, ...pipeline.notes]) log(`[${key}] ${note}`)
  if (params.score_num_workers !== 2) log(`[${key}] note: score_num_workers is accepted for DataFlex presets; scoring runs in the sidecar`)
  const components = new Map<string, ResolvedComponent>()
  for (const stage of [...pipeline.index, ...pipeline.loss]) {
    const r = await prepareComponent(cfg, stage.family as ComponentKind, log, stage.component)
    if (r.kind === 'reorder' && r.rawParams['apply_at'] === 'raw') {
      throw new ConfigError('bad_value', `pipeline '${key}': reorder '${stage.component}' orders raw rows before tokenisation (apply_at: raw); a pipeline orders its pool at every boundary`, {
        key: at('stages'),
        hint: 'use a reorder preset with apply_at: index',
      })
    }
    components.set(stage.id, r)
  }
  const domains = datasetNames(cfg.lf['dataset'])
  return { key, preset, params, pipeline, components, domains, initial: initialProportions(cfg, domains), evalSets: mixerEvalSets(cfg, domains) }
}

/** A stage's component at run time: its runtime (cache folder, decision lines) and instance. */
interface Live<I> {
  readonly stage: PipelineStage
  readonly r: ResolvedComponent
  readonly runtime: StrategyRuntime
  readonly instance: I
  lastRun: number | undefined
}

/**
 * The reorder stage's stream over the pool it is handed: a new stream whenever that pool changes, without the rows it
 * already served this pass (consume-once across pool changes, while an interval's worth is left).
 */
class ReorderStage {
  private stream: Stream | undefined
  private poolHash = ''
  private readonly served = new Set<number>()

  constructor(
    private readonly live: Live<ReorderInstance>,
    private readonly deps: ServeDeps,
  ) {}

  private get consumeOnce(): boolean {
    const s = this.live.instance.serving
    return s !== undefined && s.variant === 'dynamic' && s.consumeOnce
  }

  /** Rows the warm-up trained count as served. */
  markServed(rows: Int32Array): void {
    if (this.consumeOnce) for (const r of rows) this.served.add(r)
  }

  async serve(pool: Int32Array, k: number, due: boolean): Promise<Served & { reset: boolean }> {
    const hash = hashArrays(pool)
    const reset = this.stream === undefined || hash !== this.poolHash
    if (reset) {
      this.poolHash = hash
      this.stream = streamFor(this.live.instance.serving, pool, slotPlanOf(this.deps))
      if (this.stream instanceof DynamicStream) {
        const done = this.consumeOnce ? pool.filter((r) => this.served.has(r)) : new Int32Array(0)
        // Rows already served this pass leave the new pool while an interval's worth is left; else a new pass starts.
        if (pool.length - done.length >= Math.min(k, pool.length)) this.stream.exclude(done)
        else this.served.clear()
      }
    }
    const s = this.stream!
    const out = s instanceof StaticStream ? await s.take(k, this.deps) : await s.next(k, this.deps, due || reset)
    this.markServed(out.indices)
    return { ...out, reset }
  }

  state(): ReorderStageState {
    return { pool_hash: this.poolHash, served: Array.from(this.served).sort((a, b) => a - b), stream: this.stream?.state() ?? null }
  }

  restore(s: ReorderStageState): void {
    this.poolHash = s.pool_hash
    this.served.clear()
    for (const r of s.served) this.served.add(r)
    this.stream = s.stream === null ? undefined : streamFor(this.live.instance.serving, new Int32Array(0), slotPlanOf(this.deps), s.stream)
  }
}

interface ReorderStageState {
  pool_hash: string
  served: number[]
  stream: StreamState | null
}

/** What a checkpoint of a lego run holds besides the sidecar's half. */
interface LegoState {
  pipeline: string
  stages: { stage: string; last_run: number | null; state: unknown }[]
  selection: number[] | null
  proportions: number[]
  pending: StepStatsJson[]
  seen: number[]
  mix_updates: number
  reorder: ReorderStageState | null
  session: ReturnType<WeighSession['state']> | null
  records: Record<string, number>
}

export async function runLego(d: TrainDriver, cfg: LoadedConfig, prep: LegoPrepared, opts: LegoRunOptions): Promise<DriverSummary> {
  const info = d.info
  const { key, params, pipeline } = prep
  const seed = info.seed
  const n = info.num_train
  const b = microBatchRows(info)
  const ga = info.gradient_accumulation_steps
  const schedule = flexSchedule(info, cfg)
  const names = prep.domains
  const k = names.length
  const rows = domainRows(info, names)
  const domainOf = info.domains!.domain_of_row
  const rule = cfg.dataflex.mixture_sample_rule ?? 'mixture'
  const board = new ScoreBoard(opts.modelOps ? opts.modelOps(d.exec, info) : new BridgeModelOps(d.exec, info), params.score_batch_size)
  const model = board.view(0, 0)

  const live = <I>(stage: PipelineStage, make: (r: ResolvedComponent) => I): Live<I> => {
    const r0 = prep.components.get(stage.id)!
    // The pipeline's cache_dir puts every stage's cache under <cache_dir>/<family>_<component>.
    const r = params.cache_dir === null ? r0 : { ...r0, cacheRoot: resolve(prep.preset.baseDir, params.cache_dir, `${stage.family}_${stage.component}`) }
    return { stage, r, runtime: new StrategyRuntime(r, cfg, info, d.runlog, opts.log), instance: make(r), lastRun: undefined }
  }
  const stageOf = (family: string): PipelineStage | undefined => pipeline.index.find((s) => s.family === family)

  const selStage = stageOf('selector')
  const selector = selStage && live<SelectorInstance>(selStage, (r) => createComponent(r as never, { numTrain: n, numEval: info.num_eval, seed, baseDir: r.preset.baseDir }))

  // The mixer first: the rows it holds out for evaluation are never trained, whatever stage draws.
  const mixStage = stageOf('mixer')
  let domains: Domain[] = names.map((name, i) => ({ name, size: rows[i]!.length }))
  let heldOut: HeldOut[] = []
  let drawable = rows
  const makeMixer = (r: ResolvedComponent, ds: readonly Domain[]): MixerInstance =>
    createComponent(r as never, { domains: ds, initial: prep.initial.values, seed, baseDir: r.preset.baseDir })
  let mixer = mixStage && live<MixerInstance>(mixStage, (r) => makeMixer(r, domains))
  if (mixer?.instance.heldOut !== undefined && mixer.instance.heldOut > 0) {
    ;({ heldOut, drawable } = holdOut(mixer.instance.heldOut, rows, prep.evalSets, info, seed))
    domains = names.map((name, i) => ({ name, size: drawable[i]!.length }))
    const m = mixer
    mixer = { ...m, instance: makeMixer(m.r, domains) }
  }
  const empty = domains.filter((dm) => dm.size === 0).map((dm) => dm.name)
  if (empty.length > 0) throw new StrategyError('unsupported', `domain(s) ${empty.join(', ')} have no rows left to draw from`)
  const base = Int32Array.from(drawable.flatMap((r) => Array.from(r))).sort()
  const inBase = new Uint8Array(n)
  for (const r of base) inBase[r] = 1

  const reoStage = stageOf('reorder')
  const reorderLive = reoStage && live<ReorderInstance>(reoStage, (r) => createComponent(r as never, { numTrain: n, seed, baseDir: r.preset.baseDir }))
  // The step and model the reorder's scores and order are asked at: the boundary's, through the board.
  let reorderAt = { step: 0, model }
  const reorder = reorderLive && new ReorderStage(reorderLive, serveDeps(reorderLive.instance, () => reorderAt, seed, reorderLive.runtime))

  const weighters = pipeline.loss.map((st) =>
    live<WeighterInstance>(st, (r) => createComponent(r as never, { numTrain: n, numEval: info.num_eval, seed, baseDir: r.preset.baseDir })),
  )
  // A mixer's domain loss weights (DoReMi's) multiply into the weighters' from the mixer's warm-up end on.
  const domainWeights = (indices: Int32Array, step: number): Float64Array | undefined => {
    if (mixer?.instance.lossWeights === undefined || step <= mixer.stage.warmupStep) return undefined
    return sampleLossWeights(mixer.instance, indices, domainOf, k, mixer.r.strategy)
  }
  const session =
    weighters.length === 0
      ? undefined
      : new WeighSession({
          stages: weighters.map((w) => ({ instance: w.instance, runtime: w.runtime, fromStep: w.stage.warmupStep })),
          seed,
          runlog: d.runlog,
          logWeights: cfg.dataflex.log_weights,
          ...(mixer?.instance.lossWeights === undefined ? {} : { multiplier: { name: mixer.r.key, weights: domainWeights } }),
        })

  const all = [selector, mixer, reorderLive, ...weighters].filter((x) => x !== undefined) as Live<unknown>[]
  d.runlog.writeJson('lego.json', {
    pipeline: key,
    source: prep.preset.source,
    params,
    index_stages: pipeline.index.map((s) => ({ ...s, scoreMaxAge: Number.isFinite(s.scoreMaxAge) ? s.scoreMaxAge : null })),
    loss_stages: pipeline.loss.map((s) => s.id),
    uniform_take: pipeline.uniformTake,
    components: all.map((l) => ({ stage: l.stage.id, component: l.r.key, algorithm: l.r.algorithm, strategy: l.r.strategy, params: l.r.rawParams, inputs: l.r.inputs, cache_dir: l.runtime.cacheDir })),
    domains: names.map((name, i) => ({ name, rows: rows[i]!.length, drawable: drawable[i]!.length, held_out: heldOut[i] ? { split: heldOut[i]!.split, rows: heldOut[i]!.indices.length } : null })),
    reduction: session?.reduction ?? (mixer?.instance.lossWeights ? 'sample_mean' : null),
    reference_model: mixer?.instance.referenceModel ?? null,
    global_batch: schedule.globalBatch,
    flex_epoch_length: schedule.flexEpochLength,
    max_steps: schedule.maxSteps,
    windows: schedule.windows.length,
  })

  // The mixer's view of training: per-step domain statistics since its last decision.
  let pending: StepStats[] = []
  const seen = new Float64Array(k)
  let proportions = prep.initial.values
  let selection: Int32Array | undefined
  let mixUpdates = 0
  const records = new RecordFiles(info.output_dir)
  const excess = mixer?.instance.referenceModel !== undefined

  const stateOf = (extra: StepStats[] = []): LegoState => {
    const seenNow = Float64Array.from(seen)
    for (const st of extra) for (let i = 0; i < k; i++) seenNow[i]! += st.samples[i]!
    return {
      pipeline: key,
      stages: all.map((l) => ({ stage: l.stage.id, last_run: l.lastRun ?? null, state: (l.instance as Stateful).state?.() ?? null })),
      selection: selection === undefined ? null : Array.from(selection),
      proportions: Array.from(proportions),
      pending: [...pending, ...extra].map(statsJson),
      seen: Array.from(seenNow),
      mix_updates: mixUpdates,
      reorder: reorder?.state() ?? null,
      session: session?.state() ?? null,
      records: records.state(),
    }
  }
  const saveState = (step: number): void =>
    d.runlog.writeJson(join('state', `pipeline-${key}.json`), { step, kind: 'pipeline', state: plainState(stateOf(), `${key}: a stage's state()`) })
  if (opts.resume !== undefined) {
    const saved = opts.resume.trainer as LegoState
    for (const l of all) {
      const st = saved.stages.find((x) => x.stage === l.stage.id)
      if (st === undefined) throw new StrategyError('bad_state', `${key}: the checkpoint has no state for stage ${l.stage.id} (was the pipeline changed?)`)
      l.lastRun = st.last_run ?? undefined
      restoreState(l.instance as Stateful, st.state, l.r.strategy)
    }
    selection = saved.selection === null ? undefined : Int32Array.from(saved.selection)
    proportions = Float64Array.from(saved.proportions)
    pending = saved.pending.map(statsOf)
    seen.set(saved.seen)
    mixUpdates = saved.mix_updates
    if (saved.reorder !== null) reorder?.restore(saved.reorder)
    if (saved.session !== null) session?.restore(saved.session)
    records.restore(saved.records)
  }

  const windows = flexWindows(schedule)
  const unhandle = session?.install(d.exec)
  const beforeStep = session?.beforeStep(model)
  try {
    await walk(d, {
      maxSteps: schedule.maxSteps,
      windows,
      signal: opts.signal,
      phase: ({ window }) => (window.kind === 'warmup' ? 'warmup' : 'training'),
      ...(beforeStep === undefined ? {} : { beforeStep }),
      onPass: (trained, _w, plan, w, firstStep) => {
        for (const st of passStats(plan, trained, domainOf, k, firstStep)) {
          for (let i = 0; i < k; i++) seen[i]! += st.samples[i]!
          pending.push(st)
        }
        session?.onPass(w)
      },
      ...(opts.resume === undefined ? {} : { resume: opts.resume }),
      checkpoint: (_step, trained, _w, plan, firstStep) => {
        session?.flush()
        return stateOf(passStats(plan, trained, domainOf, k, firstStep))
      },
      plan: async ({ window: w }) => {
        const { indices, ordered } = w.kind === 'warmup' ? warmup(w) : await interval(w)
        const order = ordered || info.disable_shuffling ? indices : shuffled(indices, Rng.derive(seed, 'shuffle', w.decisionStep))
        const microDone = (w.decisionStep - w.flexEpoch * schedule.flexEpochLength) * ga
        const plan: PassPlan = passPlanOf(order, b, Array.from({ length: w.steps }, () => ga), w.flexEpoch, schedule.flexEpochLength * ga, microDone)
        if (session !== undefined) Object.assign(plan, session.planFields())
        else if (mixer?.instance.lossWeights !== undefined) {
          // Domain weights alone change only at boundaries: they travel with the plan.
          plan.weights = Float32Array.from(domainWeights(order, w.firstStep) ?? new Float64Array(order.length).fill(1))
          plan.reduction = 'sample_mean'
        }
        if (mixer?.instance.referenceModel !== undefined) plan.referenceModel = mixer.instance.referenceModel
        return plan
      },
    })
  } catch (err) {
    if (session) session.rethrow(err)
    throw err
  } finally {
    unhandle?.()
  }
  session?.flush()
  saveState(d.stepsTrained)
  if (mixer?.instance.finish) {
    for (const [name, content] of Object.entries(mixer.instance.finish())) writeFileAtomic(join(info.output_dir, name), content)
  }
  return d.finish({ train_type: 'dynamic_lego', component: key, pipeline: pipeline.index.map((s) => s.id).concat(pipeline.loss.map((s) => s.id)), mix_updates: mixUpdates, board: board.stats, ...(session?.summary() ?? {}) })

  /** A warm-up window: rows drawn at random from the pool (a fresh draw per flex-epoch). */
  function warmup(w: Window): { indices: Int32Array; ordered: boolean } {
    const rng = Rng.derive(seed, 'warmup', w.flexEpoch)
    const picked = w.numSamples <= base.length ? uniformWithoutReplacement(rng, base.length, w.numSamples) : uniformWithReplacement(rng, base.length, w.numSamples)
    const indices = Int32Array.from(picked, (j) => base[j]!)
    reorder?.markServed(indices)
    d.runlog.decision({ step: w.decisionStep, kind: 'plan', strategy: 'warmup', component: key, flex_epoch: w.flexEpoch, steps: [w.firstStep, w.lastStep], ...indexFields(indices) })
    return { indices, ordered: false }
  }

  /** An interval: the index stages in order, then the budget. */
  async function interval(w: Window): Promise<{ indices: Int32Array; ordered: boolean }> {
    const s = w.decisionStep
    const want = w.numSamples
    const before = board.stats
    let pool: Int32Array = base
    let ordered = false
    const trail: Record<string, unknown>[] = []
    for (const st of pipeline.index) {
      const size = pool.length
      if (s < st.warmupStep) {
        trail.push({ stage: st.id, action: 'waiting', in: size, out: size })
        continue
      }
      const due = isDue(st, s, (st.family === 'selector' ? selector : st.family === 'mixer' ? mixer : reorderLive)!.lastRun)
      let action = 'applied'
      if (st.family === 'selector') {
        if (due) {
          selection = await select(st, s, st.mode === 'draw' ? want : Math.max(1, Math.floor(pool.length * st.keepRatio)), w)
          action = 'decided'
        }
        pool = selection!
      } else if (st.family === 'mixer') {
        if (due) {
          await mix(st, s, w)
          action = 'decided'
        }
        pool = quotaDraw(pool, domainOf, ruleProportions(rule, proportions, domains.map((dm) => dm.size)), { taker: st.taker, interval: want }, st.allowReplacement, Rng.derive(seed, 'lego-mix', s))
      } else {
        const served = await serveOrder(st, s, pool, want, due, w)
        if (served.rescored) action = 'decided'
        pool = served.indices
        ordered = true
      }
      trail.push({ stage: st.id, action, in: size, out: pool.length })
    }
    const { indices, action } = enforceBudget(pool, ordered, want, base, Rng.derive(seed, 'lego-budget', s))
    const after = board.stats
    d.runlog.decision({
      step: s,
      kind: 'plan',
      strategy: 'pipeline',
      component: key,
      flex_epoch: w.flexEpoch,
      update: w.update,
      steps: [w.firstStep, w.lastStep],
      stages: trail,
      budget: action,
      board: { computed: after.computed - before.computed, hits: after.hits - before.hits },
      ...indexFields(indices),
    })
    if (params.save_plans) savePlan(s, indices)
    return { indices, ordered }
  }

  async function select(st: PipelineStage, s: number, want: number, w: Window): Promise<Int32Array> {
    const l = selector!
    d.report('selecting', s)
    const t0 = performance.now()
    const result = await l.instance.select({
      step: s,
      numSamples: want,
      updateIndex: w.update,
      updateTimes: w.updateTimes,
      flexEpoch: w.flexEpoch,
      rng: Rng.derive(seed, 'select', s),
      model: board.view(s, st.scoreMaxAge),
      cacheDir: l.runtime.cacheDir,
      log: l.runtime.log,
    })
    const ms = performance.now() - t0
    let picked: Int32Array
    let returned: number
    let toppedUp = 0
    if (st.mode === 'draw') {
      ;({ indices: picked, returned, toppedUp } = settleIndices(result, want, n, Rng.derive(seed, 'topup', s), l.r.strategy))
    } else {
      const got = result?.indices as ArrayLike<number> | undefined
      if (got === undefined || got === null || typeof got.length !== 'number') throw new StrategyError('bad_index', `${l.r.strategy}: select() must return { indices } (an Int32Array)`)
      checkIndices(got, n, l.r.strategy)
      returned = got.length
      // A filter keeps each row once, in the selector's order.
      picked = Int32Array.from(new Set(Array.from(got)))
    }
    const held = picked.filter((r) => inBase[r] === 0)
    if (held.length > 0) picked = picked.filter((r) => inBase[r] === 1)
    if (picked.length === 0) throw new StrategyError('empty_selection', `${l.r.strategy}: selected no trainable rows at step ${s}`)
    l.lastRun = s
    l.runtime.decision(
      {
        step: s,
        kind: 'select',
        strategy: l.r.strategy,
        component: l.r.key,
        stage: st.id,
        mode: st.mode,
        requested: want,
        returned,
        ...(toppedUp > 0 ? { topped_up: toppedUp } : {}),
        ...(held.length > 0 ? { held_out_dropped: held.length } : {}),
        ...indexFields(picked),
      },
      { scores: result.scores, info: result.info, ms, timingKey: 'select_ms' },
    )
    return picked
  }

  async function mix(st: PipelineStage, s: number, w: Window): Promise<void> {
    const l = mixer!
    d.report('mixing', s)
    mixUpdates++
    const asked = await askMixer(l.instance, l.r.strategy, pending, excess, records, {
      step: s,
      update: mixUpdates,
      updateTimes: schedule.updateTimes,
      domains,
      current: proportions,
      seen: Float64Array.from(seen),
      heldOut,
      rng: Rng.derive(seed, 'mix', s),
      model: board.view(s, st.scoreMaxAge),
      cacheDir: l.runtime.cacheDir,
      log: l.runtime.log,
    })
    l.lastRun = s
    pending = []
    proportions = asked.proportions
    l.runtime.decision(
      { step: s, kind: 'mix', strategy: l.r.strategy, component: l.r.key, stage: st.id, update: mixUpdates, steps: [w.firstStep, w.lastStep], ...asked.fields },
      { info: asked.result.info, ms: asked.ms, timingKey: 'mix_ms' },
    )
  }

  async function serveOrder(st: PipelineStage, s: number, pool: Int32Array, want: number, due: boolean, w: Window): Promise<Served> {
    const l = reorderLive!
    d.report('reordering', s)
    reorderAt = { step: s, model: board.view(s, st.scoreMaxAge) }
    const t0 = performance.now()
    const served = await reorder!.serve(pool, want, due)
    const ms = performance.now() - t0
    if (served.rescored) l.lastRun = s
    l.runtime.decision(
      {
        step: s,
        kind: 'reorder',
        strategy: l.r.strategy,
        component: l.r.key,
        stage: st.id,
        pattern: l.instance.pattern ?? null,
        steps: [w.firstStep, w.lastStep],
        pool: pool.length,
        pool_changed: served.reset,
        rescored: served.rescored,
        ...indexFields(served.indices),
        ...(served.scores === undefined ? {} : { score_tenths: tenths(served.scores) }),
      },
      { scores: served.scores, ms, timingKey: 'reorder_ms' },
    )
    return served
  }

  /** The interval's plan with the board's latest losses, in the selection-cache layout. */
  function savePlan(s: number, indices: Int32Array): void {
    const dir = params.cache_dir === null ? join(d.runlog.dir, 'plans') : resolve(prep.preset.baseDir, params.cache_dir)
    const losses = board.latest('train', indices)
    writeFileAtomic(
      join(dir, `scoreboard_step_${s}.json`),
      JSON.stringify({ indices: Array.from(indices), metric: { loss: Array.from(losses, (v) => (Number.isNaN(v) ? null : v)) }, computed_at_step: s }),
    )
  }
}

/** `train_type: dynamic_lego`: the pipeline and every stage's component are checked before the sidecar starts. */
export const legoTrainer: Trainer<LegoPrepared> = {
  trainType: 'dynamic_lego',
  description: 'a pipeline of selector / mixer / reorder / weighter stages decides each interval (pipelines: section)',
  prepare: (cfg, log) => prepareLego(cfg, log),
  loadExtras: (_cfg, prep) => ({ domains: { eval_sets: prep.evalSets.filter((s): s is string => s !== undefined) } }),
  train: (d, cfg, prep, opts) => runLego(d, cfg, prep, opts),
}
