/**
 * `dataflex train` with `train_type: dynamic_lego` on the tiny model, as users run it: every shipped pipeline preset
 * (configs/components.yaml), the per-sample weights of a pipeline against its stages' weights re-derived from their
 * formulas, one scoring forward shared by two stages, determinism, the stage state beside the run, and bad input.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { expectAllClose } from './close.ts'
import { expectOk, PYTHON, stable, tempDir, tinyConfig, trainCli, type TrainRun } from './support.ts'

const HAS_PYTHON = existsSync(PYTHON)
const COMPONENTS = join(REPO_ROOT, 'configs', 'components.yaml')
/** arith_clean + facts, 40 rows each. */
const N = 80
/** B_g = 4 (GA 1); W=10, U=10, T=5: 60 steps, intervals of 40 rows at steps 10, 20, …, 50. */
const INTERVAL = 40
/** Per run and per test: several sidecars share 2 cores. */
const LIMIT = 290_000

interface Decision {
  step: number
  kind: string
  strategy: string
  component: string
  count?: number
  indices?: number[]
  [key: string]: unknown
}

function legoConfig(out: string, pipeline: string | Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return tinyConfig(out, {
    eval_strategy: 'no',
    eval_dataset: undefined,
    save_strategy: 'no',
    max_samples: 40,
    per_device_train_batch_size: 4,
    gradient_accumulation_steps: 1,
    num_train_epochs: 1.0,
    train_type: 'dynamic_lego',
    components_cfg_file: COMPONENTS,
    ...(typeof pipeline === 'string' ? { component_name: pipeline } : { component_name: 'p', components: { pipelines: { p: { params: pipeline } } } }),
    warmup_step: 10,
    update_step: 10,
    update_times: 5,
    ...extra,
  })
}

const run = (dir: string, name: string, pipeline: string | Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<TrainRun<Decision>> =>
  trainCli<Decision>(dir, name, (out) => legoConfig(out, pipeline, extra), LIMIT)

const of = (r: TrainRun<Decision>, kind: string): Decision[] => r.decisions.filter((d) => d.kind === kind)

/** Every interval's plan has exactly B_g × its steps rows, and the walk trained all 60 steps. */
function expectIntervals(r: TrainRun<Decision>): Decision[] {
  expectOk(r)
  expect(r.metrics.map((m) => m.step)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1))
  const plans = of(r, 'plan')
  expect(plans.map((p) => [p.step, p.strategy, p.count])).toEqual([[0, 'warmup', 40], ...[10, 20, 30, 40, 50].map((s) => [s, 'pipeline', INTERVAL])])
  return plans.filter((p) => p.strategy === 'pipeline')
}

/** The loss weighter's weights of one micro-batch (linupper, δ = 1, r = 1), from the definitions. */
function lossWeights(losses: number[], groupSamples: number, groupMicro: number): number[] {
  const lo = Math.min(...losses)
  const hi = Math.max(...losses)
  const den = Math.max(hi - lo, 1e-6)
  const a = losses.map((l) => Math.min((2 * l) / den - (hi + lo) / den + 1, 1))
  const m = Math.max(...a)
  const e = a.map((x) => Math.exp(x - m))
  const z = e.reduce((s, x) => s + x, 0)
  return e.map((x) => (x / z) * (groupSamples / groupMicro))
}

