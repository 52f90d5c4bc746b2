/**
 * What a strategy author imports: `import { defineSelector } from 'dataflex-ts'` (zod comes from 'zod' itself).
 * The four `define*` helpers and the types of every kind's contract, the seeded Rng the trainers hand out, and
 * `fakeModelOps`, a deterministic ModelOps for unit tests without a sidecar. docs/authoring.md is the guide.
 *
 * A strategy file loaded by `dataflex train` (user-files.ts) gets exactly these objects for 'dataflex-ts', and the
 * run's own zod for 'zod', wherever the file lives.
 */
export { Rng } from './math/rng.ts'
export { fakeModelOps, type FakeCall, type FakeModelOps, type FakeModelOptions, type PerSplit, type Rows, type RowSource } from './strategies/fake-model.ts'
export type { KitOf, MixerKit, ReorderKit, SelectorKit, WeighterKit } from './strategies/kit.ts'
export {
  defineMixer,
  type Domain,
  type DomainStats,
  type HeldOut,
  type MixContext,
  type MixerDefinition,
  type MixerEnv,
  type MixerInstance,
  type MixResult,
  type OutputRecord,
  type StepStats,
} from './strategies/mixer.ts'
export type { RawRows, ScoreSource } from './strategies/reorders/scores.ts'
export { defineReorder, type OrderContext, type OrderResult, type ReorderDefinition, type ReorderEnv, type ReorderInstance, type Serving } from './strategies/reorder.ts'
export {
  defineSelector,
  type Awaitable,
  type ComponentDefinition,
  type ComponentEnv,
  type DecisionContext,
  type DecisionFacts,
  type DefinitionSpec,
  type EmbeddingOptions,
  type GradientOptions,
  type LossOptions,
  type Matrix,
  type ModelOps,
  type PoolEnv,
  type Pooling,
  type RouterLoads,
  type Scores,
  type SelectContext,
  type SelectorDefinition,
  type SelectorEnv,
  type SelectorInstance,
  type SelectResult,
  type Split,
  type Stateful,
} from './strategies/types.ts'
export {
  defineWeighter,
  type RefreshContext,
  type WeighContext,
  type WeighEmbeddings,
  type WeighResult,
  type WeighterDefinition,
  type WeighterEnv,
  type WeighterInstance,
  type WeightReduction,
} from './strategies/weighter.ts'
