/**
 * The dynamic_select flex-epoch schedule, table-driven. Windows are written compactly:
 *   `W1-2`      warm-up training steps 1..2
 *   `S2@5:6-8`  selection 2 of its flex-epoch, decided after global step 5, trained on steps 6..8
 *   `|`         a new flex-epoch
 */
import { describe, expect, it } from 'vitest'
import { ScheduleError } from '../src/trainers/schedule.ts'
import { buildSelectSchedule, decisionSteps, phaseOf, type SelectSchedule, type SelectScheduleInput } from '../src/trainers/select-schedule.ts'

function describeWindows(s: SelectSchedule): string {
  const out: string[] = []
  let epoch = 0
  for (const w of s.windows) {
    if (w.flexEpoch !== epoch) {
      out.push('|')
      epoch = w.flexEpoch
    }
    out.push(w.kind === 'warmup' ? `W${w.firstStep}-${w.lastStep}` : `S${w.update}@${w.decisionStep}:${w.firstStep}-${w.lastStep}`)
  }
  return out.join(' ')
}

const base: SelectScheduleInput = {
  numTrain: 100,
  perDeviceBatch: 2,
  gradAccum: 2,
  warmupStep: 2,
  updateStep: 3,
  updateTimes: 2,
  trainStep: 0,
  numTrainEpochs: 1,
}

interface Case {
  name: string
  input: Partial<SelectScheduleInput>
  /** E, T_eff, max_steps */
  shape: [number, number, number]
  windows: string
}

const CASES: Case[] = [
  { name: 'one flex-epoch: W + U·T', input: {}, shape: [8, 2, 8], windows: 'W1-2 S1@2:3-5 S2@5:6-8' },
  {
    name: 'two flex-epochs, fresh warm-up in each',
    input: { numTrainEpochs: 2 },
    shape: [8, 2, 16],
    windows: 'W1-2 S1@2:3-5 S2@5:6-8 | W9-10 S1@10:11-13 S2@13:14-16',
  },
  {
    name: 'fractional epochs: ceil(1.5·E), last window cut short',
    input: { numTrainEpochs: 1.5 },
    shape: [8, 2, 12],
    windows: 'W1-2 S1@2:3-5 S2@5:6-8 | W9-10 S1@10:11-12',
  },
  {
    name: 'fractional epochs ending inside a warm-up',
    input: { numTrainEpochs: 1.1 },
    shape: [8, 2, 9],
    windows: 'W1-2 S1@2:3-5 S2@5:6-8 | W9-9',
  },
  { name: 'warmup_step 0: first selection before step 1', input: { warmupStep: 0, updateStep: 2, updateTimes: 3 }, shape: [6, 3, 6], windows: 'S1@0:1-2 S2@2:3-4 S3@4:5-6' },
  {
    name: 'warmup_step 0 over two flex-epochs',
    input: { warmupStep: 0, updateStep: 2, updateTimes: 2, numTrainEpochs: 2 },
    shape: [4, 2, 8],
    windows: 'S1@0:1-2 S2@2:3-4 | S1@4:5-6 S2@6:7-8',
  },
  { name: 'train_step shorter than a flex-epoch', input: { trainStep: 7 }, shape: [8, 2, 7], windows: 'W1-2 S1@2:3-5 S2@5:6-7' },
  {
    name: 'train_step longer than the epochs: flex-epochs repeat',
    input: { trainStep: 20 },
    shape: [8, 2, 20],
    windows: 'W1-2 S1@2:3-5 S2@5:6-8 | W9-10 S1@10:11-13 S2@13:14-16 | W17-18 S1@18:19-20',
  },
  { name: 'train_step wins over Hugging Face max_steps', input: { trainStep: 4, maxSteps: 6 }, shape: [8, 2, 4], windows: 'W1-2 S1@2:3-4' },
  { name: 'Hugging Face max_steps when train_step is 0', input: { maxSteps: 6, numTrainEpochs: 3 }, shape: [8, 2, 6], windows: 'W1-2 S1@2:3-5 S2@5:6-6' },
  { name: 'one selection per flex-epoch', input: { warmupStep: 1, updateStep: 1, updateTimes: 1, numTrainEpochs: 3 }, shape: [2, 1, 6], windows: 'W1-1 S1@1:2-2 | W3-3 S1@3:4-4 | W5-5 S1@5:6-6' },
  {
    name: 'update_times ≤ 0: dataset-sized flex-epochs, last update cut at the boundary',
    input: { numTrain: 30, warmupStep: 2, updateStep: 4, updateTimes: 0 },
    shape: [8, 2, 8],
    windows: 'W1-2 S1@2:3-6 S2@6:7-8',
  },
  {
    name: 'update_times -1, warmup_step 0, two epochs',
    input: { numTrain: 30, warmupStep: 0, updateStep: 3, updateTimes: -1, numTrainEpochs: 2 },
    shape: [8, 3, 16],
    windows: 'S1@0:1-3 S2@3:4-6 S3@6:7-8 | S1@8:9-11 S2@11:12-14 S3@14:15-16',
  },
  {
    name: 'update_times ≤ 0 with the warm-up filling the whole flex-epoch: no selections',
    input: { numTrain: 8, warmupStep: 5, updateStep: 1, updateTimes: 0, numTrainEpochs: 2 },
    shape: [2, 1, 4],
    windows: 'W1-2 | W3-4',
  },
  {
    name: 'update_times ≤ 0 with train_step',
    input: { numTrain: 30, warmupStep: 1, updateStep: 5, updateTimes: 0, trainStep: 10 },
    shape: [8, 2, 10],
    windows: 'W1-1 S1@1:2-6 S2@6:7-8 | W9-9 S1@9:10-10',
  },
  {
    name: 'world size 2 doubles the global batch (fewer steps per dataset epoch)',
    input: { numTrain: 30, worldSize: 2, warmupStep: 0, updateStep: 2, updateTimes: 0 },
    shape: [4, 2, 4],
    windows: 'S1@0:1-2 S2@2:3-4',
  },
  { name: 'a single step', input: { warmupStep: 0, updateStep: 1, updateTimes: 1, trainStep: 1 }, shape: [1, 1, 1], windows: 'S1@0:1-1' },
]

