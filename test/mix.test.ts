/**
 * The dynamic_mix trainer against a fake executor: what it sends window by window, what the mixer is told, and what
 * it writes. The expected values are recomputed here from the plans the trainer sent (not read from the trainer).
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import type { Bridge } from '../src/bridge/index.ts'
import { defineMixer, type MixContext } from '../src/strategies/mixer.ts'
import type { ResolvedComponent } from '../src/strategies/presets.ts'
import { TrainDriver } from '../src/trainers/driver.ts'
import type { Executor, LoadInfo, PassPlan, StepFlags } from '../src/trainers/executor.ts'
import { apportion } from '../src/trainers/mix-draw.ts'
import { runMix, type MixPrepared } from '../src/trainers/mix.ts'
import { RunLog, type Decision } from '../src/trainers/runlog.ts'
import { fakeConfig } from './support.ts'
import { tempDir } from './temp-dirs.ts'

// Three domains of 20, 30 and 50 rows, concatenated in that order.
const SIZES = [20, 30, 50]
const NAMES = ['a', 'b', 'c']
const domainOf = Int32Array.from(SIZES.flatMap((n, d) => Array.from({ length: n }, () => d)))

function loadInfo(dir: string): LoadInfo {
  return {
    load_seconds: 0,
    stage: 'sft',
    num_train: 100,
    num_eval: 0,
    world_size: 1,
    per_device_train_batch_size: 2,
    gradient_accumulation_steps: 2,
    num_train_epochs: 1,
    max_steps: -1,
    dataloader_drop_last: false,
    seed: 42,
    output_dir: dir,
    logging_strategy: 'steps',
    logging_steps: 1,
    logging_first_step: false,
    eval_strategy: 'no',
    eval_steps: null,
    eval_delay: 0,
    save_strategy: 'no',
    save_steps: 500,
    do_eval: false,
    disable_shuffling: false,
    trainable_params: 1,
    domains: { names: NAMES, rows: SIZES, raw_rows: [21, 30, 50], domain_of_row: domainOf },
    eval_splits: [],
    frozen_params: 0,
    raw_rows: null,
    dataset_rows: null,
    resume_from_checkpoint: null,
  }
}

// A row's loss per token is its domain + 1 plus a row-dependent part; 3 tokens each; excess = half the loss.
const tokensOf = 3
const lossPerToken = (row: number) => domainOf[row]! + 1 + (row % 5) / 10

interface Sent {
  plans: PassPlan[]
}

function fakeExecutor(sent: Sent): Executor {
  let step = 0
  let plan: PassPlan | undefined
  const fake = {
    begin: async () => {},
    beginPass: async (p: PassPlan) => {
      plan = p
      sent.plans.push(p)
    },
    trainSteps: async (n: number, _flags: StepFlags) => {
      step += n
      const f64 = (v: number) => new Float64Array(n).fill(v)
      const rows = plan!.indices
      return {
        done: n, global_step: step, epoch: 0, loss: f64(1), grad_norm: f64(1), lr: f64(0.1), tokens: new BigInt64Array(n),
        eval_loss: f64(NaN), seconds: f64(0), op_seconds: 0, should_training_stop: false,
        sample_loss_sum: Float32Array.from(rows, (r) => lossPerToken(r) * tokensOf),
        sample_tokens: Int32Array.from(rows, () => tokensOf),
        ...(plan!.referenceModel ? { sample_excess_sum: Float32Array.from(rows, (r) => (lossPerToken(r) * tokensOf) / 2) } : {}),
      }
    },
    endPass: async () => ({ eval_loss: null }),
    finish: async () => ({ train_loss: 1, global_step: step, eval_loss: null, step_seconds_median: null }),
  }
  return fake as unknown as Executor
}

interface Probe {
  contexts: MixContext[]
}

async function runFake(
  dataflex: Record<string, unknown>,
  mixer: { proportions: (ctx: MixContext) => number[]; reference?: string; lossWeights?: () => Float64Array; files?: Record<string, string> } | undefined,
  initial = [1 / 3, 1 / 3, 1 / 3],
) {
  const dir = tempDir('mix-fake')
  const out = join(dir, 'out')
  const sent: Sent = { plans: [] }
  const runlog = new RunLog(out)
  runlog.open()
  const info = loadInfo(out)
  const driver = new TrainDriver(fakeExecutor(sent), { on: () => () => {} } as unknown as Bridge, info, runlog, () => {})
  const probe: Probe = { contexts: [] }
  const definition = defineMixer({
    name: 'fake',
    description: 'test',
    params: z.strictObject({}),
    create: () => ({
      mix: (ctx) => {
        probe.contexts.push(ctx)
        return { proportions: Float64Array.from(mixer!.proportions(ctx)), records: [{ file: 'fake_weights.jsonl', record: { step: ctx.step } }] }
      },
      ...(mixer?.reference ? { referenceModel: mixer.reference } : {}),
      ...(mixer?.lossWeights ? { lossWeights: mixer.lossWeights } : {}),
      ...(mixer?.files ? { finish: () => mixer.files! } : {}),
    }),
  })
  const cfg = { ...fakeConfig(dir, { train_type: 'dynamic_mix', warmup_step: 2, update_step: 3, update_times: 2, component_name: 'fake', ...dataflex }), lf: { dataset: NAMES.join(',') } }
  const preset = { section: 'mixers' as const, key: 'fake', name: 'fake', params: {}, source: 'test', baseDir: dir, inline: true, warnings: [] }
  const resolved = { kind: 'mixer' as const, key: 'fake', algorithm: 'fake', strategy: 'fake', definition, params: {}, rawParams: {}, cacheRoot: undefined, file: undefined, preset, inputs: [], warnings: [] } as unknown as ResolvedComponent<'mixer'>
  const prep: MixPrepared = {
    mixer: mixer ? resolved : undefined,
    domains: NAMES,
    initial: { values: Float64Array.from(initial), source: 'config' },
    evalSets: [undefined, undefined, undefined],
  }
  await runMix(driver, cfg, prep, { log: () => {} })
  const decisions = readFileSync(join(out, 'dataflex', 'decisions.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Decision & Record<string, unknown>)
  return { sent, decisions, probe, out }
}

const count = (rows: Int32Array) => {
  const c = [0, 0, 0]
  for (const r of rows) c[domainOf[r]!]!++
  return c
}

describe('mix trainer (fake executor)', () => {
  it('warm-up on the initial proportions, then one window per update, each drawn by its proportions', async () => {
    const { sent, decisions, probe } = await runFake({}, { proportions: (ctx) => (ctx.update === 1 ? [0.5, 0.25, 0.25] : [0, 0, 1]) }, [0.2, 0.3, 0.5])
    // W=2, U=3, T=2: steps 1-2 warm-up, 3-5 and 6-8 updates; B_g = 4.
    expect(sent.plans.map((p) => p.stepSizes.length)).toEqual([2, 3, 3])
    expect(sent.plans.map((p) => p.indices.length)).toEqual([8, 12, 12])
    expect(count(sent.plans[0]!.indices)).toEqual(Array.from(apportion(8, Float64Array.of(0.2, 0.3, 0.5))))
    expect(count(sent.plans[1]!.indices)).toEqual([6, 3, 3])
    expect(count(sent.plans[2]!.indices)).toEqual([0, 0, 12])
    expect(decisions.map((d) => `${d.kind}@${d.step}`)).toEqual(['plan@0', 'mix@2', 'mix@5'])
    expect(decisions[1]!['drawn']).toEqual([6, 3, 3])
    expect(decisions[1]!['proportions']).toEqual([0.5, 0.25, 0.25])
    // Rows never repeat inside a domain before the domain is used up: window 3 draws 12 distinct rows of c.
    expect(new Set(sent.plans[2]!.indices).size).toBe(12)
    expect(probe.contexts.map((c) => [c.step, c.update, c.updateTimes])).toEqual([
      [2, 1, 2],
      [5, 2, 2],
    ])
  })

  it("the mixer sees each step's per-domain sums from the pass it trained, and the cumulative counts", async () => {
    const { sent, probe } = await runFake({}, { proportions: () => [1, 1, 1] })
    for (const [u, ctx] of probe.contexts.entries()) {
      const plan = sent.plans[u]!
      // Recompute from the plan: micro-batches of 2, steps of 2 micro-batches → 4 samples per step.
      expect(ctx.steps.length).toBe(plan.stepSizes.length)
      ctx.steps.forEach((st, s) => {
        const rows = plan.indices.subarray(s * 4, s * 4 + 4)
        const want = [0, 1, 2].map((d) => [...rows].filter((r) => domainOf[r] === d))
        expect(st.step).toBe(ctx.step - plan.stepSizes.length + 1 + s)
        want.forEach((rs, d) => {
          expect(st.samples[d]).toBe(rs.length)
          expect(st.tokens[d]).toBe(rs.length * tokensOf)
          expect(st.lossSum[d]).toBeCloseTo(rs.reduce((a, r) => a + Math.fround(lossPerToken(r) * tokensOf), 0), 4)
        })
      })
      const tokens = [0, 1, 2].map((d) => ctx.steps.reduce((a, st) => a + st.tokens[d]!, 0))
      expect(Array.from(ctx.window.tokens)).toEqual(tokens)
      ctx.domainLosses.forEach((l, d) => (tokens[d]! > 0 ? expect(l).toBeCloseTo(ctx.window.lossSum[d]! / tokens[d]!, 10) : expect(l).toBeNaN()))
      const seen = [0, 1, 2].map((d) => sent.plans.slice(0, u + 1).reduce((a, p) => a + count(p.indices)[d]!, 0))
      expect(Array.from(ctx.seen)).toEqual(seen)
      expect(ctx.window.excessSum).toBeUndefined()
    }
  })

  it('a reference model is sent with every pass and its excess sums reach the mixer; loss weights act per sample', async () => {
    const weights = Float64Array.of(3, 0, 0.5)
    const { sent, probe, out } = await runFake(
      {},
      { proportions: () => [1, 1, 1], reference: '/ref', lossWeights: () => weights, files: { 'final.json': '{"ok": true}' } },
    )
    for (const p of sent.plans) {
      expect(p.referenceModel).toBe('/ref')
      expect(p.reduction).toBe('sample_mean')
      expect(Array.from(p.weights!)).toEqual(Array.from(p.indices, (r) => weights[domainOf[r]!]!))
    }
    const ctx = probe.contexts[0]!
    ctx.window.excessSum!.forEach((e, d) => expect(e).toBeCloseTo(ctx.window.lossSum[d]! / 2, 4))
    expect(readFileSync(join(out, 'final.json'), 'utf8')).toBe('{"ok": true}')
    expect(readFileSync(join(out, 'fake_weights.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))).toEqual([{ step: 2 }, { step: 5 }])
  })

  it('stratified and uniform rules draw by sizes / evenly whatever the mixer says (the mixer still runs)', async () => {
    const strat = await runFake({ mixture_sample_rule: 'stratified', warmup_step: 0, update_times: 1, update_step: 5 }, { proportions: () => [1, 0, 0] })
    expect(count(strat.sent.plans[0]!.indices)).toEqual([4, 6, 10])
    expect(strat.probe.contexts.length).toBe(1)
    const uni = await runFake({ mixture_sample_rule: 'uniform', warmup_step: 0, update_times: 1, update_step: 3 }, { proportions: () => [1, 0, 0] })
    expect(count(uni.sent.plans[0]!.indices)).toEqual([4, 4, 4])
  })

  it('static_mix: one window for the whole run on the initial proportions, no mixer', async () => {
    const { sent, decisions } = await runFake({ static_mix: true, train_step: 10 }, undefined, [0.1, 0.1, 0.8])
    expect(sent.plans.length).toBe(1)
    expect(sent.plans[0]!.stepSizes.length).toBe(10)
    expect(count(sent.plans[0]!.indices)).toEqual([4, 4, 32])
    expect(decisions.map((d) => [d.kind, d.strategy])).toEqual([['plan', 'static_mix']])
  })

  it('a mixer returning bad proportions stops the run naming the mixer and the step', async () => {
    await expect(runFake({}, { proportions: () => [1, -1, 0] })).rejects.toThrow(/fake: mix\(\) at step 2 must return 3 finite non-negative proportions/)
    await expect(runFake({}, { proportions: () => [1, 1] })).rejects.toThrow(/must return 3/)
  })
})
