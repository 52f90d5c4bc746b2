/**
 * `cluster_less` selector (docs/algorithms.md#cluster_less): LESS at cluster granularity. Once per run, embed the
 * training set and cluster it; at every update, pick a few representatives per cluster, take LESS gradients for
 * those only, score each cluster by ⟨normalised mean representative gradient, mean eval gradient⟩, and select
 * whole clusters by top-k over the per-sample (= per-cluster) scores.
 *
 * Deliberate differences from the Python DataFlex:
 * - The clustering (ids + each row's distance to its cluster mean) is kept in state()/restore(), so a resumed
 *   run neither re-embeds nor re-clusters; there is no on-disk cache keyed by nothing (DataFlex's stale
 *   `cluster/init/train_cluster_ids.pt`). The embeddings themselves are not kept after clustering.
 * - The clustering is seeded from `seed` via Rng.derive (method-specific streams), representatives from the
 *   run's per-step Rng (ctx.rng) instead of seed + step + 17.
 * - Ties go to the lower index everywhere (top-k, nearest centre, representative ranking), so the part of the
 *   boundary cluster that is selected is its lowest indices (torch left this order unspecified).
 * - Rows of embeddings and gradients are L2-normalised here as well (clamped at 1e-12).
 * - Pools above `minibatch_threshold` rows (docs/select.md#large-pools): the embeddings go to a file under the
 *   strategy's cache folder as they arrive and are read back block by block (deleted after clustering), and
 *   k-means runs mini-batch (Sculley 2010); smaller pools are clustered in memory with Lloyd as before.
 * - `embedding_model_dtype` and `clustering_batch_size` are accepted no-ops (the sidecar loads and batches the
 *   embedding model itself), and `cache_dir` only sets the trainer's cache folder (the clustering lives in
 *   state()); `save_interval` sets the rows projected together (see less).
 */
import { existsSync } from 'node:fs'
import { isAbsolute, join, resolve } from 'node:path'
import { z } from 'zod'
import {
  clusterMembers,
  distanceToClusterMean,
  farthestFirst,
  kmeans,
  lshPartition,
  miniBatchKmeans,
  miniBatchSphericalKmeans,
  randomPartition,
  sphericalKmeans,
  type ClusterMembers,
  type Clustering,
} from '../../math/kmeans.ts'
import type { RowMatrix } from '../../math/linalg.ts'
import { Rng } from '../../math/rng.ts'
import { isRowBlocks, type RowBlocks } from '../../math/rows.ts'
import { uniformWithoutReplacement } from '../../math/sampling.ts'
import { l2NormalizeRows } from '../../math/stats.ts'
import { topK } from '../../math/topk.ts'
import { RowFile } from '../../util/row-file.ts'
import { defineSelector, type GradientOptions, type ModelOps, type SelectContext, type SelectorEnv } from '../types.ts'
import { SelectorError, checkMatrix, decodeFloat32, decodeInt32, encodeArray, nullableDefault, range, since } from './common.ts'
import { forEachGradientChunk, inverseRowNorm, lessParamFields, meanEvalGradient, trainGradientOptions } from './less.ts'

const NAME = 'cluster_less'
/** Rows per embedding request (a reply of ~16 MiB at hidden size 2048). */
const EMBED_CHUNK_ROWS = 2048

const METHOD_ALIASES = {
  kmeans: 'kmeans',
  euclidean_kmeans: 'kmeans',
  spherical_kmeans: 'spherical_kmeans',
  cosine_kmeans: 'spherical_kmeans',
  farthest_first: 'farthest_first',
  kcenter: 'farthest_first',
  k_center: 'farthest_first',
  random_projection_lsh: 'random_projection_lsh',
  lsh: 'random_projection_lsh',
  rp_lsh: 'random_projection_lsh',
  random_partition: 'random_partition',
  random: 'random_partition',
} as const
export type ClusteringMethod = (typeof METHOD_ALIASES)[keyof typeof METHOD_ALIASES]

const STRATEGY_ALIASES = {
  random: 'random',
  rand: 'random',
  nearest: 'nearest',
  nearest_to_centroid: 'nearest',
  center: 'nearest',
  centroid: 'nearest',
  farthest: 'farthest',
  farthest_from_centroid: 'farthest',
  boundary: 'farthest',
  mixed: 'mixed',
  mixed_center_boundary: 'mixed',
  center_boundary: 'mixed',
} as const
export type RepresentativeStrategy = (typeof STRATEGY_ALIASES)[keyof typeof STRATEGY_ALIASES]

