/**
 * What every strategy family (select, mix, reorder, weight) shares at run time, whatever it decides: its cache
 * folder (keyed so stale results are never reused), the checks on what it returned, the decision-log line
 * (indices or their hash, a score summary, its own facts apart from its timings) and its state for checkpoints.
 * Trainers own when a strategy is asked; this module owns how the answer is checked and recorded.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { ConfigError, type LoadedConfig } from '../config/index.ts'
import { hashArrays } from '../math/hash.ts'
import { describeInput } from '../strategies/input-paths.ts'
import type { ComponentKind } from '../strategies/kinds.ts'
import { resolveComponent, type ResolvedComponent } from '../strategies/presets.ts'
import type { DecisionFacts, Stateful } from '../strategies/types.ts'
import { UserCodeError } from '../strategies/user-files.ts'
import { canonicalJson } from '../util/canonical-json.ts'
import type { LoadInfo } from './executor.ts'
import type { Decision, RunLog } from './runlog.ts'

/** Indices are written out in full up to this many; above it only their hash and count. */
export const MAX_LOGGED_INDICES = 4096

export type StrategyErrorCode = 'empty_selection' | 'too_many_indices' | 'bad_index' | 'bad_scores' | 'bad_weights' | 'weighter_failed' | 'bad_state' | 'unsupported'

/** A strategy broke its contract (a strategy bug, not a config error: exit 1). */
export class StrategyError extends Error {
  override readonly name = 'StrategyError'
  readonly code: StrategyErrorCode

  constructor(code: StrategyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

// Keys that change where a run writes or how it reports, never what a strategy computes.
const NOT_IN_CACHE_KEY = new Set([
  'output_dir',
  'overwrite_output_dir',
  'overwrite_cache',
  'logging_dir',
  'logging_steps',
  'logging_strategy',
  'logging_first_step',
  'save_steps',
  'save_strategy',
  'save_total_limit',
  'save_only_model',
  'report_to',
  'plot_loss',
  'run_name',
  'preprocessing_num_workers',
  'dataloader_num_workers',
  'ddp_timeout',
])

export interface CacheKeyInput {
  cfg: Pick<LoadedConfig, 'lf' | 'dataflex'>
  component: Pick<ResolvedComponent, 'key' | 'algorithm' | 'strategy' | 'rawParams' | 'sourceHash'>
  numTrain: number
  numEval: number
  seed: number
  cwd?: string
}

/**
 * The strategy's cache folder name: sha256 over the model path, the datasets and their sizes, the strategy (name,
 * params, and for custom what the user file runs: it and the local files it imports), the seed and every other training argument that can change
 * what the model is at a decision. Different inputs → a different folder, so stale results are never reused.
 */
export function cacheKey(input: CacheKeyInput): string {
  const { cfg, component } = input
  const cwd = input.cwd ?? process.cwd()
  const model = cfg.lf['model_name_or_path']
  const modelPath = typeof model === 'string' && existsSync(resolve(cwd, model)) ? resolve(cwd, model) : model
  const training = Object.fromEntries(Object.entries(cfg.lf).filter(([k]) => !NOT_IN_CACHE_KEY.has(k)))
  const material = {
    model: modelPath,
    data: { dataset: cfg.lf['dataset'], eval_dataset: cfg.lf['eval_dataset'], num_train: input.numTrain, num_eval: input.numEval },
    strategy: {
      algorithm: component.algorithm,
      name: component.strategy,
      params: component.rawParams,
      file: component.sourceHash,
    },
    seed: input.seed,
    schedule: {
      warmup_step: cfg.dataflex.warmup_step,
      update_step: cfg.dataflex.update_step,
      update_times: cfg.dataflex.update_times,
      train_step: cfg.dataflex.train_step,
    },
    training,
  }
  return createHash('sha256').update(canonicalJson(material)).digest('hex').slice(0, 16)
}

/**
 * A trainer's `prepare`: the config's preset of `kind` (or the preset `key`, a pipeline stage's) resolved (params validated, input files found) before the
 * sidecar starts, its warnings and inputs told to the user.
 */
export async function prepareComponent<K extends ComponentKind>(cfg: LoadedConfig, kind: K, log: (line: string) => void, key?: string): Promise<ResolvedComponent<K>> {
  const resolved = await resolveComponent(cfg, kind, key === undefined ? {} : { key })
  for (const warning of resolved.warnings) log(`warning: ${warning}`)
  for (const input of resolved.inputs) log(`[${resolved.key}] ${describeInput(input, resolved.preset)}`)
  return resolved
}

/**
 * The component's instance, created after the model loaded (when `env` needs the run's sizes): what its create()
 * refuses about the run is a config error naming the preset.
 */
export function createComponent<K extends ComponentKind, E, I>(r: ResolvedComponent<K> & { definition: { create(params: unknown, env: E): I } }, env: E): I {
  try {
    return r.definition.create(r.params, env)
  } catch (err) {
    // A throw in a user's create() is reported as user code, with its file and line, under every trainer.
    if (err instanceof ConfigError || err instanceof UserCodeError) throw err
    throw new ConfigError('bad_value', `${r.kind} '${r.key}' (${r.preset.source}): ${(err as Error).message}`, { key: 'component_name', cause: err })
  }
}

/** Every value an integer in [0, n): what any strategy returning sample indices must satisfy. */
export function checkIndices(values: ArrayLike<number>, n: number, strategy: string): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!
    if (!Number.isInteger(v) || v < 0 || v >= n) {
      throw new StrategyError('bad_index', `${strategy}: index ${v} at position ${i} is outside the training set [0, ${n})`)
    }
  }
}

