/**
 * `dataflex train` with `train_type: dynamic_weight` on the tiny model, as users run it: weights applied mid-step
 * are checked against plain training (all ones = static step for step; one-hot = training on that sample alone; no
 * jump at the warm-up switch), a failing weighter stops the run cleanly, and every built-in weighter runs.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { expectAllClose, expectClose } from './close.ts'
import { expectOk, PYTHON, stable, tempDir, tinyConfig, trainCli, type TrainRun } from './support.ts'

const HAS_PYTHON = existsSync(PYTHON)
const PROBE = join(REPO_ROOT, 'test', 'fixtures', 'probe_weighter.ts')
/** float32 through the model, summed in another order: rel 1e-6 (test/close.ts). */
const F32 = { rel: 1e-6, scale: 1e-3 }

interface WeightDecision {
  step: number
  kind: string
  strategy: string
  micro_batches?: number
  samples?: number
  weights?: { min: number; max: number; mean: number; ess: number }
  indices?: number[]
  sample_weights?: number[]
  [key: string]: unknown
}

/** No eval, no checkpoints, every step logged; GA 2 over micro-batches of 4. */
function weightConfig(out: string, extra: Record<string, unknown>): Record<string, unknown> {
  return tinyConfig(out, { eval_strategy: 'no', eval_dataset: undefined, save_strategy: 'no', logging_steps: 1, max_steps: 8, ...extra })
}

const probe = (params: Record<string, unknown>) => ({
  train_type: 'dynamic_weight',
  component_name: 'probe',
  components: { weighters: { probe: { name: 'custom', params: { path: PROBE, ...params } } } },
})

const run = (dir: string, name: string, extra: Record<string, unknown>): Promise<TrainRun<WeightDecision>> =>
  trainCli<WeightDecision>(dir, name, (out) => weightConfig(out, extra))

function series(r: TrainRun, key: 'loss' | 'grad_norm'): number[] {
  return r.metrics.map((m) => m[key] ?? Number.NaN)
}

/** The float32 tensors of a safetensors file (8-byte header length, JSON header, raw little-endian data). */
function readSafetensors(path: string): Map<string, Float32Array> {
  const buf = readFileSync(path)
  const n = Number(buf.readBigUInt64LE(0))
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>
  const out = new Map<string, Float32Array>()
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue
    expect(t.dtype).toBe('F32')
    const [a, b] = t.data_offsets
    const bytes = buf.subarray(8 + n + a, 8 + n + b)
    out.set(name, new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)))
  }
  return out
}

