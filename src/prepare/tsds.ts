/**
 * TSDS sampling probabilities (docs/algorithms.md#offline-half-dataflex-prepare-tsds): each query spreads mass 1/M
 * over its nearest candidates up to a common water level s, down-weighting dense regions by a kernel density κ, and
 * the neighbourhoods stop growing once the transport cost exceeds the budget set by α and C.
 *
 * One deliberate difference from DataFlex's offline_tsds: a query the queue never advanced (including the one
 * whose pop fired the stop rule at k = 0) starts at lastK = −1, so all of its 1/M goes to its nearest candidate.
 * DataFlex starts at lastK = 0, which hands such a query (1/M)·c₀/s ≥ 1/M, more than its mass, before the
 * final normalisation. Everything else follows DataFlex's offline_tsds_selector.py step by step.
 */
import { forEachKnnChunk, gatherRows, exactKnn, type KnnOptions, type Rows } from './knn.ts'

export const TSDS_DEFAULTS = { k: 5000, kdeK: 1000, sigma: 0.75, alpha: 0.6, c: 5.0 } as const

export class TsdsError extends Error {
  override readonly name = 'TsdsError'
  readonly code = 'bad_tsds_input'
}

export interface TsdsParams {
  /** Neighbours per query (max_K), at most the pool size. */
  readonly k: number
  /** Neighbours in the density estimate, capped at the number of distinct candidates. */
  readonly kdeK: number
  /** Kernel bandwidth; 0 turns the density off (κ ≡ 1). */
  readonly sigma: number
  readonly alpha: number
  readonly c: number
}

export interface WaterFill {
  /** Sampling probabilities over the N candidates, summing to 1. */
  readonly probs: Float64Array
  /** The final water level s. */
  readonly level: number
  /** Per query: the last neighbour rank filled to the level (−1: none; the leftover goes to rank lastK+1). */
  readonly lastK: Int32Array
  /** Queue pops until the stop (or until the queue ran dry). */
  readonly pops: number
  /** True when the cost budget stopped the filling; false when every neighbourhood reached K−1. */
  readonly stopped: boolean
}

function checkParams(p: Pick<TsdsParams, 'alpha' | 'c'>): void {
  if (!(p.alpha >= 0 && p.alpha <= 1)) throw new TsdsError(`alpha must be in [0, 1], got ${p.alpha}`)
  if (!(p.c > 0 && Number.isFinite(p.c))) throw new TsdsError(`C must be a positive number, got ${p.c}`)
}

/** Distinct values, ascending. */
export function uniqueIds(ids: Int32Array): Int32Array {
  return Int32Array.from(new Set(ids)).sort()
}

/**
 * Epanechnikov-type density of each candidate `ids[u]` among the candidates `ids` themselves:
 * κ_u = Σ over its kdeK nearest (itself included) of max(0, 1 − D²/σ²), so κ_u ≥ 1. σ = 0 gives κ ≡ 1.
 */
export function kernelDensity(base: Rows, ids: Int32Array, kdeK: number, sigma: number, opts: KnnOptions = {}): Float64Array {
  if (!(sigma >= 0 && Number.isFinite(sigma))) throw new TsdsError(`sigma must be a non-negative number, got ${sigma}`)
  if (!(Number.isInteger(kdeK) && kdeK >= 1)) throw new TsdsError(`kde_K must be a positive integer, got ${kdeK}`)
  const kappa = new Float64Array(ids.length)
  if (sigma === 0) return kappa.fill(1)
  const sub = gatherRows(base, ids)
  const k = Math.min(kdeK, ids.length)
  const inv = 1 / (sigma * sigma)
  forEachKnnChunk(
    sub,
    sub,
    k,
    (start, count, _idx, d2) => {
      for (let r = 0; r < count; r++) {
        let s = 0
        for (let i = 0; i < k; i++) s += Math.max(0, 1 - d2[r * k + i]! * inv)
        kappa[start + r] = s
      }
    },
    opts,
  )
  return kappa
}

/**
 * The priority-queue water-filling (docs/algorithms.md#offline-half-dataflex-prepare-tsds, steps 3–4).
 * @param indices [M × K] candidate ids per query, each row sorted by distance
 * @param dist [M × K] Euclidean (not squared) distances, same order
 * @param kappa [M × K] density κ of each listed candidate
 * @param n number of candidates (length of the output)
 */
