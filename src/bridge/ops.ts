/**
 * The executor op catalog: every op TypeScript and the sidecar's executor exchange, declared once — its args
 * (defaults are written here and nowhere else), its result, its default timeout and which side calls it.
 *
 * - TypeScript calls an op through `OpClient.call`, which parses the args with the catalog's schema (applying
 *   the defaults) before sending and parses the result on the way back.
 * - `npm run ops:schema` exports the catalog as JSON Schema to `python_bridge/dataflex_bridge/ops.schema.json`
 *   (ops-schema.ts; a test keeps it current). The sidecar validates every request of a catalog op against it
 *   before the handler runs and answers `bad_args` naming the op and the arg; its handlers read the args as
 *   sent, with no defaults of their own (docs/protocol.md).
 *
 * Names on the wire are snake_case; TypeScript callers that use camelCase map them word for word.
 */
import { z } from 'zod'
import { OpArgsError, OpResultError } from './errors.ts'
import { NdArray, type DType } from './frames.ts'
import type { Bridge } from './index.ts'

// ------------------------------------------------------------------------------------------- typed arrays

interface ArrayOfDType {
  float32: Float32Array
  float64: Float64Array
  int32: Int32Array
  int64: BigInt64Array
  uint8: Uint8Array
}
const ARRAY_CLASS = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  int64: BigInt64Array,
  uint8: Uint8Array,
} as const

/** What the wire decodes an array of `dtype` with `ndim` dimensions to: the bare typed array when 1-D. */
export type NdArrayOf<D extends DType, N extends number> = N extends 1 ? ArrayOfDType[D] : NdArray<ArrayOfDType[D]>

export interface NdArraySpec {
  readonly dtype: DType
  readonly ndim: number
}

/** The JSON Schema keyword that marks a typed array (`{"x-ndarray": {"dtype": "int32", "ndim": 1}}`). */
export const NDARRAY_KEYWORD = 'x-ndarray'

/** Which zod schemas are typed arrays, for the JSON Schema export. */
const ndarrays = z.registry<NdArraySpec>()

/** A typed array of `dtype` with `ndim` dimensions (1-D: the bare typed array; else an NdArray). */
export function ndarray<D extends DType, N extends number>(dtype: D, ndim: N): z.ZodCustom<NdArrayOf<D, N>, NdArrayOf<D, N>> {
  const cls = ARRAY_CLASS[dtype]
  const check = (v: unknown): boolean =>
    ndim === 1 ? v instanceof cls : v instanceof NdArray && v.data instanceof cls && v.shape.length === ndim
  // register, not meta: meta clones, and the export must recognise this very schema.
  return z.custom<NdArrayOf<D, N>>(check, `expected a ${ndim}-D ${dtype} array`).register(ndarrays, { dtype, ndim })
}

/** The JSON Schema of `schema`, typed arrays as NDARRAY_KEYWORD markers; any other unrepresentable type throws. */
export function toJsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  return z.toJSONSchema(schema, {
    io,
    unrepresentable: (ctx) => {
      const spec = ndarrays.get(ctx.zodSchema)
      return spec ? { [NDARRAY_KEYWORD]: { dtype: spec.dtype, ndim: spec.ndim } } : 'throw'
    },
  }) as Record<string, unknown>
}

// ----------------------------------------------------------------------------------------------- the ops

/** Who sends the request: TypeScript to the sidecar, or the sidecar back to TypeScript (`ctx.request`). */
export type Direction = 'to_sidecar' | 'to_typescript'

export interface OpSpec<A extends z.ZodObject = z.ZodObject, R extends z.ZodType = z.ZodType, D extends Direction = Direction> {
  readonly direction: D
  readonly summary: string
  readonly args: A
  readonly result: R
  /** Default reply deadline. */
  readonly timeoutMs: number
  /** Valid args, sent by the contract test (test/ops-contract.test.ts) in a valid order. */
  readonly example: z.input<A>
}

function op<A extends z.ZodObject, R extends z.ZodType, D extends Direction>(spec: OpSpec<A, R, D>): OpSpec<A, R, D> {
  return spec
}

const MINUTE = 60_000
/** Ops whose duration grows with the data (training, scoring a pool): effectively no deadline. */
const LONG = 24 * 60 * MINUTE

