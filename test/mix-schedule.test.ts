/**
 * The dynamic_mix schedule and draw, table by table: windows, steps and sample counts from the formulas (written out
 * here, not read from the code), and the draw's counts and rows.
 */
import { describe, expect, it } from 'vitest'
import { Rng } from '../src/math/rng.ts'
import { apportion, DomainStreams, normalized, ruleProportions } from '../src/trainers/mix-draw.ts'
import { buildMixSchedule, type MixScheduleInput } from '../src/trainers/mix-schedule.ts'
import { ScheduleError } from '../src/trainers/schedule.ts'

const base: MixScheduleInput = {
  poolSize: 480,
  perDeviceBatch: 4,
  gradAccum: 2,
  staticMix: false,
  warmupStep: 3,
  updateStep: 5,
  updateTimes: 2,
  trainStep: 0,
  numTrainEpochs: 1,
}

const shape = (over: Partial<MixScheduleInput>) =>
  buildMixSchedule({ ...base, ...over }).windows.map((w) => [w.kind, w.update, w.decisionStep, w.firstStep, w.lastStep, w.numSamples])

describe('buildMixSchedule', () => {
  it('warm-up, then T updates of U steps: exactly W + U·T steps (train_step ignored, as in DataFlex)', () => {
    const s = buildMixSchedule({ ...base, trainStep: 100 })
    expect(s.maxSteps).toBe(3 + 5 * 2)
    expect(s.globalBatch).toBe(8)
    expect(s.updates).toBe(2)
    expect(shape({ trainStep: 100 })).toEqual([
      ['warmup', 0, 0, 1, 3, 24],
      ['update', 1, 3, 4, 8, 40],
      ['update', 2, 8, 9, 13, 40],
    ])
  })

  it('warmup_step 0: the first update comes before step 1 (DataFlex trains nothing)', () => {
    expect(shape({ warmupStep: 0 })).toEqual([
      ['update', 1, 0, 1, 5, 40],
      ['update', 2, 5, 6, 10, 40],
    ])
  })

  it('update_times < 0: updates every U steps until train_step, the last window cut to the steps it trains', () => {
    const s = buildMixSchedule({ ...base, updateTimes: -1, trainStep: 12 })
    expect(s.maxSteps).toBe(12)
    expect(s.updateTimes).toBe(-1)
    expect(s.windows.map((w) => [w.firstStep, w.lastStep, w.numSamples])).toEqual([
      [1, 3, 24],
      [4, 8, 40],
      [9, 12, 32],
    ])
    // Never short: every window draws B_g × its steps.
    for (const w of s.windows) expect(w.numSamples).toBe(8 * w.steps)
  })

  it('update_times < 0 without train_step: max_steps, else ⌊S / B_g⌋ × epochs', () => {
    expect(buildMixSchedule({ ...base, updateTimes: -1, maxSteps: 7 }).maxSteps).toBe(7)
    // ⌊480 / 8⌋ × 1.5 = 90
    expect(buildMixSchedule({ ...base, updateTimes: -1, numTrainEpochs: 1.5 }).maxSteps).toBe(90)
    // ⌊100 / 8⌋ = 12, × 0.5 = 6
    expect(buildMixSchedule({ ...base, poolSize: 100, updateTimes: -1, numTrainEpochs: 0.5 }).maxSteps).toBe(6)
  })

  it('static_mix: one window of the whole run, no update', () => {
    expect(shape({ staticMix: true, trainStep: 20 })).toEqual([['static', 0, 0, 1, 20, 160]])
    expect(buildMixSchedule({ ...base, staticMix: true, numTrainEpochs: 2 }).maxSteps).toBe(120)
  })

  it('refuses schedules that train nothing, naming the key', () => {
    const err = (over: Partial<MixScheduleInput>) => {
      try {
        buildMixSchedule({ ...base, ...over })
      } catch (e) {
        return [(e as ScheduleError).code, (e as ScheduleError).key]
      }
      return undefined
    }
    expect(err({ warmupStep: 0, updateTimes: 0 })).toEqual(['config_error', 'update_times'])
    expect(err({ staticMix: true, poolSize: 4, numTrainEpochs: 1 })).toEqual(['config_error', 'train_step'])
    expect(err({ updateStep: 0 })).toEqual(['config_error', 'update_step'])
  })
})

describe('drawing by proportions', () => {
  it('apportion: the closest integers to n·p that sum to n (largest remainders, ties to the lower domain)', () => {
    expect(Array.from(apportion(10, Float64Array.of(0.25, 0.25, 0.5)))).toEqual([3, 2, 5])
    expect(Array.from(apportion(7, Float64Array.of(1 / 3, 1 / 3, 1 / 3)))).toEqual([3, 2, 2])
    expect(Array.from(apportion(5, Float64Array.of(0, 1, 0)))).toEqual([0, 5, 0])
    // Reference: for random p and n, each count is ⌊n·p⌋ or ⌈n·p⌉ and they sum to n.
    const rng = new Rng(3)
    for (let t = 0; t < 200; t++) {
      const k = 1 + rng.int(6)
      const p = normalized(Array.from({ length: k }, () => rng.float()))!
      const n = rng.int(500)
      const c = apportion(n, p)
      expect(c.reduce((a, b) => a + b, 0)).toBe(n)
      c.forEach((ci, i) => expect(Math.abs(ci - n * p[i]!)).toBeLessThan(1))
    }
  })

  it('rules: mixture keeps the mixer, stratified follows sizes, uniform 1/k', () => {
    const mixed = Float64Array.of(0.7, 0.2, 0.1)
    expect(Array.from(ruleProportions('mixture', mixed, [10, 30, 60]))).toEqual([0.7, 0.2, 0.1])
    expect(Array.from(ruleProportions('stratified', mixed, [10, 30, 60]))).toEqual([0.1, 0.3, 0.6])
    expect(Array.from(ruleProportions('uniform', mixed, [10, 30, 60]))).toEqual([1 / 3, 1 / 3, 1 / 3])
  })

  it('normalized refuses negative, non-finite and all-zero proportions', () => {
    expect(normalized([1, -1])).toBeNull()
    expect(normalized([NaN, 1])).toBeNull()
    expect(normalized([0, 0])).toBeNull()
    expect(Array.from(normalized([1, 3])!)).toEqual([0.25, 0.75])
  })

  it("streams: each domain's rows without replacement until all were drawn, seeded, from its own rows only", () => {
    const rows = [Int32Array.of(0, 1, 2, 3), Int32Array.of(10, 11, 12)]
    const a = new DomainStreams(rows, 7)
    const first = a.draw(Int32Array.of(4, 2))
    expect(Array.from(first.subarray(0, 4)).sort()).toEqual([0, 1, 2, 3])
    expect(new Set(first.subarray(4)).size).toBe(2)
    const second = a.draw(Int32Array.of(0, 4))
    // Domain 1: one row left of its first round, then a fresh permutation; every row of the round once.
    const domain1 = [...first.subarray(4), ...second]
    expect(domain1.slice(0, 3).sort()).toEqual([10, 11, 12])
    expect(domain1.every((r) => r >= 10 && r <= 12)).toBe(true)
    expect(a.state()).toEqual([
      { round: 0, cursor: 4 },
      { round: 1, cursor: 3 },
    ])
    // Same seed, same draws.
    const b = new DomainStreams(rows, 7)
    expect(Array.from(b.draw(Int32Array.of(4, 2)))).toEqual(Array.from(first))
  })
})
