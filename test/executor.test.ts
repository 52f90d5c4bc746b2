/**
 * Decisions see the model exactly as the last step left it: train k steps through the bridge, ask `losses`, and
 * compare with the same losses computed by a fresh sidecar from the checkpoint saved at step k.
 */
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { startBridge, type Bridge } from '../src/bridge/index.ts'
import { Executor, type PassPlan } from '../src/trainers/executor.ts'
import { expectAllClose } from './close.ts'
import { tempDir, tinyConfig } from './support.ts'

const bridges: Bridge[] = []
afterAll(async () => {
  await Promise.all(bridges.map((b) => b.close()))
})

async function executor(): Promise<Executor> {
  const bridge = await startBridge({ readyTimeoutMs: 120_000, helloTimeoutMs: 120_000 })
  bridges.push(bridge)
  return new Executor(bridge)
}

function sequentialPass(n: number, b: number, ga: number, steps: number): PassPlan {
  const indices = Int32Array.from({ length: steps * ga * b }, (_, i) => i % n)
  return {
    epoch: 0,
    indices,
    microSizes: new Int32Array(steps * ga).fill(b),
    stepSizes: new Int32Array(steps).fill(ga),
    microInEpoch: Math.ceil(n / b),
  }
}

describe('model ops see the current model', () => {
  it('losses after k steps equal losses from the step-k checkpoint', async () => {
    const dir = tempDir('current')
    const k = 6
    const probe = Int32Array.from([0, 3, 7, 11, 19, 25, 40, 51])

    const live = await executor()
    const info = await live.load(tinyConfig(join(dir, 'out'), { save_steps: 1000, eval_strategy: 'no' }))
    await live.begin(10)
    await live.beginPass(sequentialPass(info.num_train, 4, 2, 10))
    const flags = (n: number, saveAt: number) => ({
      log: new Uint8Array(n).fill(1),
      evaluate: new Uint8Array(n),
      save: Uint8Array.from({ length: n }, (_, i) => (i === saveAt ? 1 : 0)),
    })
    const before = await live.losses('train', probe)
    const r = await live.trainSteps(k, flags(k, k - 1))
    expect(r.global_step).toBe(k)
    const after = await live.losses('train', probe)
    // Training moved the model, and asking twice changes nothing (no RNG, no weights touched).
    expect(Array.from(after)).not.toEqual(Array.from(before))
    expect(Array.from(await live.losses('train', probe))).toEqual(Array.from(after))
    // Padding-aware: other batch compositions give the same per-sample losses.
    const small = await live.losses('train', probe, 3)
    expectAllClose(small, after, { rel: 1e-5 }, 'loss at batch size 3')

    const fresh = await executor()
    await fresh.load(
      tinyConfig(join(dir, 'reload'), { adapter_name_or_path: join(dir, 'out', `checkpoint-${k}`), eval_strategy: 'no' }),
    )
    const fromCheckpoint = await fresh.losses('train', probe)
    expectAllClose(fromCheckpoint, after, { rel: 1e-5 }, 'loss from the checkpoint')
  }, 300_000)
})

describe('per-sample weights', () => {
  it('weights of 1 reproduce unweighted training; weights of 0 give no gradient', async () => {
    const dir = tempDir('weights')
    const flags = (n: number) => ({ log: new Uint8Array(n), evaluate: new Uint8Array(n), save: new Uint8Array(n) })
    const runWith = async (weights: (n: number) => Float32Array | undefined) => {
      const exec = await executor()
      const info = await exec.load(tinyConfig(join(dir, `w${bridges.length}`), { eval_strategy: 'no', save_strategy: 'no' }))
      await exec.begin(3)
      const pass = sequentialPass(info.num_train, 4, 2, 3)
      const w = weights(pass.indices.length)
      await exec.beginPass(w ? { ...pass, weights: w } : pass)
      return exec.trainSteps(3, flags(3))
    }
    const plain = await runWith(() => undefined)
    const ones = await runWith((n) => new Float32Array(n).fill(1))
    // Same loss up to float rounding (per-token sums vs Hugging Face's fused reduction).
    expectAllClose(ones.loss, plain.loss, { rel: 1e-5 }, 'loss')
    expectAllClose(ones.grad_norm, plain.grad_norm, { rel: 1e-5 }, 'grad_norm')
    const zeros = await runWith((n) => new Float32Array(n))
    expect(Array.from(zeros.loss)).toEqual([0, 0, 0])
    expect(Array.from(zeros.grad_norm)).toEqual([0, 0, 0])
  }, 300_000)
})
