/**
 * `nice` selector (docs/algorithms.md#nice): training samples whose (Adam-preconditioned) gradient points
 * where a policy-gradient signal on the eval set points. For each eval example the sidecar samples `mc_samples`
 * continuations of its prompt, scores them with a local reward model, and returns the projected gradient of the
 * REINFORCE surrogate (1/S) Σ_m (r_m − b) · Σ_t −log π(y_t|x, y_<t) on the training model. A training sample
 * scores the mean cosine to those gradients, s_i = ⟨ĝ_i, mean_j ê_j⟩; the top-k are selected.
 *
 * Deliberate differences from the Python DataFlex (which, as shipped in 1.1.0, cannot run: its components.yaml
 * lacks the required model paths, and the items below):
 * - `gradient_type: adam` is really applied (DataFlex computed the Adam direction and returned the raw gradient).
 * - The prompt is the preprocessed eval row's own prompt (input_ids before the first label token), so the
 *   template, system prompt and truncation are exactly training's; DataFlex's prompts were empty templates.
 *   `prompt_template` and the reward prompt templates are therefore gone: the reward model scores prompt+response.
 * - Generation is on-policy by default (the training model as it is now); `policy_model_path` picks a separate
 *   local model, which must share the training tokenizer (DataFlex fed another tokenizer's ids to the model).
 * - A baseline: b = the example's mean reward (`baseline: mean`, default) removes the reward's common offset, so an
 *   example whose samples all score alike adds nothing rather than a push towards whatever was sampled.
 *   `baseline: none` is DataFlex's estimator.
 * - Samples are seeded per (seed, update step, example, sample) with a private generator: reproducible, fresh at
 *   every update, and never touching training's RNG. `max_prompt_length` keeps a prompt's last tokens.
 * - Top-k ties go to the lower index; `save_interval` is an accepted no-op and `cache_dir` only sets the trainer's
 *   cache folder; the removed `reward_model_backend` / `reward_backend_params` (an older, vLLM/API-based NICE) are
 *   rejected with a message.
 */
import { existsSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { z } from 'zod'
import { ConfigError } from '../../config/errors.ts'
import { Rng } from '../../math/rng.ts'
import { defineSelector, type GradientOptions, type Matrix, type ModelOps, type Split } from '../types.ts'
import { SelectorError, allIndices, cacheDirParam, checkMatrix, since } from './common.ts'
import { inverseRowNorm, scoreTrainGradients, topKSelection } from './less.ts'

const NAME = 'nice'

// ------------------------------------------------------------------------------------ the ModelOps extension

export interface PolicyGradientOptions {
  /** A separate local policy model directory; undefined: the training model as it is now (on-policy). */
  readonly policyModel?: string
  /** A local AutoModelForSequenceClassification directory. */
  readonly rewardModel: string
  readonly samples: number
  readonly maxNewTokens: number
  /** 0: greedy. */
  readonly temperature: number
  /** Prompts longer than this keep their last tokens. */
  readonly maxPromptLength: number
  /** Generation seed; each (example, sample) derives its own stream from it. */
  readonly seed: number
  /** Projection, as in GradientOptions (the same projector as `gradients`). */
  readonly projDim: number
  readonly projSeed: number
  readonly baseline: 'mean' | 'none'
  readonly normalize: boolean
}

export interface PolicyGradientResult {
  /** [indices.length × projDim]. */
  readonly gradients: Matrix
  /** [indices.length × samples], example-major. */
  readonly rewards: Float32Array
  /** Generated tokens per (example, sample), same order. */
  readonly responseLengths: Int32Array
  /** Examples whose every sample had weight 0 (a zero gradient row). */
  readonly zeroRows: number
}

/** What NICE needs beyond ModelOps: generate → reward → projected REINFORCE gradients, for eval examples. */
export interface PolicyModelOps {
  policyGradients(split: Split, indices: Int32Array, opts: PolicyGradientOptions): Promise<PolicyGradientResult>
}

export type NiceModelOps = ModelOps & Partial<PolicyModelOps>

// ------------------------------------------------------------------------------------------------- params

function removed(why: string) {
  return z.never({ error: why }).optional().describe(`removed: ${why}`)
}

const OLD_BACKEND =
  'belongs to an older NICE (vLLM/API reward backends); this version scores with a local sequence-classification ' +
  'model: remove it and set reward_model_path'
const NO_TEMPLATES =
  "not used: prompts are the eval rows' own preprocessed prompts (LLaMA-Factory's template) and the reward model " +
  'scores prompt + response directly; remove it'

export const NiceParamsSchema = z.strictObject({
  cache_dir: cacheDirParam,
  policy_model_path: z
    .string()
    .min(1)
    .meta({ path: 'model' })
    .nullish()
    .describe('local policy model directory sharing the training tokenizer; unset: on-policy (the training model)'),
  reward_model_path: z
    .string({ error: 'reward_model_path is required: a local AutoModelForSequenceClassification directory' })
    .min(1)
    .meta({ path: 'model' })
    .describe('local AutoModelForSequenceClassification directory (reward = sigmoid of a 1-logit head, else P(last class))'),
  gradient_type: z.enum(['adam', 'sgd']).default('adam').describe('training-gradient preconditioning (eval gradients are REINFORCE, raw)'),
  proj_dim: z.int().positive().default(8192).describe('random-projection dimension d'),
  seed: z.int().min(0).default(42).describe('projector and generation seed'),
  mc_samples: z.int().positive().default(4).describe('sampled continuations per eval example'),
  max_new_tokens: z.int().positive().default(512).describe('generation length limit'),
  generation_temperature: z.number().min(0).default(0.7).describe('sampling temperature (0: greedy)'),
  max_prompt_length: z.int().positive().default(4096).describe('longer prompts keep their last tokens'),
  baseline: z.enum(['mean', 'none']).default('mean').describe("REINFORCE baseline: the example's mean reward, or none (DataFlex)"),
  eval_chunk: z.int().positive().default(8).describe('eval examples per sidecar request (progress and memory granularity)'),
  save_interval: z
    .int()
    .positive()
    .default(64)
    .describe('accepted for DataFlex compatibility; no-op (the sidecar batches and chunks gradients itself)'),
  reward_model_backend: removed(OLD_BACKEND),
  reward_backend_params: removed(OLD_BACKEND),
  prompt_template: removed(NO_TEMPLATES),
  reward_prompt_with_ref: removed(NO_TEMPLATES),
  reward_prompt_without_ref: removed(NO_TEMPLATES),
})
export type NiceParams = z.output<typeof NiceParamsSchema>

// ---------------------------------------------------------------------------------------------- selection

export interface RewardStats {
  readonly mean: number
  readonly std: number
  readonly min: number
  readonly max: number
  readonly count: number
}

export function rewardStats(values: ArrayLike<number>): RewardStats {
  const n = values.length
  if (n === 0) return { mean: NaN, std: NaN, min: NaN, max: NaN, count: 0 }
  let s = 0
  let lo = Infinity
  let hi = -Infinity
  for (let i = 0; i < n; i++) {
    const v = values[i]!
    s += v
    lo = Math.min(lo, v)
    hi = Math.max(hi, v)
  }
  const mean = s / n
  let ss = 0
  for (let i = 0; i < n; i++) ss += (values[i]! - mean) ** 2
  return { mean, std: Math.sqrt(ss / n), min: lo, max: hi, count: n }
}

/** The generation seed of one update: fresh samples at every update, reproducible from (seed, step). */
export function generationSeed(seed: number, step: number): number {
  return Rng.derive(seed, NAME, 'generate', step).u32() & 0x7fffffff
}

interface EvalSignal {
  readonly mean: Float64Array
  readonly rewards: Float32Array
  readonly meanResponseTokens: number
  readonly zeroRows: number
}

/** mean_j ê_j over the eval set: each example's REINFORCE gradient, L2-normalised (zero rows stay zero). */
async function evalSignal(model: NiceModelOps, params: NiceParams, step: number, log: (m: string) => void): Promise<EvalSignal> {
  const ne = model.numEval
  if (ne === 0) {
    throw new SelectorError(NAME, 'no_eval_data', 'needs an eval set (set eval_dataset or val_size): its prompts are what the policy answers')
  }
  const policyGradients = model.policyGradients?.bind(model)
  if (policyGradients === undefined) {
    throw new SelectorError(NAME, 'bad_state', "this trainer's model ops cannot generate (no policyGradients); NICE needs the sidecar's generate/reward/policy_gradients ops")
  }
  const opts: PolicyGradientOptions = {
    ...(params.policy_model_path ? { policyModel: params.policy_model_path } : {}),
    rewardModel: params.reward_model_path,
    samples: params.mc_samples,
    maxNewTokens: params.max_new_tokens,
    temperature: params.generation_temperature,
    maxPromptLength: params.max_prompt_length,
    seed: generationSeed(params.seed, step),
    projDim: params.proj_dim,
    projSeed: params.seed,
    baseline: params.baseline,
    normalize: true,
  }
  const acc = new Float64Array(params.proj_dim)
  const rewards = new Float32Array(ne * params.mc_samples)
  let tokens = 0
  let zeroRows = 0
  const all = allIndices(ne)
  for (let off = 0; off < ne; off += params.eval_chunk) {
    const sub = all.subarray(off, Math.min(ne, off + params.eval_chunk))
    const r = await policyGradients('eval', sub, opts)
    const g = checkMatrix(NAME, r.gradients, sub.length, params.proj_dim)
    if (r.rewards.length !== sub.length * params.mc_samples || r.responseLengths.length !== r.rewards.length) {
      throw new SelectorError(NAME, 'bad_model_output', `policyGradients returned ${r.rewards.length} rewards for ${sub.length}×${params.mc_samples} samples`)
    }
    for (let row = 0; row < g.rows; row++) {
      let sq = 0
      for (let c = 0; c < g.cols; c++) sq += g.data[row * g.cols + c]! ** 2
      if (sq === 0) continue // an all-zero-weight example: its normalised gradient is the zero vector
      const inv = inverseRowNorm(g, row)
      for (let c = 0; c < g.cols; c++) acc[c] = acc[c]! + g.data[row * g.cols + c]! * inv
    }
    rewards.set(r.rewards, off * params.mc_samples)
    for (const len of r.responseLengths) tokens += len
    zeroRows += r.zeroRows
    log(`${NAME}: eval policy gradients ${Math.min(off + sub.length, ne)}/${ne}`)
  }
  for (let c = 0; c < acc.length; c++) acc[c] = acc[c]! / ne
  return { mean: acc, rewards, meanResponseTokens: tokens / rewards.length, zeroRows }
}

export const niceSelector = defineSelector({
  name: NAME,
  description: 'NICE: top-k training samples by mean cosine of their (Adam) gradient to REINFORCE gradients of sampled, reward-scored eval continuations',
  params: NiceParamsSchema,
  create(raw, env) {
    // Both must be local folders. The registry hands them over absolute (input-paths.ts); a relative one, from a
    // direct create(), reads against baseDir.
    const local = (key: string, p: string): string => {
      const full = resolve(env.baseDir, p)
      if (!existsSync(full) || !statSync(full).isDirectory()) {
        throw new ConfigError('model_not_found', `${NAME}: ${key} '${p}' is not a local model directory`, { key })
      }
      return full
    }
    const params: NiceParams = {
      ...raw,
      reward_model_path: local('reward_model_path', raw.reward_model_path),
      policy_model_path: raw.policy_model_path ? local('policy_model_path', raw.policy_model_path) : raw.policy_model_path,
    }
    return {
      async select(ctx) {
        const t0 = performance.now()
        const model = ctx.model as NiceModelOps
        const n = model.numTrain
        const signal = await evalSignal(model, params, ctx.step, ctx.log)
        const evalMs = since(t0)
        if (signal.zeroRows === model.numEval) {
          ctx.log(`${NAME}: every eval example had equal rewards across its samples (zero policy gradient); scores are all 0`)
        }

        const t1 = performance.now()
        const opts: GradientOptions = { projDim: params.proj_dim, seed: params.seed, precondition: params.gradient_type, normalize: true }
        const scores = await scoreTrainGradients(model, NAME, opts, signal.mean)
        const trainMs = since(t1)

        const { indices, scores: selected } = topKSelection(scores, ctx.numSamples, NAME, ctx.log)
        return {
          indices,
          scores: selected,
          // The mean cosine to the reward-weighted eval gradients, as less's similarity.
          metric: 'train_eval_similarity',
          info: {
            method: NAME,
            gradient_type: params.gradient_type,
            proj_dim: params.proj_dim,
            policy: params.policy_model_path ?? 'on-policy',
            baseline: params.baseline,
            mc_samples: params.mc_samples,
            num_train: n,
            num_eval: model.numEval,
            reward: rewardStats(signal.rewards),
            mean_response_tokens: signal.meanResponseTokens,
            zero_gradient_eval_examples: signal.zeroRows,
            timing_ms: { eval_policy_gradients: evalMs, train_gradients: trainMs, total: since(t0) },
          },
        }
      },
    }
  },
})