export interface ScoreSummary {
  min: number
  mean: number
  max: number
  /** Scores that were NaN or ±Inf (left out of min/mean/max). */
  non_finite?: number
}

export function summarizeScores(scores: ArrayLike<number>): ScoreSummary | undefined {
  let min = Infinity
  let max = -Infinity
  let sum = 0
  let n = 0
  for (let i = 0; i < scores.length; i++) {
    const v = scores[i]!
    if (!Number.isFinite(v)) continue
    if (v < min) min = v
    if (v > max) max = v
    sum += v
    n++
  }
  const nonFinite = scores.length - n
  if (n === 0) return scores.length === 0 ? undefined : { min: NaN, mean: NaN, max: NaN, non_finite: nonFinite }
  return { min, mean: sum / n, max, ...(nonFinite > 0 ? { non_finite: nonFinite } : {}) }
}

const TIMING_KEY = /^(timing_ms|timings?)$|_(ms|seconds)$/

/**
 * A strategy's info as plain JSON, with its timing entries (`timing_ms`, `timings`, `*_ms`, `*_seconds`) split
 * off: everything else in a decision line must be the same run after run.
 */
export function splitInfo(info: DecisionFacts['info']): { info?: Record<string, unknown>; timings?: Record<string, unknown> } {
  if (info === undefined) return {}
  const plain = JSON.parse(
    JSON.stringify(info, (_k, v: unknown) => (ArrayBuffer.isView(v) ? Array.from(v as unknown as ArrayLike<number>) : v)),
  ) as Record<string, unknown>
  const rest: Record<string, unknown> = {}
  const timings: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(plain)) (TIMING_KEY.test(k) ? timings : rest)[k] = v
  return {
    ...(Object.keys(rest).length > 0 ? { info: rest } : {}),
    ...(Object.keys(timings).length > 0 ? { timings } : {}),
  }
}

/** The decision-log fields of an index set: count and hash always, the indices themselves up to the cap. */
export function indexFields(indices: Int32Array): { count: number; hash: string; indices?: number[] } {
  return {
    count: indices.length,
    hash: hashArrays(indices),
    ...(indices.length <= MAX_LOGGED_INDICES ? { indices: Array.from(indices) } : {}),
  }
}

/** What a strategy answered, as the decision line records it besides the trainer's own fields. */
export interface Answer extends DecisionFacts {
  readonly scores?: ArrayLike<number>
  /** Wall time of the strategy call. */
  readonly ms: number
  /** The trainer's name for that time in `timings` (e.g. `select_ms`). */
  readonly timingKey: string
}

/** One resolved component at run time: its cache folder, its decision lines, its state. */
export class StrategyRuntime {
  readonly key: string
  readonly strategy: string
  private readonly dir: string

  constructor(
    readonly component: ResolvedComponent,
    cfg: Pick<LoadedConfig, 'lf' | 'dataflex' | 'outputDir'>,
    info: Pick<LoadInfo, 'num_train' | 'num_eval' | 'seed'>,
    private readonly runlog: RunLog,
    private readonly sink: (line: string) => void,
  ) {
    this.key = component.key
    this.strategy = component.strategy
    const root = component.cacheRoot ?? join(cfg.outputDir, 'dataflex', 'cache')
    const key = cacheKey({ cfg, component, numTrain: info.num_train, numEval: info.num_eval, seed: info.seed })
    this.dir = join(root, component.key, key)
  }

  /** Created on first use: a run refused before its first decision leaves no folder behind. */
  get cacheDir(): string {
    mkdirSync(this.dir, { recursive: true })
    return this.dir
  }

  /** The strategy's log line, prefixed with its preset key. */
  readonly log = (message: string): void => this.sink(`[${this.key}] ${message}`)

  /** Appends a decision line: the trainer's fields, then the answer's score summary, info and timings. */
  decision(fields: Decision, answer?: Answer): void {
    const scores = answer?.scores ? summarizeScores(answer.scores) : undefined
    const extra = splitInfo(answer?.info)
    this.runlog.decision({
      ...fields,
      ...(scores ? { scores } : {}),
      ...(extra.info ? { info: extra.info } : {}),
      ...(answer ? { timings: { [answer.timingKey]: Math.round(answer.ms * 1000) / 1000, ...extra.timings } } : {}),
    })
  }

  /**
   * Writes the instance's `state()` to `dataflex/state/<key>.json` (atomically) with the step it follows, so a
   * checkpoint has the strategy state beside it. Nothing for a stateless strategy.
   */
  saveState(instance: Stateful, step: number): void {
    if (instance.state === undefined) return
    const state = plainState(instance.state(), `${this.strategy}: state()`)
    this.runlog.writeJson(join('state', `${this.key}.json`), { step, kind: this.component.kind, strategy: this.strategy, state })
  }
}

/** A strategy's (or trainer's) state as plain JSON data, as it will be read back; `what` names it in the error. */
export function plainState(state: unknown, what: string): unknown {
  let json: string | undefined
  try {
    json = JSON.stringify(state)
  } catch (err) {
    throw new StrategyError('bad_state', `${what} must return plain JSON data (${(err as Error).message})`, { cause: err })
  }
  return json === undefined ? null : JSON.parse(json)
}

/** Puts a strategy back to its state at a checkpoint; one with state but no restore() cannot resume exactly. */
export function restoreState(instance: Stateful, state: unknown, who: string): void {
  if (state === null || state === undefined) return
  if (instance.restore === undefined) throw new StrategyError('bad_state', `${who}: the checkpoint holds its state() but it has no restore(), so it cannot resume exactly`)
  try {
    instance.restore(state)
  } catch (err) {
    throw new StrategyError('bad_state', `${who}: restore() failed: ${(err as Error).message}`, { cause: err })
  }
}
