/**
 * The static schedule against transformers 4.57.6. HF_CASES were recorded by running the real
 * `Trainer.train()` (tiny torch module, a sampler yielding SampleOrder below) and logging every micro-batch,
 * step, on_epoch_end, train log, evaluation and save; the last test re-runs that recording live when a
 * Python with transformers is available.
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  ScheduleError,
  buildStaticPlan,
  flowSteps,
  parseFlowArgs,
  planSteps,
  stepEvents,
  type PlanArgsInput,
  type StaticPlan,
} from '../src/trainers/schedule.ts'

/** order_e[i] = (a·i + c·e) mod n: a different permutation per pass (a coprime with n). */
function affineOrder(n: number, a: number, c: number): (epoch: number) => Int32Array {
  return (epoch) => Int32Array.from({ length: n }, (_, i) => (a * i + c * epoch) % n)
}

/** Steps as `globalStep@epoch:size+size…`, events as `kind@globalStep`, in HF's order. */
function describeSteps(plan: StaticPlan): string {
  return planSteps(plan)
    .map((s) => `${s.globalStep}@${s.epoch}:${s.microBatches.map((m) => m.length).join('+')}`)
    .join(' ')
}

function describeEvents(plan: StaticPlan, args: Record<string, unknown>): string {
  const flow = parseFlowArgs(args)
  const out: string[] = []
  for (const pass of plan.passes) {
    if (pass.steps.length === 0) out.push('epoch_end@0')
    for (const step of pass.steps) {
      const ev = stepEvents(step, flow)
      const at = `@${step.globalStep}`
      if (ev.log) out.push(`log${at}`)
      if (ev.evaluate) out.push(`evaluate${at}`)
      if (ev.save) out.push(`save${at}`)
      if (ev.epochEnd) {
        out.push(`epoch_end${at}`)
        if (ev.epochEnd.log) out.push(`log${at}`)
        if (ev.epochEnd.evaluate) out.push(`evaluate${at}`)
        if (ev.epochEnd.save) out.push(`save${at}`)
      }
    }
  }
  return out.join(' ')
}

interface HfCase {
  n: number
  a: number
  c: number
  args: PlanArgsInput & Record<string, unknown>
  maxSteps: number
  steps: string
  events: string
}