type MethodAlias = keyof typeof METHOD_ALIASES
type StrategyAlias = keyof typeof STRATEGY_ALIASES
const METHOD_NAMES = Object.keys(METHOD_ALIASES) as [MethodAlias, ...MethodAlias[]]
const STRATEGY_NAMES = Object.keys(STRATEGY_ALIASES) as [StrategyAlias, ...StrategyAlias[]]

/** DataFlex lower-cases these names, so they are case-insensitive here too. */
const lowered = z.string().transform((s) => s.trim().toLowerCase())

export const ClusterLessParamsSchema = z.strictObject({
  ...lessParamFields,
  proj_dim: z.int().positive().default(4096).describe('random-projection dimension d'),
  cluster_size: z.int().positive().default(64).describe('target samples per cluster: k = ceil(N / cluster_size)'),
  num_clusters: nullableDefault(z.int().positive()).describe('explicit k (overrides cluster_size)'),
  samples_per_cluster: z.int().positive().default(3).describe('representatives per cluster and update'),
  clustering_batch_size: z.int().positive().default(8).describe('accepted for DataFlex compatibility; no-op'),
  clustering_max_iter: z.int().min(0).default(20).describe('k-means iterations (at least one runs)'),
  assignment_chunk_size: z.int().positive().default(4096).describe('rows per distance block in k-means'),
  minibatch_threshold: z
    .int()
    .positive()
    .default(10000)
    .describe('above this many training rows: embeddings kept in a file under the cache folder, k-means run mini-batch; at or below: in memory, Lloyd'),
  minibatch_size: z.int().positive().default(1024).describe('rows per mini-batch of mini-batch k-means'),
  minibatch_iter: z.int().positive().default(100).describe('mini-batches drawn by mini-batch k-means'),
  clustering_method: lowered
    .pipe(z.enum(METHOD_NAMES))
    .transform((s) => METHOD_ALIASES[s])
    // prefault: the default is an input, run through the aliases, and listed by `dataflex components`.
    .prefault('kmeans')
    .describe(`clustering method: one of ${METHOD_NAMES.join(', ')}`),
  representative_strategy: lowered
    .pipe(z.enum(STRATEGY_NAMES))
    .transform((s) => STRATEGY_ALIASES[s])
    .prefault('random')
    .describe(`representative strategy: one of ${STRATEGY_NAMES.join(', ')}`),
  lsh_num_bits: nullableDefault(z.int().positive()).describe('LSH hyperplanes (default ceil(log2 k), capped at 30)'),
  embedding_model_name_or_path: nullableDefault(z.string().min(1).meta({ path: 'model_or_id' })).describe(
    'a separate model to embed with (a local folder, else a model id); null: the training model',
  ),
  embedding_model_dtype: z.enum(['auto', 'fp16', 'bf16', 'fp32']).default('auto').describe('accepted for DataFlex compatibility; no-op'),
  embedding_layer: z.int().default(-1).describe('hidden-state layer (-1: last)'),
})
export type ClusterLessParams = z.output<typeof ClusterLessParamsSchema>

/** The run's clustering: what state() keeps. */
interface Clusters {
  readonly k: number
  readonly method: ClusteringMethod
  readonly assign: Int32Array
  /** Euclidean distance of each row's embedding to its cluster's mean embedding. */
  readonly centroidDist: Float32Array
  readonly members: ClusterMembers
  readonly iterations: number
  readonly reseeded: number
}

/** k = clamp(num_clusters ?? ceil(N / cluster_size), 1, N). */
export function clusterCount(n: number, params: Pick<ClusterLessParams, 'num_clusters' | 'cluster_size'>): number {
  const k = params.num_clusters ?? Math.ceil(n / params.cluster_size)
  return Math.min(Math.max(1, k), Math.max(1, n))
}

/**
 * Runs the configured clustering on unit-length embeddings. k-means is Lloyd for an in-memory matrix of at most
 * `minibatch_threshold` rows and mini-batch otherwise; the other methods read row blocks either way.
 */
