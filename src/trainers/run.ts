/**
 * `dataflex train`: load the run in the sidecar, plan it in TypeScript, execute the plan step by step.
 *
 * The static trainer (train_type: static, or none) reproduces a plain LLaMA-Factory run: TypeScript builds the
 * same micro-batch plan and the same log/eval/save schedule Hugging Face's Trainer would, asks the executor for
 * the sampler's exact per-epoch order, and sends the plan pass by pass. Dynamic trainers reuse this driver.
 */
import { appendFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { startBridge, type Bridge, type LogEntry } from '../bridge/index.ts'
import type { LoadedConfig } from '../config/index.ts'
import { hashArrays } from '../math/hash.ts'
import { Executor, type LoadInfo, type PassPlan } from './executor.ts'
import { RunLog, type StepRecord } from './runlog.ts'
import { buildStaticPlan, parseFlowArgs, stepEvents, type PlanPass, type StaticPlan } from './schedule.ts'

export type Phase = 'loading' | 'warmup' | 'selecting' | 'training' | 'evaluating' | 'saving' | 'finishing'

export interface ProgressEvent {
  step: number
  totalSteps: number
  phase: Phase
  loss?: number
  lr?: number
  epoch?: number
}

export interface RunSummary {
  steps: number
  trainLoss: number | null
  evalLoss: number | null
  outputDir: string
  wallSeconds: number
}

export interface RunOptions {
  onProgress?: (e: ProgressEvent) => void
  log?: (line: string) => void
  signal?: AbortSignal
  /** Python interpreter for the sidecar (default: DATAFLEX_PYTHON, else the repo's .venv). */
  python?: string
}

export class RunAbortedError extends Error {
  override readonly name = 'RunAbortedError'
  readonly code = 'aborted'
}

export async function runTraining(cfg: LoadedConfig, opts: RunOptions = {}): Promise<RunSummary> {
  const started = performance.now()
  const progress = opts.onProgress ?? (() => {})
  opts.signal?.throwIfAborted()
  progress({ step: 0, totalSteps: 0, phase: 'loading' })

  // Sidecar output goes to <output_dir>/dataflex/sidecar.log once we know the run is valid; until then it is
  // buffered so a config error does not create files in the output dir.
  const sidecarLines: string[] = []
  let sidecarLog: string | undefined
  const onLog = (e: LogEntry): void => {
    if (e.source === 'sidecar') {
      if (sidecarLog) appendFileSync(sidecarLog, e.message + '\n')
      else sidecarLines.push(e.message)
      if (process.env.DATAFLEX_VERBOSE) opts.log?.(e.message)
    } else if (e.level === 'warn' || e.level === 'error') {
      opts.log?.(`bridge ${e.level}: ${e.message}`)
    }
  }

  const bridge = await startBridge({ python: opts.python, log: onLog, readyTimeoutMs: 120_000, helloTimeoutMs: 120_000 })
  const abort = (): void => void bridge.close({ graceMs: 1_500 })
  opts.signal?.addEventListener('abort', abort, { once: true })
  try {
    const exec = new Executor(bridge)
    const info = await exec.load(cfg.lf)
    opts.signal?.throwIfAborted()

    const runlog = new RunLog(cfg.outputDir)
    runlog.open()
    sidecarLog = join(runlog.dir, 'sidecar.log')
    mkdirSync(runlog.dir, { recursive: true })
    appendFileSync(sidecarLog, sidecarLines.join('\n') + (sidecarLines.length ? '\n' : ''))

    const summary = await runStatic(exec, bridge, cfg, info, runlog, progress)
    return { ...summary, outputDir: cfg.outputDir, wallSeconds: (performance.now() - started) / 1000 }
  } catch (err) {
    if (opts.signal?.aborted) throw new RunAbortedError('training interrupted', { cause: err })
    throw err
  } finally {
    opts.signal?.removeEventListener('abort', abort)
    await bridge.close()
  }
}

async function runStatic(
  exec: Executor,
  bridge: Bridge,
  cfg: LoadedConfig,
  info: LoadInfo,
  runlog: RunLog,
  progress: (e: ProgressEvent) => void,
): Promise<Omit<RunSummary, 'outputDir' | 'wallSeconds'>> {
  const flow = parseFlowArgs({
    logging_strategy: info.logging_strategy,
    logging_steps: info.logging_steps,
    logging_first_step: info.logging_first_step,
    eval_strategy: info.eval_strategy,
    eval_steps: info.eval_steps,
    eval_delay: info.eval_delay,
    save_strategy: info.save_strategy,
    save_steps: info.save_steps,
  })

  // The sampler's order for every epoch the plan can touch, fetched once (one round trip).
  const orders = new Map<number, Int32Array>()
  const probe = buildStaticPlan({ numSamples: info.num_train, args: planArgs(info), sampleOrder: () => identity(info.num_train) })
  const epochs = Array.from({ length: probe.passes.length }, (_, e) => e)
  const flat = await exec.sampleOrder(epochs)
  for (const e of epochs) orders.set(e, flat.subarray(e * info.num_train, (e + 1) * info.num_train))
  const plan = buildStaticPlan({
    numSamples: info.num_train,
    args: planArgs(info),
    sampleOrder: (e) => orders.get(e) ?? fail(`no sample order for epoch ${e}`),
  })

  const total = plan.maxSteps
  await exec.begin(total)
  let lastLoss: number | undefined
  let lastEval: number | null = null
  let overheadMs = 0
  let stepsDone = 0
  const unsubscribe = bridge.on('step', (d) => {
    const step = Number(d.step)
    lastLoss = Number(d.loss)
    progress({ step, totalSteps: total, phase: 'training', loss: lastLoss, lr: Number(d.lr), epoch: Number(d.epoch) })
  })
  try {
    for (const pass of plan.passes) {
      if (pass.steps.length === 0) continue
      const passPlan = toPassPlan(pass, plan)
      runlog.decision({
        step: pass.steps[0]!.globalStep - 1,
        kind: 'plan',
        strategy: 'static',
        epoch: pass.epoch,
        steps: [pass.steps[0]!.globalStep, pass.steps.at(-1)!.globalStep],
        samples: passPlan.indices.length,
        hash: hashArrays(passPlan.indices, passPlan.microSizes, passPlan.stepSizes),
      })
      await exec.beginPass(passPlan)
      const n = pass.steps.length
      const flags = { log: new Uint8Array(n), evaluate: new Uint8Array(n), save: new Uint8Array(n) }
      pass.steps.forEach((s, k) => {
        const ev = stepEvents(s, flow)
        flags.log[k] = ev.log ? 1 : 0
        flags.evaluate[k] = ev.evaluate ? 1 : 0
        flags.save[k] = ev.save ? 1 : 0
      })
      const t0 = performance.now()
      const r = await exec.trainSteps(n, flags)
      overheadMs += performance.now() - t0 - r.op_seconds * 1000
      stepsDone += r.done
      const records: StepRecord[] = []
      for (let k = 0; k < r.done; k++) {
        const s = pass.steps[k]!
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
        if (!Number.isNaN(ev)) lastEval = ev
      }
      runlog.steps(records)
      const last = pass.steps[r.done - 1]
      const end = last ? stepEvents(last, flow).epochEnd : null
      await exec.endPass({ log: end?.log ?? false, evaluate: end?.evaluate ?? false, save: end?.save ?? false })
      if (r.should_training_stop && r.done < n) break
    }
  } finally {
    unsubscribe()
  }
  progress({ step: total, totalSteps: total, phase: 'finishing', loss: lastLoss })
  const fin = await exec.finish()
  const summary = {
    steps: fin.global_step,
    trainLoss: lastLoss ?? null,
    evalLoss: fin.eval_loss ?? lastEval,
    meanTrainLoss: fin.train_loss,
    stepSecondsMedian: fin.step_seconds_median,
    // Round trip + (de)serialisation + per-step progress events, amortised per optimizer step.
    bridgeOverheadUsPerStep: stepsDone > 0 ? (overheadMs * 1000) / stepsDone : null,
  }
  runlog.writeJson('summary.json', { ...summary, trainable_params: info.trainable_params, stage: info.stage })
  return { steps: summary.steps, trainLoss: summary.trainLoss, evalLoss: summary.evalLoss }
}

function planArgs(info: LoadInfo) {
  return {
    per_device_train_batch_size: info.per_device_train_batch_size,
    gradient_accumulation_steps: info.gradient_accumulation_steps,
    num_train_epochs: info.num_train_epochs,
    max_steps: info.max_steps,
    dataloader_drop_last: info.dataloader_drop_last,
  }
}

function toPassPlan(pass: PlanPass, plan: StaticPlan): PassPlan {
  const micro = pass.steps.flatMap((s) => s.microBatches)
  const indices = new Int32Array(micro.reduce((a, m) => a + m.length, 0))
  let o = 0
  for (const m of micro) {
    indices.set(m, o)
    o += m.length
  }
  return {
    epoch: pass.epoch,
    indices,
    microSizes: Int32Array.from(micro, (m) => m.length),
    stepSizes: Int32Array.from(pass.steps, (s) => s.microBatches.length),
    microInEpoch: plan.microBatchesPerEpoch,
  }
}

function identity(n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i)
}

function fail(message: string): never {
  throw new Error(message)
}
