/**
 * Exact k-nearest neighbours by squared Euclidean distance, for `dataflex prepare`.
 *
 * Brute force over Float32Array rows: queries are taken in small chunks and the base in larger ones, so each base
 * row is read once per query chunk while it is in cache. Distances sum (q−x)² in float64, which is exact-zero for
 * equal rows and never negative (‖q‖²+‖x‖²−2q·x is neither), so rankings are reproducible. Ties go to the lower
 * base index. Cost O(M·N·D): fine up to ~10^5 × 10^3 rows; at millions of rows an approximate index (FAISS
 * IVF/HNSW) is the right tool.
 */

/** A dense row-major float matrix (structurally the strategies' `Matrix`). */
export interface Rows {
  readonly data: Float32Array | Float64Array
  readonly rows: number
  readonly cols: number
}

export interface Neighbours {
  /** [rows × k] base indices, each row sorted by ascending distance (ties: lower index first). */
  readonly indices: Int32Array
  /** [rows × k] squared Euclidean distances, same order. */
  readonly sqDist: Float64Array
  readonly rows: number
  readonly k: number
}

export class KnnError extends Error {
  override readonly name = 'KnnError'
  readonly code = 'bad_knn_input'
}

export interface KnnOptions {
  /** Queries per chunk (each chunk scans the whole base once). */
  readonly queryChunk?: number
  /** Base rows per distance block. */
  readonly baseChunk?: number
}

function check(m: Rows, what: string): void {
  if (!(Number.isInteger(m.rows) && m.rows >= 0 && Number.isInteger(m.cols) && m.cols >= 0)) {
    throw new KnnError(`${what}: bad shape ${m.rows}×${m.cols}`)
  }
  if (m.data.length !== m.rows * m.cols) throw new KnnError(`${what}: ${m.data.length} values for ${m.rows}×${m.cols}`)
}

/**
 * Streams the k nearest base rows of every query, one query chunk at a time: `onChunk(start, count, idx, d2)`
 * gets [count × k] arrays (reused between calls: copy what you keep). Used directly when only a reduction of the
 * neighbours is needed (the TSDS density), so the full M×k result never has to exist.
 */
export function forEachKnnChunk(
  queries: Rows,
  base: Rows,
  k: number,
  onChunk: (start: number, count: number, indices: Int32Array, sqDist: Float64Array) => void,
  opts: KnnOptions = {},
): void {
  check(queries, 'queries')
  check(base, 'base')
  if (queries.cols !== base.cols) throw new KnnError(`queries have ${queries.cols} columns, base rows ${base.cols}`)
  if (!(Number.isInteger(k) && k >= 1 && k <= base.rows)) {
    throw new KnnError(`k must be an integer in [1, ${base.rows}] (the base size), got ${k}`)
  }
  const qChunk = Math.max(1, Math.min(opts.queryChunk ?? 32, queries.rows || 1))
  const bChunk = Math.max(1, Math.min(opts.baseChunk ?? 2048, base.rows))
  const dim = queries.cols
  const q = queries.data
  const x = base.data

  // One bounded max-heap per query of the chunk: the root is the worst kept neighbour, evicted by a better one.
  const heapIdx = new Int32Array(qChunk * k)
  const heapD = new Float64Array(qChunk * k)
  const heapSize = new Int32Array(qChunk)
  const block = new Float64Array(qChunk * bChunk)
  const outIdx = new Int32Array(qChunk * k)
  const outD = new Float64Array(qChunk * k)

  // a is worse than b: farther, or equally far with a higher index.
  const worse = (da: number, ia: number, db: number, ib: number): boolean => da > db || (da === db && ia > ib)

  for (let qs = 0; qs < queries.rows; qs += qChunk) {
    const qc = Math.min(qChunk, queries.rows - qs)
    heapSize.fill(0)
    for (let bs = 0; bs < base.rows; bs += bChunk) {
      const bc = Math.min(bChunk, base.rows - bs)
      for (let j = 0; j < bc; j++) {
        const xo = (bs + j) * dim
        for (let r = 0; r < qc; r++) {
          const qo = (qs + r) * dim
          let s = 0
          for (let c = 0; c < dim; c++) {
            const diff = q[qo + c]! - x[xo + c]!
            s += diff * diff
          }
          block[r * bChunk + j] = s
        }
      }
      for (let r = 0; r < qc; r++) {
        const ho = r * k
        let size = heapSize[r]!
        for (let j = 0; j < bc; j++) {
          const d = block[r * bChunk + j]!
          const id = bs + j
          if (size < k) {
            // sift up
            let pos = size++
            while (pos > 0) {
              const parent = (pos - 1) >> 1
              if (!worse(d, id, heapD[ho + parent]!, heapIdx[ho + parent]!)) break
              heapD[ho + pos] = heapD[ho + parent]!
              heapIdx[ho + pos] = heapIdx[ho + parent]!
              pos = parent
            }
            heapD[ho + pos] = d
            heapIdx[ho + pos] = id
          } else if (worse(heapD[ho]!, heapIdx[ho]!, d, id)) {
            // replace the root, sift down
            let pos = 0
            for (;;) {
              const l = 2 * pos + 1
              if (l >= k) break
              const rr = l + 1
              let m = l
              if (rr < k && worse(heapD[ho + rr]!, heapIdx[ho + rr]!, heapD[ho + l]!, heapIdx[ho + l]!)) m = rr
              if (!worse(heapD[ho + m]!, heapIdx[ho + m]!, d, id)) break
              heapD[ho + pos] = heapD[ho + m]!
              heapIdx[ho + pos] = heapIdx[ho + m]!
              pos = m
            }
            heapD[ho + pos] = d
            heapIdx[ho + pos] = id
          }
        }
        heapSize[r] = size
      }
    }
    // Sort each heap ascending (distance, then index).
    const order = new Int32Array(k)
    for (let r = 0; r < qc; r++) {
      const ho = r * k
      for (let i = 0; i < k; i++) order[i] = i
      order.sort((a, b) => {
        const da = heapD[ho + a]!
        const db = heapD[ho + b]!
        return da < db ? -1 : da > db ? 1 : heapIdx[ho + a]! - heapIdx[ho + b]!
      })
      for (let i = 0; i < k; i++) {
        outIdx[ho + i] = heapIdx[ho + order[i]!]!
        outD[ho + i] = heapD[ho + order[i]!]!
      }
    }
    onChunk(qs, qc, outIdx.subarray(0, qc * k), outD.subarray(0, qc * k))
  }
}

/** The k nearest base rows of every query, [M × k], rows sorted by distance. */
export function exactKnn(queries: Rows, base: Rows, k: number, opts: KnnOptions = {}): Neighbours {
  const indices = new Int32Array(queries.rows * k)
  const sqDist = new Float64Array(queries.rows * k)
  forEachKnnChunk(
    queries,
    base,
    k,
    (start, _count, idx, d2) => {
      indices.set(idx, start * k)
      sqDist.set(d2, start * k)
    },
    opts,
  )
  return { indices, sqDist, rows: queries.rows, k }
}

/** Rows `ids` of m, copied into a new matrix (in the order given). */
export function gatherRows(m: Rows, ids: Int32Array): Rows {
  const out = m.data instanceof Float64Array ? new Float64Array(ids.length * m.cols) : new Float32Array(ids.length * m.cols)
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!
    if (!(id >= 0 && id < m.rows)) throw new KnnError(`row ${id} out of [0, ${m.rows})`)
    out.set(m.data.subarray(id * m.cols, (id + 1) * m.cols), i * m.cols)
  }
  return { data: out, rows: ids.length, cols: m.cols }
}
