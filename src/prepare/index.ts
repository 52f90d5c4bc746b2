/**
 * `dataflex prepare near|tsds`: the offline halves of the near and tsds selectors
 * (docs/algorithms.md#offline-half-dataflex-prepare-near, #offline-half-dataflex-prepare-tsds), computed against the
 * run's own preprocessed train set.
 *
 * near → an int32 [M × K] .npy of each query's K nearest train rows, nearest first (near's `indices_path`).
 * tsds → a float64 [N] .npy of sampling probabilities (tsds's `probs_path`).
 * Both get `<out>.json`: params, sizes, result stats, timings, and hashes of the config, model and data.
 */
import { basename } from 'node:path'
import { loadConfig, type LoadedConfig } from '../config/index.ts'
import { hashArrays } from '../math/hash.ts'
import { writeNpy } from '../strategies/npy.ts'
import { writeJsonAtomic } from '../util/atomic.ts'
import { canonicalJson } from '../util/canonical-json.ts'
import { embedPoolAndQueries } from './embed.ts'
import { datasetFingerprint, modelFingerprint, queryDatasets, sha256, trainDatasets } from './fingerprint.ts'
import { exactKnn } from './knn.ts'
import type { PrepareSettings } from './options.ts'
import { tsdsProbabilities } from './tsds.ts'

export { PrepareError } from './embed.ts'
export { parsePrepareOptions, PREPARE_METHODS, type PrepareCliOptions, type PrepareMethod, type PrepareSettings } from './options.ts'

export interface PrepareSummary {
  readonly out: string
  readonly meta: string
  readonly shape: readonly number[]
  readonly dtype: '<i4' | '<f8'
  readonly seconds: number
  readonly stats: Readonly<Record<string, number | boolean>>
}

export interface PrepareHooks {
  readonly log?: (line: string) => void
  readonly signal?: AbortSignal
  readonly env?: NodeJS.ProcessEnv
  readonly onWarning?: (message: string) => void
  readonly python?: string
}

export async function runPrepare(settings: PrepareSettings, hooks: PrepareHooks = {}): Promise<PrepareSummary> {
  const t0 = performance.now()
  const log = hooks.log ?? (() => {})
  const cfg: LoadedConfig = await loadConfig(settings.configPath, [...settings.overrides], {
    env: hooks.env,
    onWarning: hooks.onWarning,
  })
  hooks.signal?.throwIfAborted()
  // LLaMA-Factory resolves relative model and dataset paths against the working directory, as loadConfig does.
  const cwd = process.cwd()

  log(`prepare ${settings.method}: embedding the train pool and the queries (${settings.queries})`)
  const emb = await embedPoolAndQueries(cfg, {
    queries: settings.queries,
    embedModel: settings.embedModel,
    batchSize: settings.batchSize,
    signal: hooks.signal,
    log,
    python: hooks.python,
  })
  const n = emb.train.rows
  const m = emb.queries.rows
  const k = Math.min(settings.k, n)
  log(`embedded ${n} train and ${m} query rows (dim ${emb.train.cols})`)

  const t1 = performance.now()
  let shape: number[]
  let dtype: '<i4' | '<f8'
  let stats: Record<string, number | boolean>
  let params: Record<string, number>
  if (settings.method === 'near') {
    const nb = exactKnn(emb.queries, emb.train, k)
    shape = [m, k]
    dtype = '<i4'
    params = { k }
    stats = { distinct: new Set(nb.indices).size }
    writeNpy(settings.out, nb.indices, shape, dtype)
  } else {
    const r = tsdsProbabilities(emb.queries, emb.train, { k, kdeK: settings.kdeK, sigma: settings.sigma, alpha: settings.alpha, c: settings.c })
    shape = [n]
    dtype = '<f8'
    params = { k: r.k, kde_k: r.kdeK, sigma: settings.sigma, alpha: settings.alpha, c: settings.c }
    let filled = 0
    for (const v of r.lastK) filled += v + 2 // ranks 0..lastK at the level, plus the leftover's rank
    stats = {
      level: r.level,
      pops: r.pops,
      stopped: r.stopped,
      distinct: r.distinct,
      support: r.support,
      mean_neighbourhood: filled / m,
    }
    writeNpy(settings.out, r.probs, shape, dtype)
  }
  const computeSeconds = (performance.now() - t1) / 1000

  const model = settings.embedModel ?? String(cfg.lf['model_name_or_path'] ?? '')
  const meta = {
    format: 'dataflex-prepare/1',
    method: settings.method,
    output: basename(settings.out),
    shape,
    dtype,
    created: new Date().toISOString(),
    config: { path: cfg.path, overrides: settings.overrides, sha256: sha256(canonicalJson(cfg.lf)) },
    model: { ...modelFingerprint(model, cwd), role: settings.embedModel ? 'embed_model' : 'run_model' },
    data: {
      train: {
        rows: n,
        datasets: trainDatasets(cfg.lf),
        sha256: datasetFingerprint(cfg.lf, trainDatasets(cfg.lf), cwd),
        embeddings_sha256: hashArrays(emb.train.data),
      },
      queries: {
        source: settings.queries,
        rows: m,
        datasets: queryDatasets(cfg.lf, settings.queries),
        sha256: datasetFingerprint(cfg.lf, queryDatasets(cfg.lf, settings.queries), cwd),
        embeddings_sha256: hashArrays(emb.queries.data),
      },
    },
    embedding: { layer: -1, pooling: 'mask_mean', normalize: true, dim: emb.train.cols, batch_size: settings.batchSize ?? null },
    params,
    stats,
    timing_s: {
      load: round(emb.seconds.load),
      embed_train: round(emb.seconds.train),
      embed_queries: round(emb.seconds.queries),
      compute: round(computeSeconds),
      total: round((performance.now() - t0) / 1000),
    },
  }
  const metaFile = metaPath(settings.out)
  writeJsonAtomic(metaFile, meta)
  return { out: settings.out, meta: metaFile, shape, dtype, seconds: (performance.now() - t0) / 1000, stats }
}

/** The JSON record that sits next to `<out>`. */
function metaPath(out: string): string {
  return `${out}.json`
}

function round(s: number): number {
  return Math.round(s * 1000) / 1000
}