// prettier-ignore
const HF_CASES: HfCase[] = [
  { n: 10, a: 3, c: 1, args: {per_device_train_batch_size: 3, gradient_accumulation_steps: 1, num_train_epochs: 1},
    maxSteps: 4, steps: '1@0.25:3 2@0.5:3 3@0.75:3 4@1:1',
    events: 'save@4 epoch_end@4' },
  { n: 10, a: 3, c: 1, args: {per_device_train_batch_size: 3, gradient_accumulation_steps: 2, num_train_epochs: 1},
    maxSteps: 2, steps: '1@0.5:3+3 2@1:3+1',
    events: 'save@2 epoch_end@2' },
  { n: 10, a: 3, c: 1, args: {per_device_train_batch_size: 3, gradient_accumulation_steps: 3, num_train_epochs: 1},
    maxSteps: 2, steps: '1@0.75:3+3+3 2@1:1',
    events: 'save@2 epoch_end@2' },
  { n: 10, a: 3, c: 1, args: {per_device_train_batch_size: 3, gradient_accumulation_steps: 3, num_train_epochs: 2},
    maxSteps: 4, steps: '1@0.75:3+3+3 2@1:1 3@1.75:3+3+3 4@2:1',
    events: 'epoch_end@2 save@4 epoch_end@4' },
  { n: 10, a: 3, c: 1, args: {per_device_train_batch_size: 3, gradient_accumulation_steps: 2, num_train_epochs: 2.5, logging_steps: 2, eval_strategy: 'epoch', save_steps: 3},
    maxSteps: 5, steps: '1@0.5:3+3 2@1:3+1 3@1.5:3+3 4@2:3+1 5@2.5:3+3',
    events: 'log@2 epoch_end@2 evaluate@2 save@3 log@4 epoch_end@4 evaluate@4 save@5 epoch_end@5 evaluate@5' },
  { n: 10, a: 3, c: 1, args: {per_device_train_batch_size: 3, gradient_accumulation_steps: 3, num_train_epochs: 2.5},
    maxSteps: 5, steps: '1@0.75:3+3+3 2@1:1 3@1.75:3+3+3 4@2:1 5@2.75:3+3+3',
    events: 'epoch_end@2 epoch_end@4 save@5 epoch_end@5' },
  { n: 10, a: 3, c: 1, args: {per_device_train_batch_size: 3, num_train_epochs: 1, dataloader_drop_last: true},
    maxSteps: 3, steps: '1@0.3333333333333333:3 2@0.6666666666666666:3 3@1:3',
    events: 'save@3 epoch_end@3' },
  { n: 10, a: 3, c: 1, args: {per_device_train_batch_size: 3, gradient_accumulation_steps: 2, num_train_epochs: 2, dataloader_drop_last: true, logging_strategy: 'epoch', save_strategy: 'epoch'},
    maxSteps: 4, steps: '1@0.6666666666666666:3+3 2@1:3 3@1.6666666666666665:3+3 4@2:3',
    events: 'epoch_end@2 log@2 save@2 epoch_end@4 log@4 save@4' },
  { n: 10, a: 3, c: 1, args: {per_device_train_batch_size: 3, gradient_accumulation_steps: 2, max_steps: 5, save_steps: 2},
    maxSteps: 5, steps: '1@0.5:3+3 2@1:3+1 3@1.5:3+3 4@2:3+1 5@2.5:3+3',
    events: 'save@2 epoch_end@2 save@4 epoch_end@4 save@5 epoch_end@5' },
  { n: 10, a: 3, c: 1, args: {per_device_train_batch_size: 3, gradient_accumulation_steps: 3, max_steps: 3, save_strategy: 'epoch', eval_strategy: 'epoch'},
    maxSteps: 3, steps: '1@0.75:3+3+3 2@1:1 3@1.75:3+3+3',
    events: 'epoch_end@2 evaluate@2 save@2 epoch_end@3 evaluate@3 save@3' },
  { n: 8, a: 5, c: 3, args: {per_device_train_batch_size: 4, gradient_accumulation_steps: 2, max_steps: 4, logging_steps: 1},
    maxSteps: 4, steps: '1@1:4+4 2@2:4+4 3@3:4+4 4@4:4+4',
    events: 'log@1 epoch_end@1 log@2 epoch_end@2 log@3 epoch_end@3 log@4 save@4 epoch_end@4' },
  { n: 7, a: 3, c: 2, args: {per_device_train_batch_size: 2, num_train_epochs: 1, logging_first_step: true, logging_steps: 2, eval_strategy: 'steps', save_steps: 3},
    maxSteps: 4, steps: '1@0.25:2 2@0.5:2 3@0.75:2 4@1:1',
    events: 'log@1 log@2 evaluate@2 save@3 log@4 evaluate@4 save@4 epoch_end@4' },
  { n: 13, a: 5, c: 4, args: {per_device_train_batch_size: 2, max_steps: 10, logging_steps: 0.25, eval_strategy: 'steps', eval_steps: 0.5, save_steps: 0.4},
    maxSteps: 10, steps: '1@0.14285714285714285:2 2@0.2857142857142857:2 3@0.42857142857142855:2 4@0.5714285714285714:2 5@0.7142857142857143:2 6@0.8571428571428571:2 7@1:1 8@1.1428571428571428:2 9@1.2857142857142856:2 10@1.4285714285714286:2',
    events: 'log@3 save@4 evaluate@5 log@6 epoch_end@7 save@8 log@9 evaluate@10 save@10 epoch_end@10' },
  { n: 9, a: 2, c: 1, args: {per_device_train_batch_size: 2, gradient_accumulation_steps: 2, num_train_epochs: 3, eval_strategy: 'steps', eval_steps: 2, eval_delay: 3, save_strategy: 'no', logging_strategy: 'no'},
    maxSteps: 9, steps: '1@0.4:2+2 2@0.8:2+2 3@1:1 4@1.4:2+2 5@1.8:2+2 6@2:1 7@2.4:2+2 8@2.8:2+2 9@3:1',
    events: 'epoch_end@3 evaluate@4 evaluate@6 epoch_end@6 evaluate@8 epoch_end@9' },
  { n: 9, a: 2, c: 1, args: {per_device_train_batch_size: 2, gradient_accumulation_steps: 2, num_train_epochs: 3, eval_strategy: 'epoch', eval_delay: 1.5, logging_strategy: 'epoch', logging_first_step: true, save_strategy: 'epoch'},
    maxSteps: 9, steps: '1@0.4:2+2 2@0.8:2+2 3@1:1 4@1.4:2+2 5@1.8:2+2 6@2:1 7@2.4:2+2 8@2.8:2+2 9@3:1',
    events: 'log@1 epoch_end@3 log@3 save@3 epoch_end@6 log@6 evaluate@6 save@6 epoch_end@9 log@9 evaluate@9 save@9' },
  { n: 9, a: 4, c: 1, args: {per_device_train_batch_size: 4, num_train_epochs: 1.5, eval_strategy: 'epoch', logging_strategy: 'epoch', save_strategy: 'epoch'},
    maxSteps: 5, steps: '1@0.3333333333333333:4 2@0.6666666666666666:4 3@1:1 4@1.3333333333333333:4 5@1.6666666666666665:4',
    events: 'epoch_end@3 log@3 evaluate@3 save@3 epoch_end@5 log@5 evaluate@5 save@5' },
  { n: 6, a: 5, c: 1, args: {per_device_train_batch_size: 2, num_train_epochs: 2, logging_strategy: 'no', save_strategy: 'no'},
    maxSteps: 6, steps: '1@0.3333333333333333:2 2@0.6666666666666666:2 3@1:2 4@1.3333333333333333:2 5@1.6666666666666665:2 6@2:2',
    events: 'epoch_end@3 epoch_end@6' },
  { n: 6, a: 5, c: 1, args: {per_device_train_batch_size: 2, max_steps: 0},
    maxSteps: 0, steps: '1@0.3333333333333333:2',
    events: 'save@1 epoch_end@1' },
  { n: 6, a: 5, c: 1, args: {per_device_train_batch_size: 2, gradient_accumulation_steps: 2, num_train_epochs: 0.5},
    maxSteps: 1, steps: '1@0.6666666666666666:2+2',
    events: 'save@1 epoch_end@1' },
  { n: 11, a: 4, c: 5, args: {per_device_train_batch_size: 3, gradient_accumulation_steps: 2, num_train_epochs: 3, logging_steps: 3, eval_strategy: 'steps', save_steps: 4},
    maxSteps: 6, steps: '1@0.5:3+3 2@1:3+2 3@1.5:3+3 4@2:3+2 5@2.5:3+3 6@3:3+2',
    events: 'epoch_end@2 log@3 evaluate@3 save@4 epoch_end@4 log@6 evaluate@6 save@6 epoch_end@6' },
  { n: 5, a: 2, c: 1, args: {per_device_train_batch_size: 8, dataloader_drop_last: true, max_steps: 3},
    maxSteps: 3, steps: '',
    events: 'epoch_end@0' },
  // {"per_device_train_batch_size":8,"dataloader_drop_last":true,"num_train_epochs":1} -> ValueError: args.max_steps must be set to a positive value if dataloader does not have a length, was -1
  { n: 1, a: 1, c: 0, args: {per_device_train_batch_size: 4, gradient_accumulation_steps: 4, num_train_epochs: 2},
    maxSteps: 2, steps: '1@1:1 2@2:1',
    events: 'epoch_end@1 save@2 epoch_end@2' },
  { n: 10, a: 3, c: 1, args: {per_device_train_batch_size: 3, gradient_accumulation_steps: 2, num_train_epochs: 2, logging_steps: 1, logging_strategy: 'steps', eval_strategy: 'epoch', save_strategy: 'steps', save_steps: 2},
    maxSteps: 4, steps: '1@0.5:3+3 2@1:3+1 3@1.5:3+3 4@2:3+1',
    events: 'log@1 log@2 save@2 epoch_end@2 evaluate@2 log@3 log@4 save@4 epoch_end@4 evaluate@4' },
]