describe.skipIf(!HAS_PYTHON).concurrent('dataflex train with train_type: dynamic_weight', () => {
  it('all-ones weights train exactly as static training, step for step across the warm-up switch (GA 2)', async () => {
    const dir = tempDir('weight-ones')
    const [plain, ones] = await Promise.all([run(dir, 'static', {}), run(dir, 'ones', { ...probe({}), warmup_step: 3, log_weights: true })])
    expectOk(plain)
    expectOk(ones)
    expect(ones.metrics.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
    expectAllClose(series(ones, 'loss'), series(plain, 'loss'), F32, 'loss')
    expectAllClose(series(ones, 'grad_norm'), series(plain, 'grad_norm'), F32, 'grad_norm')
    // Steps 4..8 weighed, two micro-batches of 4 each; the same samples in the same order as the static plan.
    const weighed = ones.decisions.filter((d) => d.kind === 'weight')
    // Step 7 closes the epoch (13 micro-batches of 4): a short group of one.
    expect(weighed.map((d) => [d.step, d.micro_batches, d.samples])).toEqual([4, 5, 6, 7, 8].map((s) => (s === 7 ? [s, 1, 4] : [s, 2, 8])))
    for (const d of weighed) expect(d.weights).toEqual({ min: 1, max: 1, mean: 1, ess: d.samples })
    expect(plain.decisions.filter((d) => d.kind === 'plan').map((d) => d.hash)).toEqual(ones.decisions.filter((d) => d.kind === 'plan').map((d) => d.hash))
    const summary = JSON.parse(readFileSync(join(ones.out, 'dataflex', 'summary.json'), 'utf8')) as Record<string, unknown>
    expect([summary['weighed_steps'], summary['weigh_calls']]).toEqual([5, 9])
  })

  it('one-hot weights give the same update as training on that sample alone', async () => {
    const dir = tempDir('weight-onehot')
    // Constant lr, no warm-up, no dropout: one step of either run moves the adapters by the same Adam update.
    const common = { max_steps: 1, lr_scheduler_type: 'constant', warmup_ratio: 0, lora_dropout: 0 }
    const [alone, hot] = await Promise.all([
      run(dir, 'alone', { ...common, per_device_train_batch_size: 1, gradient_accumulation_steps: 1 }),
      run(dir, 'hot', { ...common, ...probe({ mode: 'onehot', reduction: 'sample_mean', position: 0 }), log_weights: true }),
    ])
    expectOk(alone)
    expectOk(hot)
    const [w] = hot.decisions.filter((d) => d.kind === 'weight')
    expect(w!.sample_weights).toEqual([8, 0, 0, 0, 0, 0, 0, 0])
    // The sampler's order does not depend on the batch size: the first sample of both runs is the same one.
    expectClose(hot.metrics[0]!.loss, alone.metrics[0]!.loss, { rel: 1e-5, scale: 1e-3 }, 'step loss')
    expectClose(hot.metrics[0]!.grad_norm ?? NaN, alone.metrics[0]!.grad_norm ?? NaN, { rel: 1e-5, scale: 1e-6 }, 'grad norm')
    const a = readSafetensors(join(alone.out, 'adapter_model.safetensors'))
    const b = readSafetensors(join(hot.out, 'adapter_model.safetensors'))
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort())
    for (const [name, t] of a) expectAllClose(b.get(name)!, t, { rel: 1e-5, scale: 1e-4 }, name)
  })

  it('the loss keeps its scale across the warm-up switch: uniform weights, any warmup_step, same grad norms', async () => {
    const dir = tempDir('weight-switch')
    const uniform = (warmup: number) => run(dir, `w${warmup}`, { ...probe({ reduction: 'sample_mean' }), warmup_step: warmup })
    const [before, switched, after] = await Promise.all([uniform(100), uniform(3), uniform(0)])
    for (const r of [before, switched, after]) expectOk(r)
    // Steps 3 (last warm-up step) and 4 (first weighed) of the switching run match the runs that never switch.
    expectAllClose(series(switched, 'grad_norm'), series(before, 'grad_norm'), F32, 'grad_norm vs all warm-up')
    expectAllClose(series(switched, 'grad_norm'), series(after, 'grad_norm'), F32, 'grad_norm vs all weighed')
    expectAllClose(series(switched, 'loss'), series(after, 'loss'), F32, 'loss')
    expect(before.decisions.filter((d) => d.kind === 'weight')).toEqual([])
    expect(after.decisions.filter((d) => d.kind === 'weight').map((d) => d.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
  })

  const failures: [string, RegExp][] = [
    ['throw', /weighter 'probe' at step 3, micro-batch 0: probe: weigh\(\) threw at \S*probe_weighter\.ts:\d+:\d+: probe failure on purpose$/m],
    ['nan', /weighter 'probe' at step 3, micro-batch 0: weight 0 is NaN/],
    ['short', /weighter 'probe' at step 3, micro-batch 0: returned 3 weights for 4 samples/],
  ]
  for (const [mode, message] of failures) {
    it(`a weighter that fails (${mode}) stops the run with exit 1, naming the weighter and the step`, async () => {
      const dir = tempDir(`weight-${mode}`)
      const t0 = performance.now()
      const r = await run(dir, mode, { ...probe({ mode, fail_at: 3 }), warmup_step: 1 })
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(message)
      // The run ended there (no summary), within seconds: nothing hung.
      expect(existsSync(join(r.out, 'dataflex', 'summary.json'))).toBe(false)
      expect(performance.now() - t0).toBeLessThan(120_000)
    })
  }

  // Warm-up 2 of 8 steps; refreshes every 3 steps (before steps 3 and 6) for the weighters that refresh.
  const builtins: [string, Record<string, unknown>, number[]][] = [
    ['loss', { name: 'loss', params: { strategy: 'quadratic', delta: 1.0 } }, []],
    ['adapt', { name: 'adapt', params: { tau: 0.5, refresh_interval: 3, anchor_batch_size: 4, clip: 0.9 } }, [2, 5]],
    ['joint_update_aware', { name: 'joint_update_aware', params: { target_update_step: 3, target_batch_size: 4, pooling: 'mean_pool' } }, [2, 5]],
    ['example', { name: 'custom', params: { path: join(REPO_ROOT, 'examples', 'strategies', 'outlier_guard.ts'), max_ratio: 1 } }, []],
  ]
  for (const [name, preset, refreshes] of builtins) {
    it(`${name} end to end`, async () => {
      const dir = tempDir(`weight-${name}`)
      const r = await run(dir, name, {
        train_type: 'dynamic_weight',
        component_name: name,
        components: { weighters: { [name]: preset } },
        warmup_step: 2,
        eval_dataset: 'demo_eval', // the anchors / target rows (no evaluation: eval_strategy no)
        log_weights: true,
      })
      expectOk(r)
      expect(r.metrics.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
      const weighed = r.decisions.filter((d) => d.kind === 'weight')
      expect(weighed.map((d) => d.step)).toEqual([3, 4, 5, 6, 7, 8])
      expect(r.decisions.filter((d) => d.kind === 'refresh').map((d) => d.step)).toEqual(refreshes)
      for (const d of weighed) {
        expect(d.sample_weights).toHaveLength(d.samples!)
        expect(d.sample_weights!.every((w) => Number.isFinite(w) && w >= 0)).toBe(true)
        expect(d.weights!.ess).toBeGreaterThan(0)
        expect(d.weights!.ess).toBeLessThanOrEqual(d.samples! + 1e-9)
      }
      // Not all ones: each of these weighs samples apart on the demo data.
      expect(weighed.some((d) => d.weights!.max - d.weights!.min > 1e-4)).toBe(true)
    })
  }

  it('decisions are identical run after run', async () => {
    const dir = tempDir('weight-determinism')
    const extra = {
      train_type: 'dynamic_weight',
      component_name: 'adapt',
      components: { weighters: { adapt: { name: 'adapt', params: { refresh_interval: 3 } } } },
      eval_dataset: 'demo_eval',
      warmup_step: 2,
      log_weights: true,
    }
    const [a, b] = await Promise.all([run(dir, 'a', extra), run(dir, 'b', extra)])
    expectOk(a)
    expectOk(b)
    expect(a.decisions.map(stable)).toEqual(b.decisions.map(stable))
  })
})