const i32 = ndarray('int32', 1)
const i64 = ndarray('int64', 1)
const u8 = ndarray('uint8', 1)
const f32 = ndarray('float32', 1)
const f64 = ndarray('float64', 1)
const f32Matrix = ndarray('float32', 2)

/** `train`, `eval`, or a named eval set of a mix run, `eval:<dataset>` (load's `eval_splits`). */
const split = (fallback: 'train' | 'eval') =>
  z
    .union([z.enum(['train', 'eval']), z.templateLiteral(['eval:', z.string().min(1)])])
    .default(fallback)
const indices = i32.describe('row indices into the split')
const uint = z.int().min(0)
const pooling = z.enum(['mask_mean', 'position_weighted', 'last_token', 'label_mean'])
const seconds = z.number().describe('executor time of the op')
const localDir = z.string().min(1)

// NICE's generated token ids: one ragged list per prompt and per (prompt, sample), flattened with their lengths.
const tokenRows = {
  prompt_ids: i32,
  prompt_lengths: i32,
  response_ids: i32.describe('responses of prompt j at rows j·samples … j·samples + samples − 1'),
  response_lengths: i32,
}
const exampleRows = {
  prompt_ids: Int32Array.of(11, 12, 13),
  prompt_lengths: Int32Array.of(3),
  response_ids: Int32Array.of(21, 22, 23, 24),
  response_lengths: Int32Array.of(2, 2),
}

const projection = {
  proj_dim: z.int().min(0).default(4096).describe('projection dimension d; 0 returns the raw gradients [n × P]'),
  seed: z.int().default(0).describe('projector seed: the same seed projects alike on any device'),
  normalize: z.boolean().default(false).describe('L2-normalise each row'),
  projector: z.enum(['dense', 'sparse']).default('sparse'),
  chunk_size: z
    .int()
    .min(1)
    .default(16)
    .describe("rows preconditioned and projected together (less/cluster_less: save_interval); passes hold at most the training micro-batch"),
}

