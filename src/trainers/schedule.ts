/**
 * The static schedule: which samples each optimizer step of a plain LLaMA-Factory / Hugging Face run trains
 * on, and when it logs, evaluates and saves. The executor replays this plan step by step, so it must match
 * transformers 4.57.6 exactly. Line references are to that version's `trainer.py`, `trainer_callback.py`
 * and `training_args.py`, and to accelerate 1.11.0's `data_loader.py`.
 */
import { z } from 'zod'
import { issueAt } from '../config/issues.ts'

export class ScheduleError extends Error {
  override readonly name = 'ScheduleError'
  /** 'config_error': the arguments are unusable (the CLI exits 2); 'bad_sample_order': a caller bug. */
  readonly code: 'config_error' | 'bad_sample_order'
  readonly key: string | undefined

  constructor(code: ScheduleError['code'], message: string, options: { key?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.key = options.key
  }
}

/** The TrainingArguments that shape the step plan, with Hugging Face's defaults. Unknown keys are dropped,
 * so a LoadedConfig's `lf` record parses directly. */
export const PlanArgsSchema = z.object({
  per_device_train_batch_size: z.int().min(1).default(8),
  gradient_accumulation_steps: z.int().min(1).default(1),
  num_train_epochs: z.number().min(0).default(3),
  /** > 0 overrides epochs; < 0 means unset. 0 is *not* unset in HF: it trains one step (see buildStaticPlan). */
  max_steps: z.int().default(-1),
  dataloader_drop_last: z.boolean().default(false),
})
export type PlanArgs = z.output<typeof PlanArgsSchema>
export type PlanArgsInput = z.input<typeof PlanArgsSchema>

/** Sample indices of one pass, in the order the sampler yields them (a permutation of 0..N-1). */
export type SampleOrder = (epoch: number) => Int32Array

export interface StaticPlanInput {
  /** Training samples after LLaMA-Factory preprocessing (len(train_dataset)). */
  numSamples: number
  args: PlanArgsInput
  sampleOrder: SampleOrder
  /** Data-parallel processes; default 1. */
  worldSize?: number
  /** Which process's micro-batches to plan (each rank trains its own shard); default 0. */
  rank?: number
}

export interface PlanStep {
  /** state.global_step after this step, 1-based. */
  globalStep: number
  /** The pass over the dataloader (HF's integer `epoch`) this step belongs to. */
  pass: number
  /** state.epoch after this step: pass + micro-batches consumed in the pass / micro-batches per pass. */
  epoch: number
  /** This rank's micro-batches (views into the pass's sample order; the last may be short). */
  microBatches: Int32Array[]
  /** True for the last step of a pass: on_epoch_end (and its log / evaluate / save) follows it. */
  endsPass: boolean
  /** state.max_steps, for the step events. */
  maxSteps: number
}

export interface PlanPass {
  epoch: number
  steps: PlanStep[]
}

export interface StaticPlan {
  /** state.max_steps: what the LR scheduler is built for, and the number of planned steps. */
  maxSteps: number
  /** How many passes HF's epoch loop allows (the last may be cut short by maxSteps). */
  numTrainEpochs: number
  /** len(train_dataloader) on this rank: micro-batches per full pass. */
  microBatchesPerEpoch: number
  numUpdateStepsPerEpoch: number
  /** per-device batch × GA × world size. */
  totalTrainBatchSize: number
  /** HF's `num_train_samples` (used for its throughput metrics). */
  numTrainSamples: number
  passes: PlanPass[]
}

/** torch BatchSampler over one pass: consecutive chunks of `b`; the short tail is dropped with drop_last. */
function batchPass(order: Int32Array, b: number, dropLast: boolean): Int32Array[] {
  const batches: Int32Array[] = []
  for (let start = 0; start < order.length; start += b) {
    const batch = order.subarray(start, Math.min(start + b, order.length))
    if (batch.length < b && dropLast) break
    batches.push(batch)
  }
  return batches
}

/** len(BatchSamplerShard) (accelerate data_loader.py:175-191, split_batches=False, even_batches=True). */
function shardLength(numBatches: number, worldSize: number, dropLast: boolean): number {
  if (numBatches % worldSize === 0) return numBatches / worldSize
  const length = Math.floor(numBatches / worldSize)
  return dropLast ? length : length + 1
}

/**
 * One rank's batches: accelerate's BatchSamplerShard._iter_with_no_split (data_loader.py:218-263) with
 * even_batches=True, the Trainer's default. Rank r takes batches r, r+W, …; a round is yielded only when
 * its last batch is full; without drop_last the tail is padded with samples from the pass's first W
 * batches so every rank gets the same number of full batches.
 */
function shardPass(batches: Int32Array[], b: number, worldSize: number, rank: number, dropLast: boolean): Int32Array[] {
  const out: Int32Array[] = []
  let initial: number[] = []
  let toYield: Int32Array | undefined
  for (let idx = 0; idx < batches.length; idx++) {
    const batch = batches[idx]!
    if (!dropLast && idx < worldSize) initial.push(...batch)
    if (idx % worldSize === rank) toYield = batch
    if (idx % worldSize === worldSize - 1 && batch.length === b) {
      out.push(toYield!)
      toYield = undefined
    }
  }
  if (dropLast || initial.length === 0) return out
  if (toYield !== undefined && toYield.length === b) out.push(toYield)
  while (initial.length < worldSize * b) initial = initial.concat(initial)
  let idx = batches.length - 1
  let tail: number[] = [...batches[idx]!]
  if (tail.length === b) {
    tail = []
    idx += 1
  }
  let cycle = 0
  while (idx % worldSize !== 0 || tail.length > 0) {
    const end = cycle + b - tail.length
    tail = tail.concat(initial.slice(cycle, end))
    if (idx % worldSize === rank) out.push(Int32Array.from(tail))
    cycle = end
    tail = []
    idx += 1
  }
  return out
}

function checkOrder(order: Int32Array, n: number, epoch: number): void {
  if (order.length !== n) {
    throw new ScheduleError('bad_sample_order', `sample order of epoch ${epoch} has ${order.length} entries, expected ${n}`)
  }
  for (const i of order) {
    if (i < 0 || i >= n) throw new ScheduleError('bad_sample_order', `sample order of epoch ${epoch} contains ${i}, outside 0..${n - 1}`)
  }
}

function nonNegativeInt(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 0) throw new ScheduleError('config_error', `${name} must be an integer >= 0, got ${value}`)
  return value
}

