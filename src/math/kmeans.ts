/**
 * Partitioning of row vectors into k groups (docs/algorithms.md#clustering-methods): Euclidean and spherical k-means
 * (Lloyd in memory, mini-batch over row blocks), farthest-first (k-center), random-hyperplane LSH and a random
 * partition. All randomness comes from the Rng passed in; ties go to the lower centre index, so a clustering is a
 * pure function of (data, k, seed). Everything but Lloyd reads its rows block by block (RowBlocks), so the rows
 * may live in a file.
 */
import { forEachSqDistChunk, type RowMatrix } from './linalg.ts'
import type { Rng } from './rng.ts'
import { asRowBlocks, copyRowInto, forEachRowBlock, inMemoryRows, type RowBlocks } from './rows.ts'

/** Rows per block where a caller does not say (a block of 4096 rows of 8192 floats is 128 MiB as float32). */
const DEFAULT_BLOCK_ROWS = 4096

export interface Clustering {
  /** Cluster id of each row, in [0, k). */
  readonly assign: Int32Array
  readonly k: number
  /** Lloyd iterations run (0 for the non-iterative methods). */
  readonly iterations: number
  /** Empty clusters re-seeded with a random row. */
  readonly reseeded: number
}

export interface KMeansOptions {
  readonly rng: Rng
  /** Lloyd iterations at most; at least one is always run. Stops early once assignments stop changing. */
  readonly maxIter: number
  /** Rows per distance block (bounds memory at chunkRows × k). */
  readonly chunkRows?: number
}

function checkK(n: number, k: number): void {
  if (!Number.isInteger(k) || k < 1 || k > Math.max(1, n)) throw new RangeError(`k must be in [1, ${n}], got ${k}`)
}

/** Sums and counts of the rows per cluster (rows visited in order, so a block size does not change a sum). */
function clusterSums(src: RowBlocks, assign: Int32Array, k: number): { sums: Float64Array; counts: Int32Array } {
  const d = src.cols
  const sums = new Float64Array(k * d)
  const counts = new Int32Array(k)
  forEachRowBlock(src, DEFAULT_BLOCK_ROWS, (start, blk) => {
    for (let r = 0; r < blk.rows; r++) {
      const c = assign[start + r]!
      counts[c] = counts[c]! + 1
      const so = c * d
      const xo = r * d
      for (let t = 0; t < d; t++) sums[so + t] = sums[so + t]! + blk.data[xo + t]!
    }
  })
  return { sums, counts }
}

/** Nearest centre by squared Euclidean distance; returns how many assignments changed. */
function assignEuclidean(x: RowMatrix, centres: RowMatrix, assign: Int32Array, chunkRows: number): number {
  let changed = 0
  const k = centres.rows
  forEachSqDistChunk(x, centres, chunkRows, (start, count, dist) => {
    for (let r = 0; r < count; r++) {
      const off = r * k
      let best = 0
      let bestD = dist[off]!
      for (let j = 1; j < k; j++) {
        const v = dist[off + j]!
        if (v < bestD) {
          bestD = v
          best = j
        }
      }
      if (assign[start + r] !== best) changed++
      assign[start + r] = best
    }
  })
  return changed
}

/** Largest dot product with a (unit) centre; returns how many assignments changed. */
function assignCosine(x: RowMatrix, centres: Float64Array, k: number, assign: Int32Array): number {
  const d = x.cols
  let changed = 0
  for (let i = 0; i < x.rows; i++) {
    const xo = i * d
    let best = 0
    let bestS = -Infinity
    for (let j = 0; j < k; j++) {
      const co = j * d
      let s = 0
      for (let t = 0; t < d; t++) s += x.data[xo + t]! * centres[co + t]!
      if (s > bestS) {
        bestS = s
        best = j
      }
    }
    if (assign[i] !== best) changed++
    assign[i] = best
  }
  return changed
}

function normalizeRowInPlace(m: Float64Array, j: number, d: number): number {
  let s = 0
  for (let t = 0; t < d; t++) s += m[j * d + t]! ** 2
  const norm = Math.sqrt(s)
  if (norm > 0) for (let t = 0; t < d; t++) m[j * d + t] = m[j * d + t]! / norm
  return norm
}

