/**
 * `train_type: static` (or none): a plain LLaMA-Factory run. TypeScript builds the micro-batch plan Hugging Face's
 * Trainer would, from the sampler's exact per-epoch order (asked once from the executor), and sends it pass by
 * pass. test/parity.test.ts holds it to `llamafactory-cli train` step for step.
 */
import { hashArrays } from '../math/hash.ts'
import type { TrainDriver, DriverSummary } from './driver.ts'
import type { LoadInfo, PassPlan } from './executor.ts'
import { buildStaticPlan, type PlanPass, type StaticPlan } from './schedule.ts'
import type { Trainer } from './trainer.ts'
import { walk } from './walk.ts'

export async function runStatic(d: TrainDriver): Promise<DriverSummary> {
  const info = d.info
  // The sampler's order for every epoch the plan can touch, fetched once (one round trip).
  const orders = new Map<number, Int32Array>()
  const probe = buildStaticPlan({ numSamples: info.num_train, args: planArgs(info), sampleOrder: () => identity(info.num_train) })
  const epochs = Array.from({ length: probe.passes.length }, (_, e) => e)
  const flat = await d.exec.sampleOrder(epochs)
  for (const e of epochs) orders.set(e, flat.subarray(e * info.num_train, (e + 1) * info.num_train))
  const plan = buildStaticPlan({
    numSamples: info.num_train,
    args: planArgs(info),
    sampleOrder: (e) => orders.get(e) ?? fail(`no sample order for epoch ${e}`),
  })

  const windows = plan.passes.map((pass) => ({ pass, decisionStep: (pass.steps[0]?.globalStep ?? 1) - 1, steps: pass.steps }))
  await walk(d, {
    maxSteps: plan.maxSteps,
    windows,
    plan: ({ pass, decisionStep }) => {
      const passPlan = toPassPlan(pass, plan)
      d.runlog.decision({
        step: decisionStep,
        kind: 'plan',
        strategy: 'static',
        epoch: pass.epoch,
        steps: [pass.steps[0]!.globalStep, pass.steps.at(-1)!.globalStep],
        samples: passPlan.indices.length,
        hash: hashArrays(passPlan.indices, passPlan.microSizes, passPlan.stepSizes),
      })
      return passPlan
    },
  })
  return d.finish()
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

/** `train_type: static` (or none): nothing to prepare before the model loads. */
export const staticTrainer: Trainer<undefined> = {
  trainType: 'static',
  description: 'plain LLaMA-Factory training, step for step',
  prepare: async () => undefined,
  train: (d) => runStatic(d),
}
