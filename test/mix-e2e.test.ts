/**
 * `dataflex train` with `train_type: dynamic_mix` on the tiny models, as users run it: every mixer end to end, the
 * DoReMi chain (step 1 → 2 → 3, step 3 reading step 2's file) as one test, determinism, and bad input.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { expectOk, PYTHON, stable, tempDir, tinyConfig, trainCli, type TrainRun } from './support.ts'

const HAS_PYTHON = existsSync(PYTHON)
const MOE_MODEL = join(REPO_ROOT, 'models', 'tiny-qwen2-moe')
const DOMAINS = ['arith_clean', 'arith_noisy', 'string_ops', 'facts']
const PER_DOMAIN = 16

interface MixDecision {
  step: number
  kind: string
  strategy: string
  steps: [number, number]
  proportions?: number[]
  sampled_with: number[]
  drawn: number[]
  count: number
  indices?: number[]
  window_loss?: (number | null)[]
  [key: string]: unknown
}

/** Four demo domains of 16 rows (max_samples is per dataset), global batch 8, no eval. */
function mixConfig(out: string, extra: Record<string, unknown>): Record<string, unknown> {
  return tinyConfig(out, {
    dataset: DOMAINS.join(','),
    max_samples: PER_DOMAIN,
    eval_strategy: 'no',
    eval_dataset: undefined,
    save_steps: 1000,
    logging_steps: 1,
    train_type: 'dynamic_mix',
    mixture_sample_rule: 'mixture',
    ...extra,
  })
}

const mix = (dir: string, name: string, extra: Record<string, unknown>): Promise<TrainRun<MixDecision>> =>
  trainCli<MixDecision>(dir, name, (out) => mixConfig(out, extra))

const domainOf = (row: number) => Math.floor(row / PER_DOMAIN)

/** Every window: B_g × steps samples, drawn per domain as logged, the counts within 1 of n·p. */
function checkWindows(r: TrainRun<MixDecision>, steps: number): void {
  expect(r.metrics.map((m) => m.step)).toEqual(Array.from({ length: steps }, (_, i) => i + 1))
  for (const d of r.decisions) {
    const n = 8 * (d.steps[1] - d.steps[0] + 1)
    expect(d.count).toBe(n)
    expect(d.drawn.reduce((a, b) => a + b, 0)).toBe(n)
    d.drawn.forEach((c, i) => expect(Math.abs(c - n * d.sampled_with[i]!)).toBeLessThan(1))
    const counted = [0, 0, 0, 0]
    for (const row of d.indices!) counted[domainOf(row)]!++
    expect(counted).toEqual(d.drawn)
  }
}