export function runClustering(emb: RowMatrix | RowBlocks, k: number, params: ClusterLessParams): Clustering {
  const method = params.clustering_method
  // One stream per method, so switching methods does not shift another method's draws.
  const rng = Rng.derive(params.seed, NAME, 'clustering', method)
  const lloyd = !isRowBlocks(emb) && emb.rows <= params.minibatch_threshold ? emb : null
  const lloydOpts = { rng, maxIter: params.clustering_max_iter, chunkRows: params.assignment_chunk_size }
  const miniOpts = { rng, iterations: params.minibatch_iter, batchSize: params.minibatch_size, blockRows: params.assignment_chunk_size }
  switch (method) {
    case 'kmeans':
      return lloyd ? kmeans(lloyd, k, lloydOpts) : miniBatchKmeans(emb, k, miniOpts)
    case 'spherical_kmeans':
      return lloyd ? sphericalKmeans(lloyd, k, lloydOpts) : miniBatchSphericalKmeans(emb, k, miniOpts)
    case 'farthest_first':
      return farthestFirst(emb, k, rng)
    case 'random_projection_lsh':
      return lshPartition(emb, k, rng, params.lsh_num_bits ?? undefined)
    case 'random_partition':
      return randomPartition(emb.rows, k, rng)
  }
}

/**
 * The training set's unit-length embeddings, fetched in chunks: a heap matrix for at most `minibatch_threshold`
 * rows, else a RowFile under `cacheDir` written chunk by chunk (the caller disposes of it).
 */
async function embedTrainingSet(model: ModelOps, params: ClusterLessParams, env: SelectorEnv, cacheDir: string): Promise<RowMatrix | RowFile> {
  const n = model.numTrain
  const path = params.embedding_model_name_or_path
  // The registry hands over a found local folder absolute (input-paths.ts) and a model id as written; a relative
  // path from a direct create() is read against baseDir when it exists there.
  const resolved = path === null ? undefined : !isAbsolute(path) && existsSync(resolve(env.baseDir, path)) ? resolve(env.baseDir, path) : path
  const opts = { layer: params.embedding_layer, pooling: 'mask_mean', normalize: true, ...(resolved === undefined ? {} : { model: resolved }) } as const
  const onDisk = n > params.minibatch_threshold
  let out: Float32Array | null = null
  let file: RowFile | null = null
  let cols = 0
  try {
    for (let off = 0; off < n; off += EMBED_CHUNK_ROWS) {
      const idx = range(off, Math.min(n, off + EMBED_CHUNK_ROWS))
      const first = off === 0
      const m = checkMatrix(NAME, await model.embeddings('train', idx, opts), idx.length, first ? undefined : cols)
      if (first) cols = m.cols
      if (onDisk) {
        file ??= RowFile.create(join(cacheDir, 'cluster_less-embeddings.f32'), cols)
        const rows = Float32Array.from(m.data)
        l2NormalizeRows(rows, m.rows, cols)
        file.append(rows)
      } else {
        out ??= new Float32Array(n * cols)
        out.set(m.data, off * cols)
      }
    }
  } catch (err) {
    file?.dispose()
    throw err
  }
  if (file !== null) return file
  const data = out ?? new Float32Array(0)
  l2NormalizeRows(data, n, cols)
  return { data, rows: n, cols }
}

/**
 * Representatives of every cluster (at most `perCluster` each), grouped by cluster in ascending cluster order.
 * Returns the row indices and, parallel to them, their cluster ids.
 */
export function pickRepresentatives(
  clusters: Pick<Clusters, 'k' | 'members' | 'centroidDist'>,
  strategy: RepresentativeStrategy,
  perCluster: number,
  rng: Rng,
): { indices: Int32Array; cluster: Int32Array } {
  const { offsets, members } = clusters.members
  const dist = clusters.centroidDist
  const picked: number[] = []
  const owner: number[] = []
  for (let c = 0; c < clusters.k; c++) {
    const m = members.subarray(offsets[c]!, offsets[c + 1]!)
    const take = Math.min(perCluster, m.length)
    if (take === 0) continue
    let chosen: Int32Array
    if (strategy === 'random') {
      const pos = uniformWithoutReplacement(rng, m.length, take)
      chosen = new Int32Array(take)
      for (let j = 0; j < take; j++) chosen[j] = m[pos[j]!]!
    } else {
      const near = Int32Array.from(m).sort((a, b) => dist[a]! - dist[b]! || a - b)
      if (strategy === 'nearest') chosen = near.slice(0, take)
      else {
        const far = Int32Array.from(m).sort((a, b) => dist[b]! - dist[a]! || a - b)
        if (strategy === 'farthest') chosen = far.slice(0, take)
        else chosen = interleaveUnique(near, far, take)
      }
    }
    for (let j = 0; j < chosen.length; j++) {
      picked.push(chosen[j]!)
      owner.push(c)
    }
  }
  return { indices: Int32Array.from(picked), cluster: Int32Array.from(owner) }
}

