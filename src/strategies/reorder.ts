/**
 * The reorder contract (`train_type: dynamic_reorder`): put the chosen samples in a curriculum order by a score,
 * once or every few steps. Built-in reorders (DataFlex's `static` and `dynamic`, presets named after the ordering)
 * grow this contract; `custom` files use it as it stands.
 */
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

export interface ReorderInstance extends Stateful {
  order(ctx: OrderContext): Awaitable<OrderResult>
}

export type ReorderEnv = PoolEnv

export type ReorderDefinition<P = unknown> = ComponentDefinition<'reorder', P, ReorderEnv, ReorderInstance>

export const defineReorder = definer<'reorder', ReorderEnv, ReorderInstance>('reorder')