export const OPS = {
  load: op({
    direction: 'to_sidecar',
    summary: "build the run from LLaMA-Factory args with LLaMA-Factory's own loaders; one run per sidecar",
    args: z.strictObject({
      config: z.record(z.string(), z.unknown()).describe('LLaMA-Factory arguments, as in its YAML'),
      domains: z
        .strictObject({
          eval_sets: z
            .array(z.string().min(1))
            .default([])
            .describe('dataset_info names preprocessed as eval sets, each addressable as the split `eval:<name>`'),
        })
        .optional()
        .describe(
          'a mix run: each dataset of `dataset` is a domain, preprocessed on its own and concatenated in list order (domain 0 first)',
        ),
      freeze_gate: z
        .boolean()
        .default(false)
        .describe('freeze the router parameters of a mixture-of-experts model (modules named `gate` or `shared_expert_gate`)'),
      raw_rows: z
        .strictObject({
          score_field: z
            .string()
            .min(1)
            .nullable()
            .default(null)
            .describe("a column of the raw rows read as one number per raw row (each dataset must have it); null: the mapping only"),
        })
        .optional()
        .describe(
          'trace every training row to its raw row (the rows of `dataset` as loaded, after max_samples, concatenated in list order); refuses num_samples, packing, streaming, val_size, tokenized_path and mix_strategy other than concat',
        ),
      dataset_rows: z
        .boolean()
        .default(false)
        .describe('count the training rows of each dataset of `dataset` (a select run\'s report counts its selections per dataset)'),
    }),
    result: z.strictObject({
      load_seconds: z.number(),
      stage: z.string(),
      num_train: uint,
      num_eval: uint,
      world_size: z.int().min(1),
      per_device_train_batch_size: z.int(),
      gradient_accumulation_steps: z.int(),
      num_train_epochs: z.number(),
      max_steps: z.int(),
      dataloader_drop_last: z.boolean(),
      seed: z.int(),
      output_dir: z.string(),
      logging_strategy: z.string(),
      logging_steps: z.number(),
      logging_first_step: z.boolean(),
      eval_strategy: z.string(),
      eval_steps: z.number().nullable(),
      eval_delay: z.number(),
      save_strategy: z.string(),
      save_steps: z.number(),
      do_eval: z.boolean(),
      disable_shuffling: z.boolean(),
      trainable_params: uint,
      domains: z
        .strictObject({
          names: z.array(z.string()),
          rows: z.array(uint).describe('training rows of each domain after preprocessing'),
          raw_rows: z.array(uint).describe('rows of each domain before preprocessing (rows - raw_rows were dropped)'),
          domain_of_row: i32.describe('the domain of every training row'),
        })
        .nullable()
        .describe('null unless `domains` was asked for'),
      raw_rows: z
        .strictObject({
          names: z.array(z.string()),
          rows: z.array(uint).describe('raw rows of each dataset (after max_samples)'),
          index_of_row: i32.describe('the raw row of every training row; raw rows preprocessing dropped are absent'),
          scores: f64.nullable().describe('the score_field column, one value per raw row; null without a score_field'),
        })
        .nullable()
        .describe('null unless `raw_rows` was asked for'),
      dataset_rows: z
        .strictObject({
          names: z.array(z.string()).describe('the datasets of `dataset`, in list order'),
          rows: z
            .array(uint)
            .nullable()
            .describe("each dataset's training rows, consecutive ranges in list order (dataset 0 first); null when not known"),
          unavailable: z.string().nullable().describe('why rows is null (val_size, streaming, packing, … or rows dropped by preprocessing)'),
        })
        .nullable()
        .describe('null unless `dataset_rows` was asked for'),
      eval_splits: z.array(z.strictObject({ name: z.string(), rows: uint })).describe('the named eval sets (`eval:<name>`)'),
      frozen_params: uint.describe('parameters frozen by freeze_gate'),
      resume_from_checkpoint: z.string().nullable().describe('the checkpoint `begin` restores (resume_from_checkpoint, as LLaMA-Factory resolved it)'),
    }),
    timeoutMs: 30 * MINUTE,
    // The contract test loads its own tiny run (a fresh output folder) instead of this illustrative config.
    example: {
      config: {
        model_name_or_path: 'models/tiny-qwen2',
        stage: 'sft',
        do_train: true,
        finetuning_type: 'lora',
        dataset_dir: 'data/demo',
        dataset: 'arith_clean',
        template: 'qwen',
        output_dir: 'runs/example',
      },
    },
  }),
  sample_order: op({
    direction: 'to_sidecar',
    summary: "the order in which LLaMA-Factory's own train sampler visits the samples in each epoch",
    args: z.strictObject({ epochs: i32 }),
    result: z.strictObject({ order: i32.describe('the epochs’ orders, concatenated'), n: uint }),
    timeoutMs: 10 * MINUTE,
    example: { epochs: Int32Array.of(0) },
  }),
  begin: op({
    direction: 'to_sidecar',
    summary: 'optimizer and scheduler for total_steps, a fresh TrainerState (or the checkpoint’s, resuming), on_train_begin',
    args: z.strictObject({ total_steps: z.int().min(1) }),
    result: z.strictObject({ total_steps: z.int(), global_step: uint.describe('steps already trained (> 0: resumed from a checkpoint)') }),
    timeoutMs: 10 * MINUTE,
    example: { total_steps: 1 },
  }),
  begin_pass: op({
    direction: 'to_sidecar',
    summary: 'one DataLoader over the planned micro-batches (one global-RNG draw, like the Trainer’s epoch)',
    args: z.strictObject({
      epoch: uint,
      indices: i32.describe('flat sample indices of every micro-batch, in order'),
      micro_sizes: i32.describe('size of each micro-batch'),
      step_sizes: i32.describe('micro-batches of each optimizer step'),
      micro_in_epoch: z.int().min(1).describe("micro-batches of the whole epoch (the Trainer's fractional-epoch denominator)"),
      micro_done: uint.default(0).describe('micro-batches of this epoch trained before the pass'),
      weights: f32.optional().describe('loss weight of each planned sample'),
      reduction: z
        .enum(['token_mean', 'sample_mean'])
        .default('token_mean')
        .describe("a step's loss: mean over its label tokens (Hugging Face's), or over its samples' mean token losses"),
      reference_model: localDir
        .optional()
        .describe(
          "a local model or adapter directory, frozen: every trained micro-batch's excess loss over it is returned (DoReMi)",
        ),
      weigh: z
        .strictObject({
          from_step: uint.describe('micro-batches of steps after this many trained steps are weighed (the warm-up before)'),
          embeddings: z
            .strictObject({ layer: z.int(), pooling: pooling, normalize: z.boolean() })
            .optional()
            .describe("pooled hidden states of the training forward's rows, sent with their losses"),
        })
        .optional()
        .describe("ask TypeScript (op `weigh`) for every weighed micro-batch's loss weights, between its forward and backward; excludes `weights`"),
      rng_state: z.string().optional().describe('a checkpoint whose RNG states continue once the pass’s iterator is made (a pass resumed midway)'),
    }),
    result: z.strictObject({ steps: uint }),
    timeoutMs: 10 * MINUTE,
    example: {
      epoch: 0,
      indices: Int32Array.of(0, 1, 2, 3),
      micro_sizes: Int32Array.of(2, 2),
      step_sizes: Int32Array.of(2),
      micro_in_epoch: 2,
      weights: Float32Array.of(1, 1, 0.5, 2),
    },
  }),
  train_steps: op({
    direction: 'to_sidecar',
    summary: 'the next `count` optimizer steps of the pass, with the log/evaluate/save decision of each',
    args: z.strictObject({ count: uint, log: u8, evaluate: u8, save: u8 }),
    result: z.strictObject({
      done: uint,
      global_step: uint,
      epoch: z.number(),
      loss: f64,
      grad_norm: f64,
      lr: f64,
      tokens: i64.describe('label tokens of each step (num_items_in_batch)'),
      eval_loss: f64.describe('NaN where the step did not evaluate'),
      seconds: f64.describe('executor time of each step (forward/backward/optimizer, plus its log/eval/save)'),
      op_seconds: z.number().describe('executor time of the whole op, for the bridge-overhead measurement'),
      should_training_stop: z.boolean(),
      sample_loss_sum: f32.describe(
        'per sample of every micro-batch trained, in plan order: the sum of its label-token cross-entropies, from the training forward',
      ),
      sample_tokens: i32.describe('per sample, likewise: its label-token count'),
      sample_excess_sum: f32
        .optional()
        .describe("per sample, likewise, when the pass has a reference_model: Σ over its label tokens of max(ℓ − ℓ_reference, 0)"),
      weigh_calls: uint.optional().describe('`weigh` requests made, when the pass weighs'),
      weigh_seconds: z.number().optional().describe('their round trips (send, TypeScript, reply) in executor time'),
    }),
    timeoutMs: LONG,
    example: { count: 1, log: Uint8Array.of(1), evaluate: Uint8Array.of(0), save: Uint8Array.of(0) },
  }),
  request_stop: op({
    direction: 'to_sidecar',
    summary:
      'end training after the step in progress: answered at once, even while train_steps runs, which then returns the steps done with should_training_stop (as early stopping does); later train_steps calls train nothing',
    args: z.strictObject({}),
    result: z.strictObject({}),
    timeoutMs: MINUTE,
    example: {},
  }),
  weigh: op({
    direction: 'to_typescript',
    summary: "one micro-batch's loss weights, asked mid-step between its training forward and its backward (dynamic_weight)",
    args: z.strictObject({
      step: z.int().min(1).describe('the optimizer step being trained (1-based)'),
      micro: uint.describe("the micro-batch's position in the step's gradient-accumulation group"),
      indices: i32.describe('training-set indices of its rows'),
      losses: f32.describe('per row: mean cross-entropy over its label tokens, from the training forward'),
      tokens: i32.describe('per row: its label tokens'),
      group_samples: z.int().min(1).describe("samples in the step's gradient-accumulation group"),
      group_micro: z.int().min(1).describe('micro-batches in it'),
      embeddings: f32Matrix.optional().describe("[rows × hidden] pooled hidden states of the forward, when begin_pass's weigh asked"),
    }),
    result: z.strictObject({ weights: f32.describe('one finite weight per row') }),
    timeoutMs: 10 * MINUTE,
    example: {
      step: 1,
      micro: 0,
      indices: Int32Array.of(0, 1),
      losses: Float32Array.of(1.5, 2),
      tokens: Int32Array.of(3, 4),
      group_samples: 2,
      group_micro: 1,
    },
  }),
  end_pass: op({
    direction: 'to_sidecar',
    summary: "end of the pass: on_epoch_end, then the pass's last log/evaluate/save",
    args: z.strictObject({ log: z.boolean().default(false), evaluate: z.boolean().default(false), save: z.boolean().default(false) }),
    result: z.strictObject({ eval_loss: z.number().nullable() }),
    timeoutMs: LONG,
    example: {},
  }),
  losses: op({
    direction: 'to_sidecar',
    summary: "per-sample mean token loss (training's label mask), eval mode, no grad",
    args: z.strictObject({
      split: split('train'),
      indices,
      batch_size: z.int().min(1).optional().describe('most rows per forward; default: batches sized by padded tokens'),
      max_tokens: z.int().min(1).optional().describe('most padded tokens per forward'),
    }),
    result: z.strictObject({ losses: f32 }),
    timeoutMs: LONG,
    example: { split: 'train', indices: Int32Array.of(0, 1, 2) },
  }),
  gradients: op({
    direction: 'to_sidecar',
    summary: 'projected per-sample gradients of the trainable parameters, [n × proj_dim]',
    args: z.strictObject({
      split: split('train'),
      indices,
      precondition: z.enum(['sgd', 'adam']).default('sgd').describe("adam: LESS's preconditioning with the live optimizer's moments"),
      ...projection,
    }),
    result: z.strictObject({ grads: f32Matrix, trainable_params: uint, seconds }),
    timeoutMs: LONG,
    example: { split: 'train', indices: Int32Array.of(0, 1, 2), proj_dim: 32, precondition: 'adam', normalize: true },
  }),
  embeddings: op({
    direction: 'to_sidecar',
    summary: 'pooled hidden states, [n × hidden]',
    args: z.strictObject({
      split: split('train'),
      indices,
      layer: z.int().default(-1).describe('hidden-state index, Python style: 0 the embedding output, -1 the last layer'),
      pooling: pooling.default('mask_mean'),
      normalize: z.boolean().default(false),
      model: localDir.optional().describe('a separate local causal LM directory (same vocabulary); default: the training model'),
      batch_size: z.int().min(1).optional().describe("rows per forward; default: the run's per_device_eval_batch_size"),
    }),
    result: z.strictObject({ embeddings: f32Matrix }),
    timeoutMs: LONG,
    example: { split: 'eval', indices: Int32Array.of(0, 1), normalize: true },
  }),
  router_loads: op({
    direction: 'to_sidecar',
    summary: 'expert loads of a mixture-of-experts model: tokens routed to each expert, per row and MoE layer (eval mode, no grad)',
    args: z.strictObject({
      split: split('eval'),
      indices,
      batch_size: z.int().min(1).optional().describe("rows per forward; default: the run's per_device_eval_batch_size"),
    }),
    result: z.strictObject({
      loads: f32Matrix.describe('[n × layers·experts]: layer-major, the non-padding tokens whose top-k experts include each'),
      layers: uint,
      experts: uint,
      top_k: uint,
      seconds,
    }),
    timeoutMs: LONG,
    // The contract test runs it on a locally built mixture-of-experts model.
    example: { split: 'eval', indices: Int32Array.of(0, 1) },
  }),
  evaluate: op({
    direction: 'to_sidecar',
    summary: "the Trainer's evaluation on the eval set",
    args: z.strictObject({}),
    result: z.strictObject({ metrics: z.record(z.string(), z.number()) }),
    timeoutMs: LONG,
    example: {},
  }),
  save_checkpoint: op({
    direction: 'to_sidecar',
    summary: 'a checkpoint-<global_step> folder, as the Trainer saves it',
    args: z.strictObject({}),
    result: z.strictObject({ global_step: uint }),
    timeoutMs: LONG,
    example: {},
  }),
  finish: op({
    direction: 'to_sidecar',
    summary: 'end of training: save the model, metrics and state as run_sft/run_pt do, then the final evaluation',
    args: z.strictObject({}),
    result: z.strictObject({
      train_loss: z.number(),
      global_step: uint,
      eval_loss: z.number().nullable(),
      step_seconds_median: z.number().nullable(),
    }),
    timeoutMs: LONG,
    example: {},
  }),
  generate: op({
    direction: 'to_sidecar',
    summary: "NICE: sampled continuations of each example's prompt (its tokens before the first label)",
    args: z.strictObject({
      split: split('eval'),
      indices,
      max_new_tokens: z.int().min(0).default(512),
      temperature: z.number().min(0).default(0.7).describe('0: greedy'),
      samples: z.int().min(1).default(4).describe('continuations per prompt'),
      seed: z.int().default(42).describe('each (example, sample) draws from its own generator seeded from this'),
      model: localDir.optional().describe('a separate local policy directory (same vocabulary); default: the training model'),
      max_prompt_length: z.int().min(1).optional().describe('longer prompts keep their last tokens'),
    }),
    result: z.strictObject({ ...tokenRows, samples: z.int().min(1), seconds }),
    timeoutMs: LONG,
    example: { split: 'eval', indices: Int32Array.of(0), max_new_tokens: 4, samples: 2, seed: 7 },
  }),
  reward: op({
    direction: 'to_sidecar',
    summary: 'NICE: reward-model scores of prompt + response (sigmoid of a 1-logit head, else P(last class))',
    args: z.strictObject({
      ...tokenRows,
      samples: z.int().min(1).default(1),
      model: localDir.describe('a local AutoModelForSequenceClassification directory'),
      batch_size: z.int().min(1).default(8),
    }),
    result: z.strictObject({
      rewards: f32,
      reencoded: z.boolean().describe("the reward model has another vocabulary: responses went through text"),
      seconds,
    }),
    timeoutMs: LONG,
    // The contract test points `model` at a reward model it builds.
    example: { ...exampleRows, samples: 2, model: 'models/tiny-reward' },
  }),
  policy_gradients: op({
    direction: 'to_sidecar',
    summary: "NICE: projected REINFORCE gradients of the training model, (1/S) Σ_m (r_m − b) ∇ log π(y_m|x) per prompt",
    args: z.strictObject({
      ...tokenRows,
      samples: z.int().min(1).default(1),
      rewards: f32.describe('one per response'),
      baseline: z.enum(['mean', 'none']).default('mean').describe("b: the prompt's mean reward, or 0"),
      ...projection,
    }),
    result: z.strictObject({ grads: f32Matrix, trainable_params: uint, zero_rows: uint, seconds }),
    timeoutMs: LONG,
    example: { ...exampleRows, samples: 2, rewards: Float32Array.of(0.25, 0.75), proj_dim: 32, normalize: true },
  }),
} satisfies Record<string, OpSpec>