function lloyd(x: RowMatrix, k: number, opts: KMeansOptions, spherical: boolean): Clustering {
  const n = x.rows
  const d = x.cols
  checkK(n, k)
  const chunkRows = opts.chunkRows ?? 4096
  const rows = inMemoryRows(x)
  const centres = new Float64Array(k * d)
  // Initial centres: the first k rows of a seeded permutation (distinct rows, like DataFlex's randperm[:k]).
  const perm = opts.rng.permutation(n)
  for (let j = 0; j < k; j++) {
    copyRowInto(rows, perm[j]!, centres, j)
    if (spherical) normalizeRowInPlace(centres, j, d)
  }
  const centreMatrix: RowMatrix = { data: centres, rows: k, cols: d }
  const assign = new Int32Array(n).fill(-1)
  const reassign = (): number =>
    spherical ? assignCosine(x, centres, k, assign) : assignEuclidean(x, centreMatrix, assign, chunkRows)

  const maxIter = Math.max(1, Math.floor(opts.maxIter))
  let iterations = 0
  let reseeded = 0
  let converged = false
  for (let it = 0; it < maxIter; it++) {
    const changed = reassign()
    iterations++
    const { sums, counts } = clusterSums(rows, assign, k)
    let empty = 0
    for (let j = 0; j < k; j++) {
      const cnt = counts[j]!
      if (cnt > 0) {
        for (let t = 0; t < d; t++) centres[j * d + t] = sums[j * d + t]! / cnt
        // A spherical mean of zero length carries no direction: treat it like an empty cluster.
        if (!spherical || normalizeRowInPlace(centres, j, d) > 0) continue
      }
      copyRowInto(rows, opts.rng.int(n), centres, j)
      if (spherical) normalizeRowInPlace(centres, j, d)
      empty++
    }
    reseeded += empty
    // Unchanged assignments and no re-seeding: the centres are a fixed point, further rounds change nothing.
    if (it > 0 && changed === 0 && empty === 0) {
      converged = true
      break
    }
  }
  if (!converged) reassign()
  return { assign, k, iterations, reseeded }
}

/** Euclidean k-means (Lloyd), seeded initial centres, chunked assignment, empty clusters re-seeded. */
export function kmeans(x: RowMatrix, k: number, opts: KMeansOptions): Clustering {
  return lloyd(x, k, opts, false)
}

/** Spherical k-means: unit centres, assignment by largest dot product (rows are expected to be unit length). */
export function sphericalKmeans(x: RowMatrix, k: number, opts: KMeansOptions): Clustering {
  return lloyd(x, k, opts, true)
}

export interface MiniBatchOptions {
  readonly rng: Rng
  /** Mini-batches drawn (Sculley's t); at least one. */
  readonly iterations: number
  /** Rows per mini-batch (b), drawn uniformly with replacement; capped at the row count. */
  readonly batchSize: number
  /** Rows per block of the final assignment pass (memory only). */
  readonly blockRows?: number
}

/** Nearest centre of the row at `off` in `x`: least Σ(x − c)², or largest dot product when spherical; ties low. */
function nearestCentre(x: Float32Array | Float64Array, off: number, centres: Float64Array, k: number, d: number, spherical: boolean): number {
  let best = 0
  let bestV = spherical ? -Infinity : Infinity
  for (let j = 0; j < k; j++) {
    const co = j * d
    let s = 0
    if (spherical) {
      for (let t = 0; t < d; t++) s += x[off + t]! * centres[co + t]!
      if (s > bestV) {
        bestV = s
        best = j
      }
    } else {
      for (let t = 0; t < d; t++) {
        const diff = x[off + t]! - centres[co + t]!
        s += diff * diff
      }
      if (s < bestV) {
        bestV = s
        best = j
      }
    }
  }
  return best
}