/** near[0], far[0], near[1], far[1], … without repeats, until `take` items. */
function interleaveUnique(near: Int32Array, far: Int32Array, take: number): Int32Array {
  const out = new Int32Array(take)
  const seen = new Set<number>()
  let n = 0
  for (let j = 0; j < near.length && n < take; j++) {
    for (const v of [near[j]!, far[j]!]) {
      if (n < take && !seen.has(v)) {
        seen.add(v)
        out[n++] = v
      }
    }
  }
  return out
}

/**
 * Cluster scores from the representatives' gradients, streamed in cluster order:
 * score_c = ⟨Σ ĝ_r / ‖Σ ĝ_r‖, ē⟩ over c's representatives (the mean re-normalised is the sum re-normalised);
 * 0 for clusters without representatives or with a zero sum.
 */
async function clusterScores(
  ctx: SelectContext,
  reps: { indices: Int32Array; cluster: Int32Array },
  k: number,
  evalMean: Float64Array,
  opts: GradientOptions,
): Promise<Float64Array> {
  const d = opts.projDim
  const scores = new Float64Array(k)
  const sum = new Float64Array(d)
  let current = -1
  const finish = (): void => {
    if (current < 0) return
    let nn = 0
    let dot = 0
    for (let c = 0; c < d; c++) {
      nn += sum[c]! ** 2
      dot += sum[c]! * evalMean[c]!
    }
    scores[current] = dot / Math.max(Math.sqrt(nn), 1e-12)
    sum.fill(0)
  }
  await forEachGradientChunk(ctx.model, NAME, 'train', reps.indices, opts, (off, m) => {
    for (let r = 0; r < m.rows; r++) {
      const c = reps.cluster[off + r]!
      if (c !== current) {
        finish()
        current = c
      }
      const inv = inverseRowNorm(m, r)
      for (let t = 0; t < d; t++) sum[t] = sum[t]! + m.data[r * d + t]! * inv
    }
  })
  finish()
  return scores
}

const StateSchema = z.strictObject({
  version: z.literal(1),
  num_train: z.int().min(0),
  k: z.int().positive(),
  method: z.enum(['kmeans', 'spherical_kmeans', 'farthest_first', 'random_projection_lsh', 'random_partition']),
  iterations: z.int().min(0),
  reseeded: z.int().min(0),
  cluster_ids: z.string().describe('base64 int32'),
  centroid_dist: z.string().describe('base64 float32'),
})

