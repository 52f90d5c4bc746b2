/**
 * `dataflex prepare` options: what the command line gives, validated into typed settings. Every problem is a
 * ConfigError (exit 2) naming the flag.
 */
import { existsSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { z } from 'zod'
import { ConfigError } from '../config/errors.ts'
import { issueAt } from '../config/issues.ts'
import { TSDS_DEFAULTS } from './tsds.ts'

export const PREPARE_METHODS = ['near', 'tsds'] as const
export type PrepareMethod = (typeof PREPARE_METHODS)[number]

/** offline_near's max_K. */
export const NEAR_DEFAULT_K = 1000

/** Raw commander options (strings as typed). */
export interface PrepareCliOptions {
  out?: string
  queries?: string
  embedModel?: string
  k?: string
  batchSize?: string
  kdeK?: string
  sigma?: string
  alpha?: string
  c?: string
}

export interface PrepareSettings {
  readonly method: PrepareMethod
  readonly configPath: string
  readonly overrides: readonly string[]
  /** Absolute path of the .npy to write. */
  readonly out: string
  /** 'eval': the config's eval set; else a dataset name from dataset_info.json, preprocessed like the eval set. */
  readonly queries: string
  /** Absolute path of a separate local embedding model; undefined: the run's model. */
  readonly embedModel: string | undefined
  /** Neighbours per query before capping at the pool size. */
  readonly k: number
  /** Embedding batch size; undefined: the run's per_device_eval_batch_size. */
  readonly batchSize: number | undefined
  readonly kdeK: number
  readonly sigma: number
  readonly alpha: number
  readonly c: number
}

const positiveInt = z.coerce.number().int().positive()
const nonNegative = z.coerce.number().min(0).refine(Number.isFinite, 'must be finite')

function parseFlag<T>(flag: string, schema: z.ZodType<T>, raw: string | undefined, fallback: T): T {
  if (raw === undefined) return fallback
  const r = schema.safeParse(raw)
  if (!r.success) {
    throw new ConfigError('bad_value', `bad value for ${flag}: '${raw}'; ${issueAt(r.error, raw).issue.message}`, { key: flag })
  }
  return r.data
}

export function parsePrepareOptions(
  method: string,
  configPath: string,
  overrides: readonly string[],
  raw: PrepareCliOptions,
  cwd: string = process.cwd(),
): PrepareSettings {
  if (!(PREPARE_METHODS as readonly string[]).includes(method)) {
    throw new ConfigError('bad_value', `unknown prepare method '${method}'`, { hint: `use one of: ${PREPARE_METHODS.join(', ')}` })
  }
  const m = method as PrepareMethod
  if (raw.out === undefined || raw.out === '') {
    throw new ConfigError('bad_value', 'missing --out <file.npy>', { key: '--out', hint: `e.g. --out ${m === 'near' ? 'top_indices' : 'tsds_probs'}.npy` })
  }
  const out = resolve(cwd, raw.out)
  if (existsSync(out) && statSync(out).isDirectory()) {
    throw new ConfigError('bad_value', `--out ${raw.out} is a directory; give a file path`, { key: '--out' })
  }
  if (m === 'near') {
    for (const [flag, value] of [['--kde-k', raw.kdeK], ['--sigma', raw.sigma], ['--alpha', raw.alpha], ['--c', raw.c]] as const) {
      if (value !== undefined) throw new ConfigError('bad_value', `${flag} applies to 'prepare tsds' only`, { key: flag })
    }
  }
  let embedModel: string | undefined
  if (raw.embedModel !== undefined) {
    embedModel = resolve(cwd, raw.embedModel)
    if (!existsSync(embedModel) || !statSync(embedModel).isDirectory()) {
      throw new ConfigError('model_not_found', `--embed-model ${raw.embedModel} is not a local model directory`, { key: '--embed-model' })
    }
  }
  const queries = raw.queries ?? 'eval'
  if (queries === '') throw new ConfigError('bad_value', "--queries must be 'eval' or a dataset name", { key: '--queries' })
  const alpha = parseFlag('--alpha', nonNegative.max(1, 'must be in [0, 1]'), raw.alpha, TSDS_DEFAULTS.alpha)
  return {
    method: m,
    configPath,
    overrides,
    out,
    queries,
    embedModel,
    k: parseFlag('--k', positiveInt, raw.k, m === 'near' ? NEAR_DEFAULT_K : TSDS_DEFAULTS.k),
    batchSize: parseFlag<number | undefined>('--batch-size', positiveInt, raw.batchSize, undefined),
    kdeK: parseFlag('--kde-k', positiveInt, raw.kdeK, TSDS_DEFAULTS.kdeK),
    sigma: parseFlag('--sigma', nonNegative, raw.sigma, TSDS_DEFAULTS.sigma),
    alpha,
    c: parseFlag('--c', z.coerce.number().positive('must be > 0').refine(Number.isFinite, 'must be finite'), raw.c, TSDS_DEFAULTS.c),
  }
}