/**
 * The plan of a plain run, reproducing Trainer._inner_training_loop (trainer.py:2353-2790):
 * - micro-batches per pass L = len(dataloader): ceil(N/b), or floor with dataloader_drop_last; sharded per
 *   rank as accelerate does when world size > 1 (no sharding at all for one process, data_loader.py:1203).
 * - set_initial_training_values (trainer.py:5661-5717): num_update_steps_per_epoch = max(L//GA + (L%GA > 0), 1);
 *   max_steps < 0 → max_steps = ceil(num_train_epochs · that), passes = ceil(num_train_epochs);
 *   max_steps > 0 → passes = ceil(max_steps / num_update_steps_per_epoch) (the loader is re-iterated);
 *   max_steps == 0 → stays 0, passes = ceil(num_train_epochs), and the first step already meets
 *   global_step ≥ max_steps, so HF trains exactly one step. L == 0 (`if len_dataloader:` is falsy) raises
 *   unless max_steps > 0, in which case the first pass yields no step and training stops (trainer.py:2785-2787).
 * - each pass (trainer.py:2587-2617): remainder = L % GA or GA; total_updates = L//GA + (remainder < GA);
 *   every update takes GA micro-batches except the last of the pass, which takes `remainder` — a short
 *   gradient-accumulation group at the end of every pass, never carried into the next.
 * - after each step (trainer.py:2753-2754): state.epoch = pass + (micro-batches so far in the pass) / L;
 *   DefaultFlowCallback stops training once global_step ≥ max_steps (trainer_callback.py:603), which
 *   truncates the last pass; on_epoch_end still runs after the truncated pass (trainer.py:2789).
 */
