/**
 * The mixer contract (`train_type: dynamic_mix`): every `update_step` steps a mixer sets new domain proportions,
 * and the trainer draws the next samples by them (TypeScript knows every sample's domain). Built-in mixers (static,
 * random, doremi, odm, dynamic_moe, ado) grow this contract; `custom` files use it as it stands.
 */
import { definer, type Awaitable, type ComponentDefinition, type ComponentEnv, type DecisionContext, type DecisionFacts, type Stateful } from './types.ts'

/** One training domain: a dataset of the run's `dataset:` list. */
export interface Domain {
  readonly name: string
  /** Training samples of this domain. */
  readonly size: number
}

/** Everything a mixing decision may depend on. Same inputs + same seed → same proportions. */
export interface MixContext extends DecisionContext {
  /** Global optimizer step the decision follows (0: before the first step). */
  readonly step: number
  readonly domains: readonly Domain[]
  /** Mean training loss per domain over the steps since the previous decision (NaN: no sample of it trained). */
  readonly domainLosses: Float64Array
}

export interface MixResult extends DecisionFacts {
  /** One non-negative weight per domain, in `domains` order; the trainer normalises them to sum to 1. */
  readonly proportions: Float64Array
}

export interface MixerInstance extends Stateful {
  mix(ctx: MixContext): Awaitable<MixResult>
}

export interface MixerEnv extends ComponentEnv {
  readonly domains: readonly Domain[]
}

export type MixerDefinition<P = unknown> = ComponentDefinition<'mixer', P, MixerEnv, MixerInstance>

export const defineMixer = definer<'mixer', MixerEnv, MixerInstance>('mixer')