function miniBatch(src: RowBlocks, k: number, opts: MiniBatchOptions, spherical: boolean): Clustering {
  const n = src.rows
  const d = src.cols
  checkK(n, k)
  const centres = new Float64Array(k * d)
  // The same initial centres as Lloyd: the first k rows of a seeded permutation.
  const perm = opts.rng.permutation(n)
  for (let j = 0; j < k; j++) {
    copyRowInto(src, perm[j]!, centres, j)
    if (spherical) normalizeRowInPlace(centres, j, d)
  }
  const seen = new Float64Array(k)
  const b = Math.max(1, Math.min(Math.floor(opts.batchSize), n))
  const batch = new Float64Array(b * d)
  const near = new Int32Array(b)
  const iterations = Math.max(1, Math.floor(opts.iterations))
  for (let it = 0; it < iterations; it++) {
    for (let r = 0; r < b; r++) copyRowInto(src, opts.rng.int(n), batch, r)
    // Sculley 2010: every row of the batch is assigned with the centres as they were before the batch ...
    for (let r = 0; r < b; r++) near[r] = nearestCentre(batch, r * d, centres, k, d, spherical)
    // ... then each one pulls its centre by a per-centre rate 1/(rows that centre has taken so far).
    for (let r = 0; r < b; r++) {
      const c = near[r]!
      seen[c] = seen[c]! + 1
      const eta = 1 / seen[c]!
      const co = c * d
      for (let t = 0; t < d; t++) centres[co + t] = (1 - eta) * centres[co + t]! + eta * batch[r * d + t]!
      if (spherical) normalizeRowInPlace(centres, c, d)
    }
  }
  const assign = new Int32Array(n)
  forEachRowBlock(src, opts.blockRows ?? DEFAULT_BLOCK_ROWS, (start, blk) => {
    for (let r = 0; r < blk.rows; r++) assign[start + r] = nearestCentre(blk.data, r * d, centres, k, d, spherical)
  })
  return { assign, k, iterations, reseeded: 0 }
}

/**
 * Mini-batch Euclidean k-means (Sculley 2010) over row blocks: `iterations` batches of `batchSize` random rows,
 * per-centre learning rates, then one assignment pass over all rows. Cost O(iterations·b·k·d + N·k·d), memory
 * O(k·d + b·d + one block). Centres are never re-seeded, so a cluster may end empty.
 */
export function miniBatchKmeans(x: RowMatrix | RowBlocks, k: number, opts: MiniBatchOptions): Clustering {
  return miniBatch(asRowBlocks(x), k, opts, false)
}

/** Mini-batch spherical k-means: as miniBatchKmeans, each centre re-normalised after its update, dot-product assignment. */
export function miniBatchSphericalKmeans(x: RowMatrix | RowBlocks, k: number, opts: MiniBatchOptions): Clustering {
  return miniBatch(asRowBlocks(x), k, opts, true)
}

/**
 * Farthest-first traversal (greedy k-center): a random first centre, then repeatedly the row farthest from all
 * chosen centres (ties to the lower row, chosen rows excluded); every row joins its nearest centre.
 */
export function farthestFirst(x: RowMatrix | RowBlocks, k: number, rng: Rng, blockRows = DEFAULT_BLOCK_ROWS): Clustering {
  const src = asRowBlocks(x)
  const n = src.rows
  const d = src.cols
  checkK(n, k)
  const minDist = new Float64Array(n)
  const assign = new Int32Array(n)
  const chosen = new Uint8Array(n)
  const centre = new Float64Array(d)
  // One pass over the rows per chosen centre: fn(row, ‖row − centre‖²).
  const distancesTo = (pick: number, fn: (i: number, dd: number) => void): void => {
    copyRowInto(src, pick, centre, 0)
    forEachRowBlock(src, blockRows, (start, blk) => {
      for (let r = 0; r < blk.rows; r++) {
        let s = 0
        for (let t = 0; t < d; t++) {
          const diff = blk.data[r * d + t]! - centre[t]!
          s += diff * diff
        }
        fn(start + r, s)
      }
    })
  }
  const first = rng.int(n)
  chosen[first] = 1
  distancesTo(first, (i, dd) => {
    minDist[i] = dd
  })
  for (let c = 1; c < k; c++) {
    let pick = -1
    let pickD = -Infinity
    for (let i = 0; i < n; i++) {
      if (chosen[i] === 0 && minDist[i]! > pickD) {
        pickD = minDist[i]!
        pick = i
      }
    }
    chosen[pick] = 1
    // Strict < keeps the earlier centre on ties, i.e. argmin with the lowest centre index.
    distancesTo(pick, (i, dd) => {
      if (dd < minDist[i]!) {
        minDist[i] = dd
        assign[i] = c
      }
    })
  }
  return { assign, k, iterations: 0, reseeded: 0 }
}