export function waterFill(
  indices: Int32Array,
  dist: Float64Array,
  kappa: Float64Array,
  m: number,
  k: number,
  n: number,
  params: Pick<TsdsParams, 'alpha' | 'c'>,
): WaterFill {
  checkParams(params)
  if (!(Number.isInteger(m) && m >= 1)) throw new TsdsError(`need at least one query, got ${m}`)
  if (!(Number.isInteger(k) && k >= 1)) throw new TsdsError(`need at least one neighbour per query, got ${k}`)
  if (indices.length !== m * k || dist.length !== m * k || kappa.length !== m * k) {
    throw new TsdsError(`indices/dist/kappa must each hold ${m}×${k} values`)
  }
  for (let i = 0; i < indices.length; i++) {
    const id = indices[i]!
    if (!(id >= 0 && id < n)) throw new TsdsError(`candidate id ${id} out of [0, ${n})`)
    if (!(kappa[i]! > 0)) throw new TsdsError(`density κ must be positive, got ${kappa[i]} at ${i}`)
  }

  const lastK = new Int32Array(m).fill(-1)
  const budget = (1 - params.alpha) * m
  const scale = params.alpha / params.c
  let level = 0
  let pops = 0
  let stopped = false

  // K = 1 leaves nothing to fill: each query's whole mass goes to its nearest candidate (leftover rule).
  if (k >= 2) {
    // Min-heap of (c, k, j), ordered lexicographically like a tuple heap.
    const hc = new Float64Array(m)
    const hk = new Int32Array(m)
    const hj = new Int32Array(m)
    let size = 0
    const less = (a: number, b: number): boolean =>
      hc[a]! < hc[b]! || (hc[a] === hc[b] && (hk[a]! < hk[b]! || (hk[a] === hk[b] && hj[a]! < hj[b]!)))
    const swap = (a: number, b: number): void => {
      const c = hc[a]!
      const kk = hk[a]!
      const j = hj[a]!
      hc[a] = hc[b]!
      hk[a] = hk[b]!
      hj[a] = hj[b]!
      hc[b] = c
      hk[b] = kk
      hj[b] = j
    }
    const push = (c: number, kk: number, j: number): void => {
      let pos = size++
      hc[pos] = c
      hk[pos] = kk
      hj[pos] = j
      while (pos > 0) {
        const parent = (pos - 1) >> 1
        if (!less(pos, parent)) break
        swap(pos, parent)
        pos = parent
      }
    }
    const popInto = (): void => {
      // Moves the root to slot `size` (just past the end) and restores the heap.
      size--
      swap(0, size)
      let pos = 0
      for (;;) {
        const l = 2 * pos + 1
        if (l >= size) break
        const r = l + 1
        const mm = r < size && less(r, l) ? r : l
        if (!less(mm, pos)) break
        swap(pos, mm)
        pos = mm
      }
    }

    const cost = new Float64Array(m)
    const distWsum = new Float64Array(m)
    for (let j = 0; j < m; j++) {
      distWsum[j] = dist[j * k]! / kappa[j * k]!
      push(1 / kappa[j * k]!, 0, j)
    }
    let total = 0
    while (size > 0) {
      popInto()
      const c = hc[size]!
      const kk = hk[size]!
      const j = hj[size]!
      pops++
      level = c
      // cost_j = Σ_{i≤k} (d_{j,k+1} − d_{j,i}) / κ_{j,i}: what filling query j up to rank k+1 would cost.
      const next = j * k + kk + 1
      const updated = dist[next]! * c - distWsum[j]!
      total += updated - cost[j]!
      cost[j] = updated
      if (scale * total >= budget) {
        stopped = true
        break
      }
      lastK[j] = kk
      if (kk < k - 2) {
        push(c + 1 / kappa[next]!, kk + 1, j)
        distWsum[j] = distWsum[j]! + dist[next]! / kappa[next]!
      }
    }
  }

  const probs = new Float64Array(n)
  const mass = 1 / m
  for (let j = 0; j < m; j++) {
    const row = j * k
    let spent = 0
    for (let i = 0; i <= lastK[j]!; i++) {
      const w = mass / (level * kappa[row + i]!)
      const id = indices[row + i]!
      probs[id] = probs[id]! + w
      spent += w
    }
    const rest = indices[row + lastK[j]! + 1]!
    probs[rest] = probs[rest]! + Math.max(mass - spent, 0)
  }
  let sum = 0
  for (let i = 0; i < n; i++) {
    if (!(probs[i]! > 0)) probs[i] = 0 // clip negatives (and any NaN)
    sum += probs[i]!
  }
  for (let i = 0; i < n; i++) probs[i] = probs[i]! / sum
  return { probs, level, lastK, pops, stopped }
}

export interface TsdsResult extends WaterFill {
  /** Distinct candidates appearing in some query's neighbour list. */
  readonly distinct: number
  /** Candidates with a non-zero probability. */
  readonly support: number
  readonly k: number
  readonly kdeK: number
}

/** Full TSDS over L2-normalised embeddings: k-NN of each query, density, water-filling. */
export function tsdsProbabilities(queries: Rows, base: Rows, params: TsdsParams, opts: KnnOptions = {}): TsdsResult {
  checkParams(params)
  if (queries.rows < 1) throw new TsdsError('TSDS needs at least one query')
  if (base.rows < 1) throw new TsdsError('TSDS needs at least one candidate')
  const k = Math.min(params.k, base.rows)
  const nb = exactKnn(queries, base, k, opts)
  const dist = new Float64Array(nb.sqDist.length)
  for (let i = 0; i < dist.length; i++) dist[i] = Math.sqrt(nb.sqDist[i]!)

  const ids = uniqueIds(nb.indices)
  const kdeK = Math.min(params.kdeK, ids.length)
  const density = kernelDensity(base, ids, kdeK, params.sigma, opts)
  const at = new Map<number, number>()
  ids.forEach((id, u) => at.set(id, u))
  const kappa = new Float64Array(nb.indices.length)
  for (let i = 0; i < kappa.length; i++) kappa[i] = density[at.get(nb.indices[i]!)!]!

  const fill = waterFill(nb.indices, dist, kappa, queries.rows, k, base.rows, params)
  let support = 0
  for (const p of fill.probs) if (p > 0) support++
  return { ...fill, distinct: ids.length, support, k, kdeK }
}
