/**
 * `train_type: dynamic_weight`: Hugging Face's own plan of the run (static.ts: same samples, same order, same steps),
 * with a weighter deciding how much each sample counts. From step warmup_step + 1 on, every micro-batch's training
 * forward sends its per-sample losses (and, when the weighter asks, pooled hidden states of the same forward) to
 * TypeScript through the sidecar's `weigh` request; the weights come back before the backward. The warm-up trains
 * with weights of 1 under the weighter's reduction, so the loss keeps its scale across the switch. Model ops a
 * weighter needs (anchors, a target direction) run between steps (`refresh`), never inside one.
 */
import type { LoadedConfig } from '../config/index.ts'
import type { ResolvedComponent } from '../strategies/presets.ts'
import type { ModelOps } from '../strategies/types.ts'
import type { WeighterInstance } from '../strategies/weighter.ts'
import type { DriverSummary, TrainDriver } from './driver.ts'
import type { Executor, LoadInfo } from './executor.ts'
import { BridgeModelOps } from './model-ops.ts'
import { staticPassPlan, staticWindows, type StaticWindow } from './static.ts'
import { createComponent, prepareComponent, restoreState, StrategyRuntime } from './strategy-runtime.ts'
import type { Trainer, TrainerOptions } from './trainer.ts'
import { walk } from './walk.ts'
import { WeighSession } from './weigh-session.ts'

export type ResolvedWeighter = ResolvedComponent<'weighter'>

export interface WeightRunOptions extends TrainerOptions {
  /** The model handle a weighter's refresh gets; default: the executor's ops. */
  modelOps?: (exec: Executor, info: LoadInfo) => ModelOps
}

export async function runWeight(d: TrainDriver, cfg: LoadedConfig, weighter: ResolvedWeighter, opts: WeightRunOptions): Promise<DriverSummary> {
  const info = d.info
  const name = weighter.strategy
  const seed = info.seed
  const warmup = cfg.dataflex.warmup_step
  const { plan, windows } = await staticWindows(d, cfg.dataflex.train_step > 0 ? cfg.dataflex.train_step : info.max_steps)
  const runtime = new StrategyRuntime(weighter, cfg, info, d.runlog, opts.log)
  // After the model loaded: ADAPT needs the eval set's size.
  const instance: WeighterInstance = createComponent(weighter, { numTrain: info.num_train, numEval: info.num_eval, seed: info.seed, baseDir: weighter.preset.baseDir })
  const session = new WeighSession({ stages: [{ instance, runtime, fromStep: warmup }], seed, runlog: d.runlog, logWeights: cfg.dataflex.log_weights })
  const reduction = session.reduction
  const model = opts.modelOps ? opts.modelOps(d.exec, info) : new BridgeModelOps(d.exec, info)

  d.runlog.writeJson('weight.json', {
    component: weighter.key,
    algorithm: weighter.algorithm,
    strategy: name,
    params: weighter.rawParams,
    inputs: weighter.inputs,
    reduction,
    embeddings: instance.embeddings ?? null,
    refresh_every: instance.refresh?.every ?? null,
    warmup_step: warmup,
    max_steps: plan.maxSteps,
    log_weights: cfg.dataflex.log_weights,
  })

  if (opts.resume !== undefined) {
    const saved = opts.resume.trainer as { instance: unknown; session: ReturnType<WeighSession['state']> }
    restoreState(instance, saved.instance, name)
    session.restore(saved.session)
  }
  const unhandle = session.install(d.exec)
  const beforeStep = session.beforeStep(model)
  try {
    await walk(d, {
      maxSteps: plan.maxSteps,
      windows,
      signal: opts.signal,
      phase: (w: StaticWindow) => (w.steps.at(-1)!.globalStep <= warmup ? 'warmup' : 'training'),
      plan: (w) => ({ ...staticPassPlan(d, w, plan, 'static'), ...session.planFields() }),
      ...(beforeStep === undefined ? {} : { beforeStep }),
      onPass: (_samples, _w, _plan, w) => session.onPass(w),
      ...(opts.resume === undefined ? {} : { resume: opts.resume }),
      checkpoint: () => {
        session.flush()
        return { instance: instance.state?.() ?? null, session: session.state() }
      },
    })
  } catch (err) {
    session.rethrow(err)
  } finally {
    unhandle()
  }
  session.flush()
  runtime.saveState(instance, d.stepsTrained)
  return d.finish({
    train_type: 'dynamic_weight',
    component: weighter.key,
    strategy: name,
    ...session.summary(),
  })
}

/** `train_type: dynamic_weight`: the weighter preset is resolved (and its inputs found) before the sidecar starts. */
export const weightTrainer: Trainer<ResolvedWeighter> = {
  trainType: 'dynamic_weight',
  description: 'a weighter decides how much each sample of every micro-batch counts (weighters: section)',
  prepare: (cfg, log) => prepareComponent(cfg, 'weighter', log),
  train: (d, cfg, weighter, opts) => runWeight(d, cfg, weighter, opts),
}
