/**
 * The mixer contract (`train_type: dynamic_mix`): at each update a mixer sets new domain proportions, and the trainer
 * draws the next window's samples by them (TypeScript knows every sample's domain). What a mixer sees of training is
 * per-domain statistics of the samples actually trained, taken from the training forward itself (no extra pass).
 */
import { definer, type Awaitable, type ComponentDefinition, type ComponentEnv, type DecisionContext, type DecisionFacts, type Split, type Stateful } from './types.ts'

/** One training domain: a dataset of the run's `dataset:` list. */
export interface Domain {
  readonly name: string
  /** Training samples of this domain the trainer draws from (held-out rows excluded). */
  readonly size: number
}

/** Rows of one domain a mixer may evaluate on: its `mixer_eval_dataset` set, or training rows held out of draws. */
export interface HeldOut {
  readonly split: Split
  readonly indices: Int32Array
}

/** Per-domain sums over a set of trained samples; index = domain. */
export interface DomainStats {
  /** Σ over the samples of their label-token cross-entropy sums (training forward, before any weighting). */
  readonly lossSum: Float64Array
  /** Σ of their label-token counts. */
  readonly tokens: Float64Array
  /** Number of samples. */
  readonly samples: Float64Array
  /**
   * Σ over tokens of max(ℓ_model − ℓ_reference, 0), when the mixer names a reference model (DoReMi's excess loss,
   * computed on every trained micro-batch).
   */
  readonly excessSum?: Float64Array
}

/** One optimizer step's statistics. */
export interface StepStats extends DomainStats {
  /** Global step (1-based). */
  readonly step: number
}

/** Everything a mixing decision may depend on. Same inputs + same seed → same proportions. */
export interface MixContext extends DecisionContext {
  /** Global optimizer step the decision follows (0: before the first step). */
  readonly step: number
  /** 1-based index of this update, and how many the run has (-1: open-ended, until max_steps). */
  readonly update: number
  readonly updateTimes: number
  readonly domains: readonly Domain[]
  /** The proportions the last window was drawn with (the initial ones before the first update). */
  readonly current: Float64Array
  /** Every step trained since the previous decision, in order. */
  readonly steps: readonly StepStats[]
  /** The sum of `steps`. */
  readonly window: DomainStats
  /** Samples of each domain trained since the start of the run (including this window). */
  readonly seen: Float64Array
  /** Token-weighted mean training loss per domain over `window` (NaN: no sample of it trained). */
  readonly domainLosses: Float64Array
  /** Per domain, the rows held out for evaluation (only when the mixer asked for them with `heldOut`). */
  readonly heldOut: readonly HeldOut[]
}

/** A line the trainer appends to `<output_dir>/<file>` (the Python DataFlex's per-update logs, for existing scripts). */
export interface OutputRecord {
  /** A plain file name in the output directory, e.g. `odm_weights.jsonl`. */
  readonly file: string
  readonly record: Readonly<Record<string, unknown>>
}

export interface MixResult extends DecisionFacts {
  /** One non-negative weight per domain, in `domains` order; the trainer normalises them to sum to 1. */
  readonly proportions: Float64Array
  /** Extra per-update lines for compatibility files. */
  readonly records?: readonly OutputRecord[]
}

export interface MixerInstance extends Stateful {
  mix(ctx: MixContext): Awaitable<MixResult>
  /**
   * A local model directory (full model or adapter) the executor compares the training model with on every trained
   * micro-batch; its excess losses arrive as `excessSum`. Read once, before training.
   */
  readonly referenceModel?: string
  /**
   * Per-domain multipliers of the training loss (each sample's mean token loss × its domain's weight, averaged over
   * samples: the `sample_mean` reduction), read before every window. Undefined: the plain loss.
   */
  lossWeights?(): Float64Array | undefined
  /** Rows per domain to hold out of training draws for `ctx.heldOut`, for domains without a mixer eval set. */
  readonly heldOut?: number
  /** Files written atomically into the output directory when training ends (name → content). */
  finish?(): Readonly<Record<string, string>>
}

export interface MixerEnv extends ComponentEnv {
  readonly domains: readonly Domain[]
  /** The proportions the run starts with (`init_mixture_proportions`, else uniform), normalised. */
  readonly initial: Float64Array
}

export type MixerDefinition<P = unknown> = ComponentDefinition<'mixer', P, MixerEnv, MixerInstance>

export const defineMixer = definer<'mixer', MixerEnv, MixerInstance>('mixer')