/**
 * Random-hyperplane LSH: `bits` Gaussian hyperplanes (default ⌈log2 k⌉, capped at 30), bucket = the sign
 * pattern as an integer; buckets are numbered densely in ascending order and folded modulo k when there are more.
 */
export function lshPartition(x: RowMatrix | RowBlocks, k: number, rng: Rng, bits?: number, blockRows = DEFAULT_BLOCK_ROWS): Clustering {
  const src = asRowBlocks(x)
  const n = src.rows
  const d = src.cols
  checkK(n, k)
  const b = Math.min(30, Math.max(1, bits ?? Math.ceil(Math.log2(k))))
  const planes = new Float64Array(d * b) // row-major D × bits
  for (let i = 0; i < planes.length; i++) planes[i] = rng.normal()
  const bucket = new Int32Array(n)
  forEachRowBlock(src, blockRows, (start, blk) => {
    for (let r = 0; r < blk.rows; r++) {
      let code = 0
      for (let h = 0; h < b; h++) {
        let s = 0
        for (let t = 0; t < d; t++) s += blk.data[r * d + t]! * planes[t * b + h]!
        if (s >= 0) code += 2 ** h
      }
      bucket[start + r] = code
    }
  })
  const unique = Int32Array.from(new Set(bucket)).sort()
  const rank = new Map<number, number>()
  for (let r = 0; r < unique.length; r++) rank.set(unique[r]!, r)
  const assign = new Int32Array(n)
  for (let i = 0; i < n; i++) assign[i] = rank.get(bucket[i]!)! % k
  return { assign, k, iterations: 0, reseeded: 0 }
}

/** Random balanced partition: a seeded permutation, row order[i] joins cluster i mod k. */
export function randomPartition(n: number, k: number, rng: Rng): Clustering {
  checkK(n, k)
  const order = rng.permutation(n)
  const assign = new Int32Array(n)
  for (let i = 0; i < n; i++) assign[order[i]!] = i % k
  return { assign, k, iterations: 0, reseeded: 0 }
}

/** Members of each cluster in ascending row order, CSR-style: members[offsets[c] .. offsets[c+1]). */
export interface ClusterMembers {
  readonly offsets: Int32Array
  readonly members: Int32Array
}

export function clusterMembers(assign: Int32Array, k: number): ClusterMembers {
  const offsets = new Int32Array(k + 1)
  for (let i = 0; i < assign.length; i++) {
    const c = assign[i]!
    if (!(c >= 0 && c < k)) throw new RangeError(`cluster id ${c} of row ${i} is outside [0, ${k})`)
    offsets[c + 1] = offsets[c + 1]! + 1
  }
  for (let c = 0; c < k; c++) offsets[c + 1] = offsets[c + 1]! + offsets[c]!
  const fill = offsets.slice(0, k)
  const members = new Int32Array(assign.length)
  for (let i = 0; i < assign.length; i++) {
    const c = assign[i]!
    members[fill[c]!] = i
    fill[c] = fill[c]! + 1
  }
  return { offsets, members }
}

/** Euclidean distance of every row to the mean of its cluster's rows (two passes over the row blocks). */
export function distanceToClusterMean(x: RowMatrix | RowBlocks, assign: Int32Array, k: number, blockRows = DEFAULT_BLOCK_ROWS): Float64Array {
  const src = asRowBlocks(x)
  const d = src.cols
  const { sums, counts } = clusterSums(src, assign, k)
  for (let j = 0; j < k; j++) {
    const cnt = counts[j]!
    if (cnt > 0) for (let t = 0; t < d; t++) sums[j * d + t] = sums[j * d + t]! / cnt
  }
  const out = new Float64Array(src.rows)
  forEachRowBlock(src, blockRows, (start, blk) => {
    for (let r = 0; r < blk.rows; r++) {
      const mo = assign[start + r]! * d
      let s = 0
      for (let t = 0; t < d; t++) {
        const diff = blk.data[r * d + t]! - sums[mo + t]!
        s += diff * diff
      }
      out[start + r] = Math.sqrt(s)
    }
  })
  return out
}