export const clusterLessSelector = defineSelector({
  name: NAME,
  description: 'Cluster-LESS: cluster embeddings once, score clusters by LESS gradients of a few representatives, select whole clusters',
  params: ClusterLessParamsSchema,
  create(params, env) {
    let clusters: Clusters | null = null

    return {
      async select(ctx) {
        const t0 = performance.now()
        const n = ctx.model.numTrain
        if (n === 0) throw new SelectorError(NAME, 'insufficient_candidates', 'cannot cluster an empty training set')
        const cacheHit = clusters !== null && clusters.assign.length === n
        let embeddingMs = 0
        let clusteringMs = 0
        let embeddingsOnDisk = false
        if (!cacheHit) {
          const emb = await embedTrainingSet(ctx.model, params, env, ctx.cacheDir)
          embeddingsOnDisk = emb instanceof RowFile
          embeddingMs = since(t0)
          const t1 = performance.now()
          try {
            const k = clusterCount(n, params)
            const result = runClustering(emb, k, params)
            clusters = {
              k,
              method: params.clustering_method,
              assign: result.assign,
              centroidDist: Float32Array.from(distanceToClusterMean(emb, result.assign, k, params.assignment_chunk_size)),
              members: clusterMembers(result.assign, k),
              iterations: result.iterations,
              reseeded: result.reseeded,
            }
          } finally {
            if (emb instanceof RowFile) emb.dispose()
          }
          clusteringMs = since(t1)
        }
        const cl = clusters!

        const t2 = performance.now()
        const reps = pickRepresentatives(cl, params.representative_strategy, params.samples_per_cluster, ctx.rng)
        const repMs = since(t2)

        const t3 = performance.now()
        const opts = trainGradientOptions(params)
        const evalMean = await meanEvalGradient(ctx.model, NAME, opts)
        const evalMs = since(t3)

        const t4 = performance.now()
        const perCluster = await clusterScores(ctx, reps, cl.k, evalMean, opts)
        const gradMs = since(t4)

        const t5 = performance.now()
        const perSample = new Float64Array(n)
        for (let i = 0; i < n; i++) perSample[i] = perCluster[cl.assign[i]!]!
        const k = Math.min(ctx.numSamples, n)
        if (k < ctx.numSamples) ctx.log(`${NAME}: ${ctx.numSamples} samples requested, the training set has ${n}; selecting all`)
        const indices = topK(perSample, k)
        const scores = new Float64Array(k)
        const chosenClusters = new Set<number>()
        for (let i = 0; i < k; i++) {
          scores[i] = perSample[indices[i]!]!
          chosenClusters.add(cl.assign[indices[i]!]!)
        }
        let nonEmpty = 0
        for (let c = 0; c < cl.k; c++) if (cl.members.offsets[c + 1]! > cl.members.offsets[c]!) nonEmpty++
        return {
          indices,
          scores,
          metric: 'cluster_less_score',
          info: {
            method: 'cluster_less',
            clustering_method: cl.method,
            representative_strategy: params.representative_strategy,
            num_clusters: cl.k,
            non_empty_clusters: nonEmpty,
            clusters_selected: chosenClusters.size,
            num_representatives: reps.indices.length,
            samples_per_cluster: params.samples_per_cluster,
            embedding_layer: params.embedding_layer,
            kmeans_iterations: cl.iterations,
            reseeded: cl.reseeded,
            gradient_type: params.gradient_type,
            proj_dim: params.proj_dim,
            cluster_cache_hit: cacheHit,
            embeddings_on_disk: embeddingsOnDisk,
            timing_ms: {
              embedding: embeddingMs,
              clustering: clusteringMs,
              representative_sampling: repMs,
              eval_gradients: evalMs,
              representative_gradients: gradMs,
              scoring: since(t5),
              total: since(t0),
            },
          },
        }
      },

      state() {
        if (clusters === null) return null
        return {
          version: 1,
          num_train: clusters.assign.length,
          k: clusters.k,
          method: clusters.method,
          iterations: clusters.iterations,
          reseeded: clusters.reseeded,
          cluster_ids: encodeArray(clusters.assign),
          centroid_dist: encodeArray(clusters.centroidDist),
        } satisfies z.input<typeof StateSchema>
      },

      restore(state) {
        if (state === null || state === undefined) {
          clusters = null
          return
        }
        const parsed = StateSchema.safeParse(state)
        if (!parsed.success) throw new SelectorError(NAME, 'bad_state', `unreadable state: ${parsed.error.message}`)
        const s = parsed.data
        if (s.method !== params.clustering_method) {
          throw new SelectorError(NAME, 'bad_state', `state was clustered with ${s.method}, the params say ${params.clustering_method}`)
        }
        let assign: Int32Array
        let centroidDist: Float32Array
        try {
          assign = decodeInt32(s.cluster_ids)
          centroidDist = decodeFloat32(s.centroid_dist)
        } catch (err) {
          throw new SelectorError(NAME, 'bad_state', 'corrupt cluster arrays in state', { cause: err })
        }
        if (assign.length !== env.numTrain || centroidDist.length !== env.numTrain || s.num_train !== env.numTrain) {
          throw new SelectorError(NAME, 'bad_state', `state covers ${assign.length} samples, the training set has ${env.numTrain}`)
        }
        let members: ClusterMembers
        try {
          members = clusterMembers(assign, s.k)
        } catch (err) {
          throw new SelectorError(NAME, 'bad_state', 'cluster ids out of range in state', { cause: err })
        }
        clusters = { k: s.k, method: s.method, assign, centroidDist, members, iterations: s.iterations, reseeded: s.reseeded }
      },
    }
  },
})