export function buildStaticPlan(input: StaticPlanInput): StaticPlan {
  const parsedArgs = PlanArgsSchema.safeParse(input.args)
  if (!parsedArgs.success) {
    const { issue, key } = issueAt(parsedArgs.error, input.args)
    throw new ScheduleError('config_error', `bad value for '${key}': ${issue.message}`, { key, cause: parsedArgs.error })
  }
  const args = parsedArgs.data
  const n = nonNegativeInt(input.numSamples, 'numSamples')
  const worldSize = input.worldSize ?? 1
  const rank = input.rank ?? 0
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new ScheduleError('config_error', `world size must be >= 1, got ${worldSize}`)
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
    throw new ScheduleError('config_error', `rank must be in 0..${worldSize - 1}, got ${rank}`)
  }
  const b = args.per_device_train_batch_size
  const ga = args.gradient_accumulation_steps
  const dropLast = args.dataloader_drop_last

  const globalBatches = dropLast ? Math.floor(n / b) : Math.ceil(n / b)
  const microPerEpoch = worldSize === 1 ? globalBatches : shardLength(globalBatches, worldSize, dropLast)
  const updatesPerEpoch = Math.max(Math.floor(microPerEpoch / ga) + (microPerEpoch % ga > 0 ? 1 : 0), 1)
  const totalTrainBatchSize = b * ga * worldSize

  let maxSteps = args.max_steps
  let numTrainEpochs: number
  let numTrainSamples: number
  if (microPerEpoch === 0) {
    if (args.max_steps <= 0) {
      throw new ScheduleError(
        'config_error',
        `the training dataloader is empty (${n} samples, batch ${b}${dropLast ? ', drop_last' : ''}); Hugging Face requires max_steps > 0 then`,
        { key: 'per_device_train_batch_size' },
      )
    }
    numTrainEpochs = Number.POSITIVE_INFINITY // sys.maxsize in HF; the first (empty) pass stops training
    numTrainSamples = args.max_steps * totalTrainBatchSize
  } else {
    if (maxSteps < 0) maxSteps = Math.ceil(args.num_train_epochs * updatesPerEpoch)
    if (args.max_steps > 0) {
      numTrainEpochs = Math.floor(maxSteps / updatesPerEpoch) + (maxSteps % updatesPerEpoch > 0 ? 1 : 0)
      numTrainSamples = maxSteps * totalTrainBatchSize
    } else {
      numTrainEpochs = Math.ceil(args.num_train_epochs)
      numTrainSamples = n * args.num_train_epochs
    }
  }

  const passes: PlanPass[] = []
  let globalStep = 0
  let stop = false
  for (let epoch = 0; epoch < numTrainEpochs && !stop; epoch++) {
    const steps: PlanStep[] = []
    passes.push({ epoch, steps })
    if (microPerEpoch === 0) break // HF: "There seems not to be a single sample in your epoch_iterator"
    const order = input.sampleOrder(epoch)
    checkOrder(order, n, epoch)
    const batches = batchPass(order, b, dropLast)
    const micro = worldSize === 1 ? batches : shardPass(batches, b, worldSize, rank, dropLast)
    if (micro.length !== microPerEpoch) {
      throw new ScheduleError('bad_sample_order', `pass ${epoch} yields ${micro.length} micro-batches, expected ${microPerEpoch}`)
    }
    const remainder = microPerEpoch % ga === 0 ? ga : microPerEpoch % ga
    const totalUpdates = Math.floor(microPerEpoch / ga) + (remainder < ga ? 1 : 0)
    let consumed = 0
    for (let update = 0; update < totalUpdates; update++) {
      const count = update === totalUpdates - 1 ? remainder : ga
      const microBatches = micro.slice(consumed, consumed + count)
      consumed += microBatches.length
      globalStep += 1
      steps.push({
        globalStep,
        pass: epoch,
        epoch: epoch + consumed / microPerEpoch,
        microBatches,
        endsPass: false,
        maxSteps,
      })
      if (globalStep >= maxSteps) {
        stop = true
        break
      }
    }
    const last = steps[steps.length - 1]
    if (last !== undefined) last.endsPass = true
  }

  return {
    maxSteps,
    numTrainEpochs,
    microBatchesPerEpoch: microPerEpoch,
    numUpdateStepsPerEpoch: updatesPerEpoch,
    totalTrainBatchSize,
    numTrainSamples,
    passes,
  }
}

/** Every step of a plan, in order. */
export function planSteps(plan: StaticPlan): PlanStep[] {
  return plan.passes.flatMap((p) => p.steps)
}

const IntervalStrategySchema = z.enum(['no', 'steps', 'epoch'])
const SaveStrategySchema = z.enum(['no', 'steps', 'epoch', 'best'])

/**
 * The TrainingArguments behind DefaultFlowCallback, with HF defaults and TrainingArguments.__post_init__'s
 * normalisation (training_args.py:1658-1684): eval_steps falls back to logging_steps; a steps interval
 * above 1 must be an integer; values below 1 are ratios of max_steps, resolved per plan by flowSteps.
 */
export const FlowArgsSchema = z
  .object({
    logging_strategy: IntervalStrategySchema.default('steps'),
    logging_steps: z.number().default(500),
    logging_first_step: z.boolean().default(false),
    eval_strategy: IntervalStrategySchema.default('no'),
    eval_steps: z.number().nullable().default(null),
    eval_delay: z.number().default(0),
    save_strategy: SaveStrategySchema.default('steps'),
    save_steps: z.number().default(500),
  })
  .transform((a, ctx) => {
    let evalSteps = a.eval_steps
    if (a.eval_strategy === 'steps' && (evalSteps === null || evalSteps === 0)) {
      if (a.logging_steps > 0) evalSteps = a.logging_steps
      else ctx.addIssue({ code: 'custom', path: ['eval_steps'], message: 'eval_strategy steps needs a non-zero eval_steps or logging_steps' })
    }
    if (a.logging_strategy === 'steps' && a.logging_steps === 0) {
      ctx.addIssue({ code: 'custom', path: ['logging_steps'], message: 'logging_strategy steps needs a non-zero logging_steps' })
    }
    const intervals: [string, boolean, number | null][] = [
      ['logging_steps', a.logging_strategy === 'steps', a.logging_steps],
      ['eval_steps', a.eval_strategy === 'steps', evalSteps],
      ['save_steps', a.save_strategy === 'steps', a.save_steps],
    ]
    for (const [key, active, value] of intervals) {
      if (active && value !== null && value > 1 && !Number.isInteger(value)) {
        ctx.addIssue({ code: 'custom', path: [key], message: `must be an integer if bigger than 1, got ${value}` })
      }
    }
    return { ...a, eval_steps: evalSteps }
  })