describe('buildStaticPlan matches transformers 4.57.6 Trainer', () => {
  it.each(HF_CASES.map((c) => [JSON.stringify({ n: c.n, ...c.args }), c] as const))('%s', (_name, c) => {
    const plan = buildStaticPlan({ numSamples: c.n, args: c.args, sampleOrder: affineOrder(c.n, c.a, c.c) })
    expect(plan.maxSteps).toBe(c.maxSteps)
    expect(describeSteps(plan)).toBe(c.steps)
    expect(describeEvents(plan, c.args)).toBe(c.events)
  })

  it('feeds each pass its own order, in order, micro-batch after micro-batch', () => {
    for (const c of HF_CASES) {
      const order = affineOrder(c.n, c.a, c.c)
      const plan = buildStaticPlan({ numSamples: c.n, args: c.args, sampleOrder: order })
      for (const pass of plan.passes) {
        const seen = pass.steps.flatMap((s) => s.microBatches.flatMap((m) => [...m]))
        expect(seen).toEqual([...order(pass.epoch)].slice(0, seen.length))
      }
    }
  })

  it('refuses an empty dataloader without max_steps, as HF does', () => {
    const build = () =>
      buildStaticPlan({
        numSamples: 5,
        args: { per_device_train_batch_size: 8, dataloader_drop_last: true, num_train_epochs: 1 },
        sampleOrder: affineOrder(5, 2, 1),
      })
    expect(build).toThrow(ScheduleError)
    expect(build).toThrow(/empty/)
  })
})

