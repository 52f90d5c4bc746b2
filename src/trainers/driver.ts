/**
 * What every train_type shares once the run is loaded: send a pass (an index plan) to the executor, train its
 * steps with the log/eval/save flags Hugging Face's flow callback would set, record per-step metrics, and close
 * the run. Trainers differ only in how they build passes.
 */
import type { Bridge } from '../bridge/index.ts'
import { writeRunReport } from '../report/write.ts'
import type { Executor, LoadInfo, PassPlan, StepFlags, StepResult } from './executor.ts'
import type { Phase, ProgressEvent } from './events.ts'
import type { RunLog, StepRecord } from './runlog.ts'
import { parseFlowArgs, stepEvents, type FlowArgs, type StepPosition } from './schedule.ts'

/**
 * A `train_steps` call that failed (an exception in the op, the sidecar gone, a timeout): the message names the op
 * and the steps it was training, and keeps the cause's code, so the CLI's one-line report says where the run died.
 */
export class StepsFailedError extends Error {
  readonly code: string

  constructor(first: number, last: number, lastReported: number, cause: unknown) {
    const span = first === last ? `global step ${first}` : `global steps ${first}-${last}`
    const reported = lastReported >= first ? `, last step reported done: ${lastReported}` : ''
    const why = cause instanceof Error ? cause.message : String(cause)
    super(`train_steps failed while training ${span}${reported}: ${why}`, { cause })
    this.name = 'StepsFailedError'
    const code = (cause as { code?: unknown } | null)?.code
    this.code = typeof code === 'string' ? code : 'runtime'
  }
}

export interface PassResult {
  /** Steps actually trained. */
  done: number
  /** A callback (e.g. early stopping) ended training before the pass did. */
  stopped: boolean
  /** Per trained sample, in plan order, from the training forward (train_steps' sample_* arrays). */
  samples: TrainedSamples
  /** When the pass weighed its micro-batches: the `weigh` round trips and their executor time, and the ops' time. */
  weigh?: { calls: number; seconds: number; opSeconds: number }
}

export interface TrainedSamples {
  /** Sum of its label-token cross-entropies. */
  lossSum: Float32Array
  /** Its label-token count. */
  tokens: Int32Array
  /** Σ max(ℓ − ℓ_reference, 0) over its label tokens, when the pass named a reference model. */
  excessSum?: Float32Array
}

export interface DriverSummary {
  steps: number
  trainLoss: number | null
  evalLoss: number | null
}

/** Told right after a checkpoint was saved at global step `step`, with the pass's trained samples up to it. */
export type OnSave = (step: number, trained: TrainedSamples) => void

/** Model ops a trainer makes between two steps of a pass (e.g. a weighter's refresh). */
export interface BeforeStep {
  /** Whether `run` must come before global step `globalStep` (1-based) is trained. */
  at(globalStep: number): boolean
  run(globalStep: number): Promise<void>
}

function sliceFlags(f: StepFlags, from: number, to: number): StepFlags {
  return { log: f.log.subarray(from, to), evaluate: f.evaluate.subarray(from, to), save: f.save.subarray(from, to) }
}