export type FlowArgs = z.output<typeof FlowArgsSchema>
export type FlowArgsInput = z.input<typeof FlowArgsSchema>

/** Parses the flow arguments out of a LoadedConfig's `lf` record (or any subset of TrainingArguments). */
export function parseFlowArgs(input: FlowArgsInput | Record<string, unknown>): FlowArgs {
  const parsed = FlowArgsSchema.safeParse(input)
  if (!parsed.success) {
    const { issue, key } = issueAt(parsed.error, input)
    throw new ScheduleError('config_error', `bad value for '${key}': ${issue.message}`, { key, cause: parsed.error })
  }
  return parsed.data
}

export interface FlowSteps {
  logging: number
  eval: number | null
  save: number
}

/** TrainerState.compute_steps (trainer_callback.py:157-168): an interval below 1 is ceil(max_steps × it). */
export function flowSteps(flow: FlowArgs, maxSteps: number): FlowSteps {
  const abs = (v: number): number => (v < 1 ? Math.ceil(maxSteps * v) : v)
  return {
    logging: abs(flow.logging_steps),
    eval: flow.eval_steps === null ? null : abs(flow.eval_steps),
    save: abs(flow.save_steps),
  }
}

export interface FlowEvents {
  log: boolean
  evaluate: boolean
  save: boolean
  /** save_strategy 'best': save after this evaluation only if it is a new best metric (trainer.py:3224-3225). */
  saveIfBest: boolean
}

export interface StepEvents extends FlowEvents {
  /** DefaultFlowCallback ends training after this step (global_step ≥ max_steps). */
  stop: boolean
  /** What happens after on_epoch_end when this step ends a pass, else null. Runs after the step's own events. */
  epochEnd: FlowEvents | null
}

/** The position a step's events depend on; a PlanStep has all of it. */
export type StepPosition = Pick<PlanStep, 'globalStep' | 'epoch' | 'endsPass' | 'maxSteps'>

const NONE: FlowEvents = { log: false, evaluate: false, save: false, saveIfBest: false }

/**
 * What HF does right after a step: DefaultFlowCallback.on_step_end (trainer_callback.py:579-609), consumed by
 * _maybe_log_save_evaluate in the order log → evaluate → save (trainer.py:3190-3229), then, at the end of a
 * pass, on_epoch_end (trainer_callback.py:611-624) and a second _maybe_log_save_evaluate (trainer.py:2789-2792).
 * - log: global_step == 1 with logging_first_step (whatever the strategy), or strategy steps and
 *   global_step % logging_steps == 0; strategy epoch logs at pass end unless this step already logged
 *   (HF logs only if global_step > the last logged step).
 * - evaluate: strategy steps with global_step % eval_steps == 0 and eval_delay ≤ global_step; strategy
 *   epoch at pass end with eval_delay ≤ state.epoch.
 * - save: strategy steps with save_steps > 0 and global_step % save_steps == 0, and always at the final
 *   step; strategy epoch at every pass end (a truncated last pass included); strategy best after an
 *   evaluation that improves the metric. Step-time flags are consumed (on_log / on_evaluate / on_save),
 *   so nothing happens twice.
 */
export function stepEvents(step: StepPosition, flow: FlowArgs): StepEvents {
  const intervals = flowSteps(flow, step.maxSteps)
  const s = step.globalStep
  const log = (s === 1 && flow.logging_first_step) || (flow.logging_strategy === 'steps' && s % intervals.logging === 0)
  const evaluate =
    flow.eval_strategy === 'steps' && intervals.eval !== null && s % intervals.eval === 0 && flow.eval_delay <= s
  const stop = s >= step.maxSteps
  const save =
    flow.save_strategy === 'steps' && ((intervals.save > 0 && s % intervals.save === 0) || stop)
  const saveIfBest = flow.save_strategy === 'best' && evaluate

  let epochEnd: FlowEvents | null = null
  if (step.endsPass) {
    const epochEvaluate = flow.eval_strategy === 'epoch' && flow.eval_delay <= step.epoch
    epochEnd = {
      ...NONE,
      log: flow.logging_strategy === 'epoch' && !log,
      evaluate: epochEvaluate,
      save: flow.save_strategy === 'epoch',
      saveIfBest: flow.save_strategy === 'best' && epochEvaluate,
    }
  }
  return { log, evaluate, save, saveIfBest, stop, epochEnd }
}