describe('buildStaticPlan details', () => {
  const order = affineOrder(10, 3, 1)

  it('reports the HF bookkeeping values', () => {
    const plan = buildStaticPlan({
      numSamples: 10,
      args: { per_device_train_batch_size: 3, gradient_accumulation_steps: 3, num_train_epochs: 2.5 },
      sampleOrder: order,
    })
    expect(plan).toMatchObject({
      maxSteps: 5, // ceil(2.5 × 2)
      numTrainEpochs: 3,
      microBatchesPerEpoch: 4,
      numUpdateStepsPerEpoch: 2,
      totalTrainBatchSize: 9,
      numTrainSamples: 25,
    })
    expect(plan.passes.map((p) => p.steps.length)).toEqual([2, 2, 1])
    expect(planSteps(plan).map((s) => s.endsPass)).toEqual([false, true, false, true, true])
  })

  it('with max_steps, re-iterates the dataloader and ignores num_train_epochs', () => {
    const plan = buildStaticPlan({
      numSamples: 10,
      args: { per_device_train_batch_size: 5, gradient_accumulation_steps: 1, num_train_epochs: 100, max_steps: 5 },
      sampleOrder: order,
    })
    expect(plan.numTrainEpochs).toBe(3)
    expect(plan.numTrainSamples).toBe(25)
    expect(planSteps(plan).map((s) => `${s.pass}:${s.epoch}`)).toEqual(['0:0.5', '0:1', '1:1.5', '1:2', '2:2.5'])
  })

  it('uses HF defaults (batch 8, GA 1, 3 epochs)', () => {
    const plan = buildStaticPlan({ numSamples: 20, args: {}, sampleOrder: affineOrder(20, 3, 1) })
    expect(plan.maxSteps).toBe(9)
    expect(describeSteps(plan).split(' ').slice(0, 3)).toEqual(['1@0.3333333333333333:8', '2@0.6666666666666666:8', '3@1:4'])
  })

  it('shards micro-batches per rank like accelerate (even_batches pads from the pass start)', () => {
    const identity = (n: number) => () => Int32Array.from({ length: n }, (_, i) => i)
    const batchesOf = (n: number, b: number, w: number, rank: number, dropLast = false) =>
      planSteps(
        buildStaticPlan({
          numSamples: n,
          worldSize: w,
          rank,
          args: { per_device_train_batch_size: b, num_train_epochs: 1, dataloader_drop_last: dropLast },
          sampleOrder: identity(n),
        }),
      ).map((s) => [...s.microBatches[0]!])
    // Recorded from accelerate 1.11.0 BatchSamplerShard.
    expect([0, 1, 2].map((r) => batchesOf(10, 3, 3, r))).toEqual([
      [[0, 1, 2], [9, 0, 1]],
      [[3, 4, 5], [2, 3, 4]],
      [[6, 7, 8], [5, 6, 7]],
    ])
    expect([0, 1].map((r) => batchesOf(10, 3, 2, r))).toEqual([
      [[0, 1, 2], [6, 7, 8]],
      [[3, 4, 5], [9, 0, 1]],
    ])
    expect([0, 1, 2].map((r) => batchesOf(10, 3, 3, r, true))).toEqual([[[0, 1, 2]], [[3, 4, 5]], [[6, 7, 8]]])
    expect([0, 1, 2, 3].map((r) => batchesOf(1, 2, 4, r))).toEqual([[[0, 0]], [[0, 0]], [[0, 0]], [[0, 0]]])
  })

  it('checks the sample order and the world', () => {
    const args = { per_device_train_batch_size: 2, num_train_epochs: 1 }
    expect(() => buildStaticPlan({ numSamples: 4, args, sampleOrder: () => Int32Array.of(0, 1, 2) })).toThrow(
      /3 entries, expected 4/,
    )
    expect(() => buildStaticPlan({ numSamples: 4, args, sampleOrder: () => Int32Array.of(0, 1, 2, 7) })).toThrow(
      /contains 7/,
    )
    expect(() => buildStaticPlan({ numSamples: 4, args, sampleOrder: affineOrder(4, 1, 0), worldSize: 2, rank: 2 })).toThrow(
      ScheduleError,
    )
    expect(() =>
      buildStaticPlan({ numSamples: 4, args: { per_device_train_batch_size: 0 }, sampleOrder: affineOrder(4, 1, 0) }),
    ).toThrow(/per_device_train_batch_size/)
  })

  it('plans an empty run for zero epochs', () => {
    const plan = buildStaticPlan({ numSamples: 4, args: { num_train_epochs: 0 }, sampleOrder: affineOrder(4, 1, 0) })
    expect(plan.maxSteps).toBe(0)
    expect(plan.passes).toEqual([])
  })
})