describe.skipIf(!HAS_PYTHON).concurrent('dataflex train with train_type: dynamic_mix', () => {
  // W=1, U=2, T=2 → 5 steps: a warm-up window and two updates.
  const schedule = { warmup_step: 1, update_step: 2, update_times: 2 }
  const presets: [string, Record<string, unknown>][] = [
    ['static', { proportions: [0.1, 0.2, 0.3, 0.4] }],
    ['random', {}],
    ['odm', { warmup_steps: 0 }],
    ['ado', { start_step: 1, ignore_steps: 0 }],
  ]
  for (const [name, params] of presets) {
    it(`${name} end to end`, async () => {
      const dir = tempDir(`mix-${name}`)
      const components = { mixers: { [`${name}_preset`]: { name, params } } }
      const r = await mix(dir, name, { component_name: `${name}_preset`, components, ...schedule })
      expectOk(r)
      checkWindows(r, 5)
      expect(r.decisions.map((d) => `${d.kind}@${d.step}:${d.steps.join('-')}`)).toEqual(['plan@0:1-1', 'mix@1:2-3', 'mix@3:4-5'])
      const updates = r.decisions.filter((d) => d.kind === 'mix')
      for (const d of updates) {
        expect(d.strategy).toBe(name)
        expect(d.proportions!.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12)
        // Every domain drawn in the previous window has a finite training loss.
        expect(d.window_loss!.some((l) => l !== null && l > 0)).toBe(true)
      }
      if (name === 'static') for (const d of updates) expect(d.sampled_with.map((p) => +p.toFixed(12))).toEqual([0.1, 0.2, 0.3, 0.4])
      if (name === 'random') expect(updates[0]!.proportions).not.toEqual(updates[1]!.proportions)
      if (name === 'odm') expect(readFileSync(join(r.out, 'odm_weights.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2)
      const mixJson = JSON.parse(readFileSync(join(r.out, 'dataflex', 'mix.json'), 'utf8')) as { domains: { name: string; rows: number }[] }
      expect(mixJson.domains.map((d) => [d.name, d.rows])).toEqual(DOMAINS.map((n) => [n, PER_DOMAIN]))
      expect(existsSync(join(r.out, 'dataflex', 'state', `${name}_preset.json`)) || name === 'static' || name === 'random').toBe(true)
    }, 240_000)
  }

  it('the same seed gives identical decisions and losses; warmup_step 0 updates before step 1', async () => {
    const dir = tempDir('mix-determinism')
    const extra = { component_name: 'r', components: { mixers: { r: { name: 'random' } } }, warmup_step: 0, update_step: 2, update_times: 2 }
    const [a, b] = await Promise.all([mix(dir, 'a', extra), mix(dir, 'b', extra)])
    expectOk(a)
    expectOk(b)
    expect(a.decisions[0]).toMatchObject({ step: 0, kind: 'mix', steps: [1, 2] })
    expect(a.decisions.map(stable)).toEqual(b.decisions.map(stable))
    expect(a.metrics.map((m) => m.loss)).toEqual(b.metrics.map((m) => m.loss))
  }, 240_000)

  it('DoReMi in three steps: reference → proxy (excess loss, reweighted loss) → final mixture read from the weights file', async () => {
    const dir = tempDir('mix-doremi')
    const step1 = await mix(dir, 'step1', { static_mix: true, init_mixture_proportions: [0.25, 0.25, 0.25, 0.25], train_step: 3 })
    expectOk(step1)
    checkWindows(step1, 3)
    const components = { mixers: { doremi_proxy: { name: 'doremi', params: { reference_model_path: step1.out, reweight_eta: 1.0, reweight_eps: 0.01 } } } }
    const step2 = await mix(dir, 'step2', { component_name: 'doremi_proxy', components, warmup_step: 1, update_step: 1, update_times: 3 })
    expectOk(step2)
    checkWindows(step2, 4)
    const updates = step2.decisions.filter((d) => d.kind === 'mix')
    expect(updates.length).toBe(3)
    // The proxy samples uniformly; the excess loss over the reference was measured on every trained micro-batch.
    for (const d of updates) expect(d.sampled_with).toEqual([0.25, 0.25, 0.25, 0.25])
    for (const d of updates) expect((d['window_excess'] as (number | null)[]).some((x) => x !== null)).toBe(true)
    const weightsLines = readFileSync(join(step2.out, 'doremi_weights.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { domain_weights: number[] })
    expect(weightsLines).toHaveLength(3)
    const avg = JSON.parse(readFileSync(join(step2.out, 'doremi_average_weights.json'), 'utf8')) as { domain_names: string[]; average_weights: number[] }
    expect(avg.domain_names).toEqual(DOMAINS)
    // ᾱ = the mean of the logged weights, renormalised.
    const mean = DOMAINS.map((_, i) => weightsLines.reduce((a, w) => a + w.domain_weights[i]!, 0) / weightsLines.length)
    const total = mean.reduce((a, b) => a + b, 0)
    avg.average_weights.forEach((w, i) => expect(w).toBeCloseTo(mean[i]! / total, 9))
    expect(existsSync(join(step2.out, 'doremi_step3_proportions.txt'))).toBe(true)

    const step3 = await mix(dir, 'step3', { static_mix: true, init_mixture_proportions: join(step2.out, 'doremi_average_weights.json'), train_step: 3 })
    expectOk(step3)
    checkWindows(step3, 3)
    const sum = avg.average_weights.reduce((a, b) => a + b, 0)
    step3.decisions[0]!.sampled_with.forEach((p, i) => expect(p).toBeCloseTo(avg.average_weights[i]! / sum, 12))
  }, 480_000)

  it.skipIf(!existsSync(MOE_MODEL))('dynamic_moe on a mixture-of-experts model: router loads of held-out rows, frozen routers', async () => {
    const dir = tempDir('mix-moe')
    const components = { mixers: { moe: { name: 'dynamic_moe', params: { collect_steps: 1, eval_batch_size: 4, eval_samples: 6 } } } }
    const r = await trainCli<MixDecision>(dir, 'moe', (out) =>
      mixConfig(out, { model_name_or_path: MOE_MODEL, component_name: 'moe', components, mixer_eval_dataset: 'string_ops_eval,facts_eval', freeze_gate: true, ...schedule }),
    )
    expectOk(r)
    const mixJson = JSON.parse(readFileSync(join(r.out, 'dataflex', 'mix.json'), 'utf8')) as {
      domains: { name: string; drawable: number; held_out: { split: string; rows: number } | null }[]
    }
    // arith_* lose min(6, 16/2) = 6 training rows to the held-out split; string_ops and facts use their eval sets.
    expect(mixJson.domains.map((d) => [d.drawable, d.held_out?.split])).toEqual([
      [10, 'train'],
      [10, 'train'],
      [16, 'eval:string_ops_eval'],
      [16, 'eval:facts_eval'],
    ])
    const heldOutRows = new Set<number>()
    const updates = r.decisions.filter((d) => d.kind === 'mix')
    expect(updates.length).toBe(2)
    for (const d of r.decisions) for (const row of d.indices!) heldOutRows.add(row)
    // Training draws never touch the held-out arith rows: 10 of each arith domain at most.
    for (const dom of [0, 1]) expect([...heldOutRows].filter((row) => domainOf(row) === dom).length).toBeLessThanOrEqual(10)
    expect(readFileSync(join(r.out, 'dynamic_moe_weights.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2)
    expect(r.stderr + r.stdout).not.toContain('IndexError')
  }, 240_000)

  it('bad input exits 2 naming the key before any model loads', async () => {
    const dir = tempDir('mix-bad')
    writeFileSync(join(dir, 'weights.json'), JSON.stringify({ domain_names: ['a', 'b', 'c', 'd'], average_weights: [1, 1, 1, 1] }))
    const wrongNames = await mix(dir, 'names', { static_mix: true, init_mixture_proportions: join(dir, 'weights.json'), train_step: 2 })
    expect(wrongNames.code).toBe(2)
    expect(wrongNames.stderr).toContain('init_mixture_proportions')
    expect(wrongNames.stderr).toContain('arith_clean')
    const missing = await mix(dir, 'missing', { static_mix: true, init_mixture_proportions: 'nope.json', train_step: 2 })
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('init_mixture_proportions file not found')
    const evalName = await mix(dir, 'evalname', { static_mix: true, train_step: 2, mixer_eval_dataset: 'arith_eval' })
    expect(evalName.code).toBe(2)
    expect(evalName.stderr).toContain("mixer_eval_dataset 'arith_eval'")
    for (const r of [wrongNames, missing, evalName]) expect(existsSync(r.out)).toBe(false)
  }, 120_000)
})
