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

// Everything a strategy author imports (the define* helpers, their types, Rng, fakeModelOps for unit tests).
export * from './authoring.ts'