function concat<T extends Float32Array | Int32Array>(parts: T[], make: (n: number) => T): T {
  if (parts.length === 1) return parts[0]!
  const out = make(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

function joinSamples(parts: StepResult[]): TrainedSamples {
  const excess = parts.map((r) => r.sample_excess_sum)
  return {
    lossSum: concat(parts.map((r) => r.sample_loss_sum), (n) => new Float32Array(n)),
    tokens: concat(parts.map((r) => r.sample_tokens), (n) => new Int32Array(n)),
    ...(excess.every((e) => e !== undefined) && excess.length > 0 ? { excessSum: concat(excess as Float32Array[], (n) => new Float32Array(n)) } : {}),
  }
}

function weighTotals(parts: StepResult[]): PassResult['weigh'] {
  if (!parts.some((r) => r.weigh_calls !== undefined)) return undefined
  return { calls: parts.reduce((n, r) => n + (r.weigh_calls ?? 0), 0), seconds: parts.reduce((n, r) => n + (r.weigh_seconds ?? 0), 0), opSeconds: parts.reduce((n, r) => n + r.op_seconds, 0) }
}

/** The flow arguments (logging / eval / save strategies) as the executor resolved them. */
export function flowFromInfo(info: LoadInfo): FlowArgs {
  return parseFlowArgs({
    logging_strategy: info.logging_strategy,
    logging_steps: info.logging_steps,
    logging_first_step: info.logging_first_step,
    eval_strategy: info.eval_strategy,
    eval_steps: info.eval_steps,
    eval_delay: info.eval_delay,
    save_strategy: info.save_strategy,
    save_steps: info.save_steps,
  })
}

export class TrainDriver {
  readonly flow: FlowArgs
  /** Shown with every progress event; trainers switch it as they go (warmup → selecting → training). */
  phase: Phase = 'training'
  private totalSteps = 0
  private lastLoss: number | undefined
  private lastEval: number | null = null
  private overheadMs = 0
  private stepsDone = 0
  private unsubscribe: (() => void) | undefined
  /** The last step a `step` event reported finished (events are throttled: it may lag by a few steps). */
  private lastReportedStep = 0
  private stopping = false

  constructor(
    readonly exec: Executor,
    readonly bridge: Bridge,
    readonly info: LoadInfo,
    readonly runlog: RunLog,
    readonly progress: (e: ProgressEvent) => void,
    /** The run's log lines (warnings). */
    readonly log: (line: string) => void = () => {},
  ) {
    this.flow = flowFromInfo(info)
  }

  get stepsTrained(): number {
    return this.stepsDone
  }

  /** A stop was requested: no further step is trained, and the walk ends as after early stopping. */
  get stopRequested(): boolean {
    return this.stopping
  }

  /**
   * Ends training after the step in progress; the trainer then finishes the run as after early stopping (the final
   * save, summary and report). A train_steps call in flight is told through the sidecar, which answers at once.
   */
  requestStop(): void {
    if (this.stopping) return
    this.stopping = true
    this.exec.requestStop().catch((err: unknown) => {
      this.log(`warning: the sidecar did not take the stop request (${err instanceof Error ? err.message : String(err)}); the run stops when its running op returns`)
    })
  }

  /**
   * Optimizer and scheduler for `totalSteps` (restored from the run's checkpoint when it resumes: `trained` steps are
   * already done); per-step progress events from here on.
   */
  async begin(totalSteps: number, trained = 0): Promise<void> {
    this.totalSteps = totalSteps
    const r = await this.exec.begin(totalSteps)
    const at = r?.global_step ?? 0
    if (at !== trained) throw new Error(`the sidecar's trainer state is at step ${at}, but the run resumes after step ${trained}`)
    this.stepsDone = trained
    this.runlog.open() // the run is valid from here: its artefacts and sidecar.log go to output_dir (a resumed run's are open)
    this.unsubscribe = this.bridge.on('step', (d) => {
      this.lastLoss = Number(d.loss)
      this.lastReportedStep = Number(d.step)
      this.progress({
        step: Number(d.step),
        totalSteps,
        phase: this.phase,
        loss: this.lastLoss,
        lr: Number(d.lr),
        epoch: Number(d.epoch),
      })
    })
  }

  /** A progress event between steps (e.g. 'selecting' while a strategy runs). */
  report(phase: Phase, step: number): void {
    this.phase = phase
    this.progress({ step, totalSteps: this.totalSteps, phase, loss: this.lastLoss })
  }

  /**
   * Trains one pass: `steps[k]` positions the k-th step of `plan` (its global step, epoch, pass end). With `before`,
   * the pass's steps go to the executor in runs that end where `before.at` asks for model ops, which `before.run`
   * makes between two steps (never inside one). With `onSave`, a run of steps also ends at each step that saves a
   * checkpoint, and `onSave` is told right after it (the pass's trained samples so far with it). A run also ends at
   * each step that evaluates, so that its eval loss reaches the run's observer (and a stop it prompts) at once.
   */
  async trainPass(plan: PassPlan, steps: readonly StepPosition[], before?: BeforeStep, onSave?: OnSave): Promise<PassResult> {
    if (steps.length !== plan.stepSizes.length) throw new Error(`pass has ${plan.stepSizes.length} steps but ${steps.length} positions`)
    await this.exec.beginPass(plan)
    const n = steps.length
    const flags = { log: new Uint8Array(n), evaluate: new Uint8Array(n), save: new Uint8Array(n) }
    steps.forEach((s, k) => {
      const ev = stepEvents(s, this.flow)
      flags.log[k] = ev.log ? 1 : 0
      flags.evaluate[k] = ev.evaluate ? 1 : 0
      flags.save[k] = ev.save ? 1 : 0
    })
    const records: StepRecord[] = []
    const parts: StepResult[] = []
    let done = 0
    let stopped = false
    while (done < n) {
      if (this.stopping) {
        stopped = true
        break
      }
      if (before?.at(steps[done]!.globalStep)) await before.run(steps[done]!.globalStep)
      let end = done + 1
      while (end < n && !before?.at(steps[end]!.globalStep) && !(onSave && flags.save[end - 1]) && !flags.evaluate[end - 1]) end++
      const t0 = performance.now()
      const first = steps[done]!.globalStep
      const to = steps[end - 1]!.globalStep
      const r = await this.exec.trainSteps(end - done, sliceFlags(flags, done, end)).catch((err: unknown) => {
        throw new StepsFailedError(first, to, this.lastReportedStep, err)
      })
      this.overheadMs += performance.now() - t0 - r.op_seconds * 1000
      parts.push(r)
      const from = records.length
      for (let k = 0; k < r.done; k++) {
        const s = steps[done + k]!
        const gn = r.grad_norm[k]!
        const ev = r.eval_loss[k]!
        records.push({
          step: s.globalStep,
          epoch: s.epoch,
          loss: r.loss[k]!,
          grad_norm: Number.isNaN(gn) ? null : gn,
          lr: r.lr[k]!,
          tokens: Number(r.tokens[k]!),
          ...(Number.isNaN(ev) ? {} : { eval_loss: ev }),
        })
        if (!Number.isNaN(ev)) this.lastEval = ev
      }
      // Written as they come: a checkpoint's metrics are on disk when it is.
      this.runlog.steps(records.slice(from))
      done += r.done
      this.stepsDone += r.done
      if (onSave && r.done > 0 && flags.save[done - 1]) onSave(steps[done - 1]!.globalStep, joinSamples(parts))
      if (r.should_training_stop) {
        stopped = done < n
        break
      }
    }
    // Step events are throttled (a few a second): the result brings the pass's last step to the progress display.
    const final = records.at(-1)
    if (final !== undefined) {
      this.lastLoss = final.loss
      this.progress({ step: final.step, totalSteps: this.totalSteps, phase: this.phase, loss: final.loss, lr: final.lr, epoch: final.epoch })
    }
    const last = steps[done - 1]
    const end = last ? stepEvents(last, this.flow).epochEnd : null
    const ended = await this.exec.endPass({ log: end?.log ?? false, evaluate: end?.evaluate ?? false, save: end?.save ?? false })
    if (ended.eval_loss !== null && last !== undefined) this.runlog.observer.eval?.({ step: last.globalStep, evalLoss: ended.eval_loss, at: 'pass_end' })
    const samples = joinSamples(parts)
    if (onSave && end?.save && !flags.save[done - 1]) onSave(last!.globalStep, samples)
    return { done, stopped, samples, weigh: weighTotals(parts) }
  }

  /** The loop's epilogue in the executor, and `dataflex/summary.json`. */
  async finish(extra: Record<string, unknown> = {}): Promise<DriverSummary> {
    this.unsubscribe?.()
    this.unsubscribe = undefined
    this.progress({ step: this.totalSteps, totalSteps: this.totalSteps, phase: 'finishing', loss: this.lastLoss })
    const fin = await this.exec.finish()
    if (fin.eval_loss !== null) this.runlog.observer.eval?.({ step: fin.global_step, evalLoss: fin.eval_loss, at: 'final' })
    const summary = {
      steps: fin.global_step,
      trainLoss: this.lastLoss ?? null,
      evalLoss: fin.eval_loss ?? this.lastEval,
      meanTrainLoss: fin.train_loss,
      stepSecondsMedian: fin.step_seconds_median,
      // Round trip + (de)serialisation + per-step progress events, amortised per optimizer step.
      bridgeOverheadUsPerStep: this.stepsDone > 0 ? (this.overheadMs * 1000) / this.stepsDone : null,
    }
    this.runlog.writeJson('summary.json', { ...summary, trainable_params: this.info.trainable_params, stage: this.info.stage, ...extra })
    this.saveReport()
    return { steps: summary.steps, trainLoss: summary.trainLoss, evalLoss: summary.evalLoss }
  }

  /** `dataflex/report.html` from the logs so far (at each checkpoint and the end); a report never fails the run. */
  saveReport(): void {
    try {
      writeRunReport(this.runlog.outputDir)
    } catch (err) {
      this.log(`warning: the run report was not written: ${err instanceof Error ? err.message : String(err)}`)
    }
  }

  /** Stops progress events (on failure paths). */
  close(): void {
    this.unsubscribe?.()
    this.unsubscribe = undefined
  }
}
