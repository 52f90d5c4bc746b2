/**
 * Sampling from the seeded Rng. Every function draws a fixed number of variates for given inputs, so a decision
 * is a pure function of (seed, inputs).
 */
import type { Rng } from './rng.ts'
import { topK } from './topk.ts'

type Weights = ArrayLike<number>

function checkCount(k: number): void {
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`sample count must be a non-negative integer, got ${k}`)
}

function checkPopulation(n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`population size must be a non-negative integer, got ${n}`)
}

/** Validates weights (finite, ≥ 0) and returns how many are positive. */
export function countPositive(weights: Weights): number {
  let positive = 0
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i]!
    if (!(w >= 0) || !Number.isFinite(w)) throw new RangeError(`weight ${i} is ${w}: weights must be finite and ≥ 0`)
    if (w > 0) positive++
  }
  return positive
}

/** k i.i.d. uniform draws from [0, n). */
export function uniformWithReplacement(rng: Rng, n: number, k: number): Int32Array {
  checkPopulation(n)
  checkCount(k)
  if (n === 0 && k > 0) throw new RangeError('cannot sample from an empty population')
  const out = new Int32Array(k)
  for (let i = 0; i < k; i++) out[i] = rng.int(n)
  return out
}

/** k distinct uniform draws from [0, n), in draw order (a partial Fisher–Yates shuffle). */
export function uniformWithoutReplacement(rng: Rng, n: number, k: number): Int32Array {
  checkPopulation(n)
  checkCount(k)
  if (k > n) throw new RangeError(`cannot draw ${k} distinct items from ${n}`)
  const pool = new Int32Array(n)
  for (let i = 0; i < n; i++) pool[i] = i
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(n - i)
    const t = pool[i]!
    pool[i] = pool[j]!
    pool[j] = t
  }
  return pool.slice(0, k)
}

/** k i.i.d. draws with P(i) = w_i / Σw: cumulative sums + binary search. Zero weights are never drawn. */
export function weightedWithReplacement(rng: Rng, weights: Weights, k: number): Int32Array {
  checkCount(k)
  const positive = countPositive(weights)
  if (k > 0 && positive === 0) throw new RangeError('cannot sample: all weights are zero')
  const n = weights.length
  const cum = new Float64Array(n)
  let total = 0
  for (let i = 0; i < n; i++) {
    total += weights[i]!
    cum[i] = total
  }
  const out = new Int32Array(k)
  for (let s = 0; s < k; s++) {
    const u = rng.float() * total
    // First index with cum > u: a zero-weight index has cum equal to its predecessor, so it is skipped.
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cum[mid]! > u) hi = mid
      else lo = mid + 1
    }
    // Rounding can leave u ≥ total on the last step; walk back to the last positive weight.
    while (weights[lo]! === 0 && lo > 0) lo--
    out[s] = lo
  }
  return out
}

/**
 * k distinct draws, each next one with probability proportional to its weight among those not yet drawn
 * (torch.multinomial without replacement). Efraimidis–Spirakis: key_i = log(u_i)/w_i, keep the k largest; the
 * descending key order has the distribution of the sequential draw order. One uniform per item.
 */
export function weightedWithoutReplacement(rng: Rng, weights: Weights, k: number): Int32Array {
  checkCount(k)
  const positive = countPositive(weights)
  if (k > positive) {
    throw new RangeError(`cannot draw ${k} distinct items: only ${positive} have a positive weight`)
  }
  const n = weights.length
  const keys = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    let u = rng.float()
    while (u === 0) u = rng.float()
    const w = weights[i]!
    keys[i] = w > 0 ? Math.log(u) / w : -Infinity
  }
  return topK(keys, k)
}
