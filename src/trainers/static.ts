/**
 * `train_type: static` (or none): a plain LLaMA-Factory run. TypeScript builds the micro-batch plan Hugging Face's
 * Trainer would, from the sampler's exact per-epoch order (asked once from the executor), and sends it pass by
 * pass. test/parity.test.ts holds it to `llamafactory-cli train` step for step.
 */
import { hashArrays } from '../math/hash.ts'
import type { TrainDriver, DriverSummary } from './driver.ts'
import type { LoadInfo, PassPlan } from './executor.ts'
import { buildStaticPlan, type PlanPass, type StaticPlan, type StepPosition } from './schedule.ts'
import type { ResumePoint } from './resume.ts'
import type { Trainer } from './trainer.ts'
import { walk } from './walk.ts'

export interface StaticWindow {
  readonly pass: PlanPass
  readonly decisionStep: number
  readonly steps: readonly StepPosition[]
}

/**
 * Hugging Face's plan of the run, one window per pass, from the sampler's exact per-epoch orders (asked once from
 * the executor, one round trip). `maxSteps` replaces the run's max_steps (dynamic_weight's train_step).
 */
export async function staticWindows(d: TrainDriver, maxSteps = d.info.max_steps): Promise<{ plan: StaticPlan; windows: StaticWindow[] }> {
  const info = d.info
  const args = { ...planArgs(info), max_steps: maxSteps }
  const orders = new Map<number, Int32Array>()
  const probe = buildStaticPlan({ numSamples: info.num_train, args, sampleOrder: () => identity(info.num_train) })
  const epochs = Array.from({ length: probe.passes.length }, (_, e) => e)
  const flat = await d.exec.sampleOrder(epochs)
  for (const e of epochs) orders.set(e, flat.subarray(e * info.num_train, (e + 1) * info.num_train))
  const sampleOrder = (e: number): Int32Array => orders.get(e) ?? fail(`no sample order for epoch ${e}`)
  const ranks = Array.from({ length: info.world_size }, (_, rank) =>
    buildStaticPlan({ numSamples: info.num_train, args, sampleOrder, worldSize: info.world_size, rank }))
  const plan = globalPlan(ranks)
  const windows = plan.passes.map((pass) => ({ pass, decisionStep: (pass.steps[0]?.globalStep ?? 1) - 1, steps: pass.steps }))
  return { plan, windows }
}

/** A window's pass plan, with its `plan` decision line (`strategy`: what planned it). */
export function staticPassPlan(d: TrainDriver, w: StaticWindow, plan: StaticPlan, strategy: string): PassPlan {
  const passPlan = toPassPlan(w.pass, plan)
  d.runlog.decision({
    step: w.decisionStep,
    kind: 'plan',
    strategy,
    epoch: w.pass.epoch,
    steps: [w.pass.steps[0]!.globalStep, w.pass.steps.at(-1)!.globalStep],
    samples: passPlan.indices.length,
    hash: hashArrays(passPlan.indices, passPlan.microSizes, passPlan.stepSizes),
  })
  return passPlan
}

export async function runStatic(d: TrainDriver, resume?: ResumePoint): Promise<DriverSummary> {
  const { plan, windows } = await staticWindows(d)
  await walk(d, { maxSteps: plan.maxSteps, windows, plan: (w) => staticPassPlan(d, w, plan, 'static'), ...(resume === undefined ? {} : { resume }) })
  return d.finish()
}

/**
 * One plan from every rank's: global micro-batch k of a step is rank 0's k-th micro-batch, then rank 1's, … — so
 * the sidecar's contiguous slices give each rank back its own (accelerate shards every rank's plan alike, so the
 * plans have the same steps and micro-batch counts).
 */
function globalPlan(ranks: StaticPlan[]): StaticPlan {
  const [first] = ranks
  if (ranks.length === 1) return first!
  return {
    ...first!,
    passes: first!.passes.map((pass, p) => ({
      ...pass,
      steps: pass.steps.map((step, s) => ({
        ...step,
        microBatches: step.microBatches.map((_, k) => concat(ranks.map((r) => r.passes[p]!.steps[s]!.microBatches[k]!))),
      })),
    })),
  }
}

function concat(parts: Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((a, m) => a + m.length, 0))
  let o = 0
  for (const m of parts) {
    out.set(m, o)
    o += m.length
  }
  return out
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
  return {
    epoch: pass.epoch,
    indices: concat(micro),
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

/** `train_type: static` (or none): nothing to prepare before the model loads. */
export const staticTrainer: Trainer<undefined> = {
  trainType: 'static',
  description: 'plain LLaMA-Factory training, step for step',
  prepare: async () => undefined,
  train: (d, _cfg, _prep, opts) => runStatic(d, opts.resume),
}