export type OpName = keyof typeof OPS
/** Ops TypeScript calls on the sidecar. */
export type SidecarOpName = { [N in OpName]: (typeof OPS)[N]['direction'] extends 'to_sidecar' ? N : never }[OpName]
/** Ops the sidecar calls on TypeScript (`ctx.request`). */
export type TypeScriptOpName = { [N in OpName]: (typeof OPS)[N]['direction'] extends 'to_typescript' ? N : never }[OpName]
/** What a caller passes (defaults may be left out). */
export type OpArgs<N extends OpName> = z.input<(typeof OPS)[N]['args']>
export type OpResult<N extends OpName> = z.output<(typeof OPS)[N]['result']>

/** What a TypeScript handler receives (as sent: the sidecar fills no defaults) and returns. */
export type HandledArgs<N extends OpName> = z.output<(typeof OPS)[N]['args']>
export type HandlerResult<N extends OpName> = z.input<(typeof OPS)[N]['result']>

export const OP_NAMES = Object.keys(OPS) as OpName[]

/**
 * The catalog's ops over a bridge: args parsed (defaults applied) before sending, results parsed on return; and
 * the handlers of the ops the sidecar calls, their args parsed before the handler runs and its result before the reply.
 */
export class OpClient {
  constructor(readonly bridge: Bridge) {}

  call<N extends SidecarOpName>(name: N, args: OpArgs<N>, opts: { timeoutMs?: number } = {}): Promise<OpResult<N>> {
    const spec: OpSpec = OPS[name]
    const parsed = spec.args.safeParse(args)
    if (!parsed.success) return Promise.reject(new OpArgsError(name, parsed.error))
    return this.bridge.request(name, parsed.data, {
      timeoutMs: opts.timeoutMs ?? spec.timeoutMs,
      result: spec.result as z.ZodType<OpResult<N>>,
    })
  }

  /** Answer the sidecar's requests for `name`; returns the unregister function. */
  handle<N extends TypeScriptOpName>(name: N, fn: (args: HandledArgs<N>) => HandlerResult<N> | Promise<HandlerResult<N>>): () => void {
    const spec: OpSpec = OPS[name]
    return this.bridge.handle(name, async (raw) => {
      const parsed = spec.args.safeParse(raw)
      if (!parsed.success) throw new OpArgsError(name, parsed.error)
      const result = spec.result.safeParse(await fn(parsed.data as HandledArgs<N>))
      if (!result.success) throw new OpResultError(name, result.error)
      return result.data as Record<string, unknown>
    })
  }
}