describe('stepEvents', () => {
  const at = (globalStep: number, maxSteps: number, endsPass = false, epoch = 0) => ({
    globalStep,
    maxSteps,
    endsPass,
    epoch,
  })

  it('resolves ratio intervals against max_steps (ceil), like TrainerState.compute_steps', () => {
    const flow = parseFlowArgs({ logging_steps: 0.1, eval_strategy: 'steps', eval_steps: 0.25, save_steps: 0.5 })
    expect(flowSteps(flow, 37)).toEqual({ logging: 4, eval: 10, save: 19 })
    expect(stepEvents(at(4, 37), flow)).toMatchObject({ log: true, evaluate: false, save: false })
    expect(stepEvents(at(20, 37), flow)).toMatchObject({ log: true, evaluate: true, save: false })
    expect(stepEvents(at(19, 37), flow)).toMatchObject({ log: false, evaluate: false, save: true })
  })

  it('defaults eval_steps to logging_steps and honours eval_delay', () => {
    const flow = parseFlowArgs({ logging_steps: 5, eval_strategy: 'steps', eval_delay: 10 })
    expect(flow.eval_steps).toBe(5)
    expect(stepEvents(at(5, 100), flow).evaluate).toBe(false)
    expect(stepEvents(at(10, 100), flow).evaluate).toBe(true)
  })

  it('saves at the final step with save_strategy steps, and stops there', () => {
    const flow = parseFlowArgs({ save_steps: 500 })
    expect(stepEvents(at(7, 7, true, 1), flow)).toMatchObject({ save: true, stop: true })
    expect(stepEvents(at(6, 7), flow)).toMatchObject({ save: false, stop: false, epochEnd: null })
    expect(stepEvents(at(7, 7), parseFlowArgs({ save_strategy: 'no' }))).toMatchObject({ save: false, stop: true })
  })

  it('logs the first step whatever the logging strategy', () => {
    expect(stepEvents(at(1, 9), parseFlowArgs({ logging_strategy: 'no', logging_first_step: true })).log).toBe(true)
    expect(stepEvents(at(2, 9), parseFlowArgs({ logging_strategy: 'no', logging_first_step: true })).log).toBe(false)
  })

  it('runs epoch-end events after the step and never logs the same step twice', () => {
    const flow = parseFlowArgs({ logging_strategy: 'epoch', logging_first_step: true, eval_strategy: 'epoch', save_strategy: 'epoch' })
    const ev = stepEvents(at(1, 3, true, 1), flow)
    expect(ev).toMatchObject({ log: true, evaluate: false, save: false })
    expect(ev.epochEnd).toEqual({ log: false, evaluate: true, save: true, saveIfBest: false })
    expect(stepEvents(at(2, 3, true, 2), flow).epochEnd?.log).toBe(true)
    // eval_delay compares with state.epoch at epoch end
    const delayed = parseFlowArgs({ eval_strategy: 'epoch', eval_delay: 1.5 })
    expect(stepEvents(at(2, 6, true, 1), delayed).epochEnd?.evaluate).toBe(false)
    expect(stepEvents(at(4, 6, true, 2), delayed).epochEnd?.evaluate).toBe(true)
  })

  it('marks save_strategy best as a conditional save after each evaluation', () => {
    const flow = parseFlowArgs({ save_strategy: 'best', eval_strategy: 'steps', eval_steps: 2 })
    expect(stepEvents(at(2, 9), flow)).toMatchObject({ evaluate: true, save: false, saveIfBest: true })
    expect(stepEvents(at(3, 9), flow)).toMatchObject({ evaluate: false, saveIfBest: false })
    expect(stepEvents(at(9, 9), flow)).toMatchObject({ save: false, stop: true })
  })

  it('rejects what TrainingArguments.__post_init__ rejects', () => {
    expect(() => parseFlowArgs({ logging_steps: 2.5 })).toThrow(/logging_steps/)
    expect(() => parseFlowArgs({ logging_steps: 0 })).toThrow(/logging_steps/)
    expect(() => parseFlowArgs({ eval_strategy: 'steps', logging_steps: 0, logging_strategy: 'no' })).toThrow(/eval_steps/)
    expect(() => parseFlowArgs({ save_steps: 10.5 })).toThrow(/save_steps/)
    expect(() => parseFlowArgs({ eval_strategy: 'sometimes' })).toThrow(ScheduleError)
    // Only the active strategy's interval is checked, as in HF.
    expect(parseFlowArgs({ save_strategy: 'no', save_steps: 10.5 }).save_steps).toBe(10.5)
  })

  it('ignores unrelated LLaMA-Factory keys', () => {
    expect(parseFlowArgs({ model_name_or_path: 'x', logging_steps: 10 }).logging_steps).toBe(10)
  })
})

