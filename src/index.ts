/**
 * dataflex-ts as a library (`import { train, defineSelector } from 'dataflex-ts'`): start and watch runs from Node
 * (api/), and write strategies with the `define*` helpers and their types. docs/node-api.md.
 */
export { train, type TrainOptions } from './api/train.ts'
export type {
  CheckpointEvent,
  DecisionEvent,
  DoneEvent,
  ErrorEvent,
  EvalEvent,
  LogEvent,
  ProgressUpdate,
  RunHandle,
  RunStatus,
  StepEvent,
  TrainEvent,
  TrainEventMap,
  TrainEventType,
  TrainSummary,
} from './api/handle.ts'
export { ConfigError, type ConfigErrorCode } from './config/errors.ts'
export type { ConfigOverrides } from './config/load.ts'
export type { RemoteTarget } from './bridge/session.ts'
export { RunAbortedError } from './trainers/errors.ts'
export type { Phase, ProgressEvent } from './trainers/events.ts'
export type { RunSummary } from './trainers/run.ts'
export type { Decision, DecisionLine } from './trainers/runlog.ts'

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
export {
  defineReorder,
  type OrderContext,
  type OrderResult,
  type ReorderDefinition,
  type ReorderEnv,
  type ReorderInstance,
  type Serving,
} from './strategies/reorder.ts'