describe.skipIf(!HAS_PYTHON).concurrent('dataflex train with train_type: dynamic_lego', () => {
  it('hierarchical: filter by loss, mix by odm (reshaping), saw by loss, loss-weighted; one forward feeds both scorers', async () => {
    const r = await run(tempDir('lego-hier'), 'hier', 'hierarchical')
    const plans = expectIntervals(r)
    const first = plans[0]!
    expect((first['stages'] as { stage: string; action: string }[]).map((s) => [s.stage, s.action])).toEqual([
      ['selector:loss', 'decided'],
      ['mixer:odm', 'decided'],
      ['reorder:dynamic_saw', 'decided'],
    ])
    // The selector scored all N rows; the reorder's scores at the same step came from the board.
    expect(first['board']).toEqual({ computed: N, hits: expect.any(Number) })
    expect((first['board'] as { hits: number }).hits).toBeGreaterThan(0)
    expect(first['budget']).toBe('exact')
    // The selector keeps half the pool, once (every 200): later intervals reuse its selection.
    const selects = of(r, 'select')
    expect(selects.map((s) => [s.step, s['mode'], s.count])).toEqual([[10, 'filter', N / 2]])
    const kept = new Set(selects[0]!.indices)
    for (const p of plans) expect(p.indices!.every((i) => kept.has(i))).toBe(true)
    // odm decides at 10 and 60 − its every (50) later; the reorder every boundary; weights from step 11 on.
    expect(of(r, 'mix').map((m) => m.step)).toEqual([10])
    expect(of(r, 'reorder').map((m) => m.step)).toEqual([10, 20, 30, 40, 50])
    expect(of(r, 'weight').map((w) => w.step)).toEqual(Array.from({ length: 50 }, (_, i) => i + 11))
    const state = JSON.parse(readFileSync(join(r.out, 'dataflex', 'state', 'pipeline-hierarchical.json'), 'utf8'))
    expect(state.step).toBe(60)
    expect(state.state.stages.map((s: { stage: string; last_run: number | null }) => [s.stage, s.last_run])).toEqual([
      ['selector:loss', 10],
      ['mixer:odm', 10],
      ['reorder:dynamic_saw', 50],
      ['weighter:loss', null],
    ])
  }, LIMIT)

  it('select_then_reorder: the reorder orders only what the selector kept, the realised order follows the saw', async () => {
    const r = await run(tempDir('lego-str'), 'str', 'select_then_reorder')
    const plans = expectIntervals(r)
    const kept = new Set(of(r, 'select')[0]!.indices)
    const reorders = of(r, 'reorder')
    expect(reorders.map((d) => [d.step, d['pool']])).toEqual([10, 20, 30, 40, 50].map((s) => [s, N / 2]))
    // The pool is the same until the selector decides again (every 100): the stream goes on, each row once a pass.
    expect(plans.flatMap((p) => p.indices!).every((i) => kept.has(i))).toBe(true)
    expect(reorders.slice(1).every((d) => d['pool_changed'] === false)).toBe(true)
    for (const p of plans) expect(new Set(p.indices).size).toBe(INTERVAL)
    // The trained order is the reorder's order (no shuffle).
    for (let j = 0; j < plans.length; j++) expect(plans[j]!.indices).toEqual(reorders[j]!.indices)
  }, LIMIT)

  it('mix_then_weight: odm takes the interval by domain quotas, the loss weighter weighs every micro-batch after its warm-up', async () => {
    const r = await run(tempDir('lego-mtw'), 'mtw', 'mix_then_weight')
    const plans = expectIntervals(r)
    const mixes = of(r, 'mix')
    expect(mixes.map((m) => m.step)).toEqual([10])
    const p = mixes[0]!['proportions'] as number[]
    // Rows 0..39 are arith_clean, 40..79 facts: each interval's domain counts are the largest-remainder quotas.
    for (const plan of plans) {
      const a = plan.indices!.filter((i) => i < 40).length
      expect(Math.abs(a - INTERVAL * p[0]!)).toBeLessThanOrEqual(1)
    }
    expect(of(r, 'weight').length).toBe(50)
  }, LIMIT)

  it("doremi_then_weight: each sample's weight is DoReMi's domain weight × the loss weighter's, re-derived", async () => {
    const pipeline = {
      stages: [
        { family: 'mixer', component: 'doremi', every: 10 },
        { family: 'weighter', component: 'loss', warmup_step: 5 },
      ],
    }
    const r = await run(tempDir('lego-dtw'), 'dtw', pipeline, { log_weights: true })
    expectIntervals(r)
    const mixes = of(r, 'mix')
    expect(mixes.map((m) => m.step)).toEqual([10, 20, 30, 40, 50])
    const weights = of(r, 'weight')
    // Every step is weighed (the domain weights count from the start); the loss weighter joins after step 5.
    expect(weights.map((w) => w.step)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1))
    let checked = 0
    for (const w of weights) {
      const indices = w.indices!
      const losses = w['sample_losses'] as number[]
      // The loss weighter: one softmax per micro-batch of 4 (GA 1: the group is the micro-batch).
      const lw: number[] = []
      for (let m = 0; m < indices.length; m += 4) lw.push(...(w.step > 5 ? lossWeights(losses.slice(m, m + 4), 4, 1) : [1, 1, 1, 1]))
      // DoReMi: α·k of the last update before the step (none yet: 1).
      const last = mixes.filter((m) => m.step < w.step).at(-1)
      const alpha = last === undefined ? undefined : ((last['info'] as { domain_weights: number[] }).domain_weights)
      const dw = indices.map((i) => (alpha === undefined ? 1 : alpha[i < 40 ? 0 : 1]! * 2))
      expectAllClose(w['sample_weights'] as number[], lw.map((x, i) => x * dw[i]!), { rel: 1e-6, scale: 1 }, `step ${w.step}`)
      if (alpha !== undefined) checked++
    }
    expect(checked).toBe(50)
    expect(existsSync(join(r.out, 'doremi_average_weights.json'))).toBe(true)
  }, LIMIT)

  it('select_only, twice: a draw-mode selector every interval, and identical decisions run after run', async () => {
    const dir = tempDir('lego-sel')
    const [a, b] = await Promise.all([run(dir, 'a', 'select_only'), run(dir, 'b', 'select_only')])
    expectIntervals(a)
    expect(of(a, 'select').map((s) => [s.step, s['mode'], s.count])).toEqual([10, 20, 30, 40, 50].map((s) => [s, 'draw', INTERVAL]))
    expect(b.decisions.map(stable)).toEqual(a.decisions.map(stable))
  }, LIMIT)

  it("a user's own strategy of every family is a stage", async () => {
    const file = (...p: string[]): string => join(REPO_ROOT, ...p)
    const components = {
      selectors: { mysel: { name: 'custom', params: { path: file('examples', 'strategies', 'fresh_hard.ts') } } },
      mixers: { mymix: { name: 'custom', params: { path: file('test', 'fixtures', 'custom_mixer.ts') } } },
      reorders: { myreo: { name: 'custom', params: { path: file('test', 'fixtures', 'custom_reorder.mjs') } } },
      weighters: { mywei: { name: 'custom', params: { path: file('examples', 'strategies', 'outlier_guard.ts') } } },
      pipelines: {
        mine: {
          params: {
            stages: [
              { family: 'selector', component: 'mysel', mode: 'filter', keep_ratio: 0.75, every: 20 },
              { family: 'mixer', component: 'mymix', every: 10 },
              { family: 'reorder', component: 'myreo' },
              { family: 'weighter', component: 'mywei', warmup_step: 10 },
            ],
          },
        },
      },
    }
    const r = await run(tempDir('lego-user'), 'user', 'mine', { components })
    const plans = expectIntervals(r)
    expect(of(r, 'select').map((d) => [d.step, d.strategy])).toEqual([[10, 'fresh_hard'], [30, 'fresh_hard'], [50, 'fresh_hard']])
    expect(of(r, 'mix').map((d) => [d.step, d.strategy])).toEqual([10, 20, 30, 40, 50].map((s) => [s, 'loss_softmax']))
    expect(new Set(of(r, 'reorder').map((d) => d.strategy))).toEqual(new Set(['by_score']))
    expect(new Set(of(r, 'weight').map((d) => d.strategy))).toEqual(new Set(['outlier_guard']))
    // The user reorder orders by its (absent) scores, ties by row: each interval trains in ascending row order.
    for (const p of plans) expect(p.indices).toEqual([...p.indices!].sort((a, b) => a - b))
  }, LIMIT)

  it('bad pipelines are config errors naming the key (exit 2, nothing trained)', async () => {
    const dir = tempDir('lego-bad')
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ stages: [{ family: 'selector', component: 'loss', moed: 'draw' }] }, /moed/],
      [{ stages: [{ family: 'selector', component: 'loss', mode: 'draw' }, { family: 'mixer', component: 'odm' }] }, /use mode: filter/],
      [{ stages: [{ family: 'mixer', component: 'odm', keep_ratio: 0.5 }] }, /keep_ratio.*selector stages only/],
      [{ stages: [{ family: 'reorder', component: 'sorting' }, { family: 'reorder', component: 'saw' }] }, /at most one index stage per family/],
      [{ stages: [{ family: 'selector', component: 'nope' }] }, /unknown component_name 'nope'/],
      [{ stages: [] }, /stages/],
    ]
    const results = await Promise.all(cases.map(([p], i) => run(dir, `bad${i}`, p)))
    results.forEach((r, i) => {
      expect(r.code, r.stderr).toBe(2)
      expect(r.stderr).toMatch(cases[i]![1])
      expect(existsSync(join(r.out, 'dataflex', 'decisions.jsonl'))).toBe(false)
    })
  }, LIMIT)
})