// The recorder behind HF_CASES: a real Trainer over a tiny module that logs what it is fed.
const HARNESS = String.raw`import json, os, sys, tempfile, logging, warnings
warnings.filterwarnings("ignore")
import torch
from torch.utils.data import Dataset, Sampler, BatchSampler
from transformers import Trainer, TrainingArguments, TrainerCallback
from transformers.utils import logging as hf_logging
hf_logging.set_verbosity_error()
from accelerate.data_loader import BatchSamplerShard

class DS(Dataset):
    def __init__(self, n): self.n = n
    def __len__(self): return self.n
    def __getitem__(self, i): return {"idx": i}

class Order(Sampler):
    """order_e[i] = (a*i + c*e) % n, the same formula the TypeScript test uses."""
    def __init__(self, n, a, c): self.n, self.a, self.c, self.epoch = n, a, c, 0
    def set_epoch(self, e): self.epoch = e
    def __len__(self): return self.n
    def __iter__(self): return iter([(self.a * i + self.c * self.epoch) % self.n for i in range(self.n)])

class M(torch.nn.Module):
    def __init__(self):
        super().__init__(); self.w = torch.nn.Parameter(torch.zeros(1)); self.seen = []
    def forward(self, idx=None, **kw):
        if self.training: self.seen.append(idx.tolist())
        return {"loss": self.w.sum() + 1.0}

class Rec(TrainerCallback):
    def __init__(self, model): self.model, self.events, self.steps, self.last = model, [], [], 0
    def on_step_end(self, args, state, control, **kw):
        self.steps.append({"gs": state.global_step, "epoch": state.epoch, "micro": self.model.seen[self.last:]})
        self.last = len(self.model.seen)
    def on_epoch_end(self, args, state, control, **kw): self.events.append(["epoch_end", state.global_step])
    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs: self.events.append(["log", state.global_step])
    def on_evaluate(self, args, state, control, **kw): self.events.append(["evaluate", state.global_step])
    def on_save(self, args, state, control, **kw): self.events.append(["save", state.global_step])

def run_trainer(case):
    n, a, c = case["n"], case["a"], case["c"]
    class T(Trainer):
        def _get_train_sampler(self, train_dataset=None): return Order(n, a, c)
    model = M()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, report_to=[], use_cpu=True, disable_tqdm=True, save_only_model=True,
                                 dataloader_num_workers=0, remove_unused_columns=False, **case["args"])
        rec = Rec(model)
        t = T(model=model, args=args, train_dataset=DS(n), eval_dataset=DS(3),
              data_collator=lambda f: {"idx": torch.tensor([x["idx"] for x in f])}, callbacks=[rec])
        t.train()
        return {"maxSteps": t.state.max_steps, "steps": rec.steps, "events": rec.events}

def run_shard(case):
    n, b, w, drop = case["n"], case["b"], case["w"], case["drop_last"]
    out = []
    for r in range(w):
        s = BatchSamplerShard(BatchSampler(list(range(n)), b, drop), num_processes=w, process_index=r)
        out.append({"len": len(s), "batches": [list(x) for x in s]})
    return out

import contextlib
cases = json.load(sys.stdin)
res = []
with contextlib.redirect_stdout(sys.stderr):  # HF prints its logs
    for case in cases:
        try:
            res.append({"ok": True, "result": run_shard(case) if case["kind"] == "shard" else run_trainer(case)})
        except Exception as e:
            res.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
json.dump(res, sys.stdout)
`

