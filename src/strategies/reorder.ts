/**
 * The reorder contract (`train_type: dynamic_reorder`): put the chosen samples in a curriculum order by a score,
 * once or every few steps. Built-in reorders (DataFlex's `static` and `dynamic`, presets named after the ordering)
 * grow this contract; `custom` files use it as it stands.
 */
import type { RawRows, ScoreSource } from './reorders/scores.ts'
import { definer, type Awaitable, type ComponentDefinition, type DecisionContext, type DecisionFacts, type PoolEnv, type Scores, type Stateful } from './types.ts'

/** Everything an ordering decision may depend on. Same inputs + same seed → same order. */
export interface OrderContext extends DecisionContext {
  /** Global optimizer step the decision follows (0: before the first step). */
  readonly step: number
  /** The training-set indices to order. */
  readonly indices: Int32Array
  /** A score per entry of `indices`, when the trainer has one (e.g. from a selector). */
  readonly scores?: Scores
}

export interface OrderResult extends DecisionFacts {
  /** The training-set indices in training order (a permutation of `indices`, or a prefix of one). */
  readonly order: Int32Array
  /** The score of each entry of `order`. */
  readonly scores?: Scores
}

/**
 * How the trainer serves a reorder's orders (trainers/reorder-serve.ts): `static` orders the pool once and reads it
 * as a stream; `dynamic` reorders what is left of the pass at every `reorderEvery`-th interval, serving either the
 * interval's slice of the pattern laid over the whole pass (`slice`) or the head of the pattern over what is left
 * (`head`, the Python DataFlex's).
 */
export type Serving =
  | { readonly variant: 'static' }
  | { readonly variant: 'dynamic'; readonly reorderEvery: number; readonly consumeOnce: boolean; readonly serve: 'slice' | 'head' }

export interface ReorderInstance extends Stateful {
  /** Default: static. */
  readonly serving?: Serving
  /** Where `ctx.scores` come from; absent: the trainer passes none. */
  readonly scores?: ScoreSource
  /** The pattern, for the decision log. */
  readonly pattern?: string
  /** The given indices in training order (pure: the trainer decides which indices and when). */
  order(ctx: OrderContext): Awaitable<OrderResult>
}

export interface ReorderEnv extends PoolEnv {
  /** The training rows traced to raw rows (load's raw_rows), when the preset reads raw-row scores (apply_at: raw). */
  readonly rawRows?: RawRows | null
}

export type ReorderDefinition<P = unknown> = ComponentDefinition<'reorder', P, ReorderEnv, ReorderInstance>

export const defineReorder = definer<'reorder', ReorderEnv, ReorderInstance>('reorder')