describe('buildSelectSchedule', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const s = buildSelectSchedule({ ...base, ...c.input })
      expect([s.flexEpochLength, s.updateTimes, s.maxSteps]).toEqual(c.shape)
      expect(describeWindows(s)).toBe(c.windows)
      checkInvariants(s)
    })
  }

  it('global batch and per-window sample counts, a short last window asking for what it trains', () => {
    const s = buildSelectSchedule({ ...base, numTrainEpochs: 1.5 })
    expect(s.globalBatch).toBe(4)
    expect(s.windows.map((w) => w.numSamples)).toEqual([8, 12, 12, 8, 8])
  })

  it('flags the windows that end a flex-epoch or the run', () => {
    const s = buildSelectSchedule({ ...base, numTrainEpochs: 1.5 })
    expect(s.windows.map((w) => w.endsFlexEpoch)).toEqual([false, false, true, false, true])
  })

  it('decision steps', () => {
    expect(decisionSteps(buildSelectSchedule({ ...base, numTrainEpochs: 2 }))).toEqual([2, 5, 10, 13])
    expect(decisionSteps(buildSelectSchedule({ ...base, warmupStep: 0, updateStep: 2, updateTimes: 2, numTrainEpochs: 2 }))).toEqual([0, 2, 4, 6])
  })

  it('every window knows T_eff and its flex-epoch', () => {
    const s = buildSelectSchedule({ ...base, numTrain: 30, warmupStep: 0, updateStep: 3, updateTimes: -1, numTrainEpochs: 2 })
    expect(s.windows.map((w) => `${w.flexEpoch}.${w.update}/${w.updateTimes}`)).toEqual(['0.1/3', '0.2/3', '0.3/3', '1.1/3', '1.2/3', '1.3/3'])
  })
})

describe('phaseOf (step → phase)', () => {
  const table: [Partial<SelectScheduleInput>, string][] = [
    // step 1.. as W (warm-up) or the 1-based update index
    [{}, 'W W 1 1 1 2 2 2 W W 1 1 1 2 2 2'],
    [{ warmupStep: 0, updateStep: 2, updateTimes: 3 }, '1 1 2 2 3 3 1 1 2 2 3 3'],
    [{ numTrain: 30, warmupStep: 2, updateStep: 4, updateTimes: 0 }, 'W W 1 1 1 1 2 2 W W 1 1'],
    [{ warmupStep: 3, updateStep: 1, updateTimes: 1 }, 'W W W 1 W W W 1'],
  ]
  for (const [input, expected] of table) {
    it(JSON.stringify(input), () => {
      const s = buildSelectSchedule({ ...base, ...input, trainStep: 64 })
      const n = expected.split(' ').length
      const got = Array.from({ length: n }, (_, i) => {
        const p = phaseOf(s, i + 1)
        return p.phase === 'warmup' ? 'W' : String(p.update)
      })
      expect(got.join(' ')).toBe(expected)
    })
  }

  it('reports the flex-epoch and the offset inside it', () => {
    const s = buildSelectSchedule({ ...base, numTrainEpochs: 2 })
    expect(phaseOf(s, 8)).toEqual({ phase: 'select', flexEpoch: 0, offset: 7, update: 2 })
    expect(phaseOf(s, 9)).toEqual({ phase: 'warmup', flexEpoch: 1, offset: 0, update: 0 })
  })
})

describe('schedule errors (config errors, exit 2)', () => {
  const bad: [string, Partial<SelectScheduleInput>, string][] = [
    ['one selection larger than the pool', { numTrain: 10, updateStep: 3 }, 'update_step'],
    ['update_step 0', { updateStep: 0 }, 'update_step'],
    ['negative warmup_step', { warmupStep: -1 }, 'warmup_step'],
    ['no epochs and no train_step', { numTrainEpochs: 0 }, 'num_train_epochs'],
    ['fractional update_times', { updateTimes: 1.5 }, 'update_times'],
  ]
  for (const [name, input, key] of bad) {
    it(name, () => {
      let err: unknown
      try {
        buildSelectSchedule({ ...base, ...input })
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(ScheduleError)
      expect((err as ScheduleError).code).toBe('config_error')
      expect((err as ScheduleError).key).toBe(key)
    })
  }

  it('a warm-up larger than the pool is fine (drawn with replacement)', () => {
    expect(() => buildSelectSchedule({ ...base, numTrain: 12, warmupStep: 50, updateStep: 3 })).not.toThrow()
  })
})

/** Windows tile 1..max_steps exactly, agree with phaseOf, and ask for B_g × their steps. */
function checkInvariants(s: SelectSchedule): void {
  let next = 1
  for (const w of s.windows) {
    expect(w.firstStep).toBe(next)
    expect(w.decisionStep).toBe(w.firstStep - 1)
    expect(w.steps).toBe(w.lastStep - w.firstStep + 1)
    expect(w.numSamples).toBe(s.globalBatch * w.steps)
    for (let step = w.firstStep; step <= w.lastStep; step++) {
      const p = phaseOf(s, step)
      expect(p.phase).toBe(w.kind)
      expect(p.flexEpoch).toBe(w.flexEpoch)
      expect(p.update).toBe(w.update)
    }
    next = w.lastStep + 1
  }
  expect(next - 1).toBe(s.maxSteps)
}