const PYTHON = process.env['DATAFLEX_PYTHON'] || join(import.meta.dirname, '..', '.venv', 'bin', 'python')

function hasTransformers(): boolean {
  if (!existsSync(PYTHON)) return false
  try {
    const probe = "import importlib.util as u, sys; sys.exit(0 if u.find_spec('transformers') and u.find_spec('accelerate') else 1)"
    execFileSync(PYTHON, ['-c', probe], { stdio: 'ignore', timeout: 30_000 })
    return true
  } catch {
    return false
  }
}

describe('live parity with the installed transformers', () => {
  it.skipIf(!hasTransformers())(
    'reproduces every recorded case and accelerate sharding',
    () => {
      const shardCases = [
        [10, 3, 3, false],
        [12, 3, 2, false],
        [7, 2, 3, false],
        [20, 4, 3, true],
        [4, 3, 3, false],
      ] as const
      const input = [
        ...HF_CASES.map((c) => ({ kind: 'trainer', n: c.n, a: c.a, c: c.c, args: c.args })),
        ...shardCases.map(([n, b, w, dropLast]) => ({ kind: 'shard', n, b, w, drop_last: dropLast })),
      ]
      const stdout = execFileSync(PYTHON, ['-c', HARNESS], {
        input: JSON.stringify(input),
        stdio: ['pipe', 'pipe', 'ignore'],
        timeout: 240_000,
        maxBuffer: 64 * 1024 * 1024,
      })
      type Recorded = { ok: true; result: unknown } | { ok: false; error: string }
      const results = JSON.parse(stdout.toString()) as Recorded[]
      HF_CASES.forEach((c, k) => {
        const r = results[k]!
        if (!r.ok) throw new Error(`HF failed on case ${k}: ${r.error}`)
        const hf = r.result as { maxSteps: number; steps: { gs: number; epoch: number; micro: number[][] }[]; events: [string, number][] }
        const plan = buildStaticPlan({ numSamples: c.n, args: c.args, sampleOrder: affineOrder(c.n, c.a, c.c) })
        expect(plan.maxSteps).toBe(hf.maxSteps)
        expect(planSteps(plan).map((s) => ({ gs: s.globalStep, epoch: s.epoch, micro: s.microBatches.map((m) => [...m]) }))).toEqual(
          hf.steps,
        )
        expect(describeEvents(plan, c.args)).toBe(hf.events.map(([kind, gs]) => `${kind}@${gs}`).join(' '))
      })
      shardCases.forEach(([n, b, w, dropLast], k) => {
        const r = results[HF_CASES.length + k]!
        if (!r.ok) throw new Error(`accelerate failed on shard case ${k}: ${r.error}`)
        const ranks = r.result as { len: number; batches: number[][] }[]
        ranks.forEach((hfRank, rank) => {
          const plan = buildStaticPlan({
            numSamples: n,
            worldSize: w,
            rank,
            args: { per_device_train_batch_size: b, num_train_epochs: 1, dataloader_drop_last: dropLast },
            sampleOrder: () => Int32Array.from({ length: n }, (_, i) => i),
          })
          expect(plan.microBatchesPerEpoch).toBe(hfRank.len)
          expect(planSteps(plan).map((s) => [...s.microBatches[0]!])).toEqual(hfRank.batches)
        })
      })
    },
    300_000,
  )
})
