/** Small statistics over typed arrays. Accumulation is in float64 whatever the input type. */

type Values = ArrayLike<number>

/** Sorted float64 copy (ascending). */
function sortedCopy(values: Values): Float64Array {
  const s = Float64Array.from(values as ArrayLike<number>)
  return s.sort()
}

/** torch.lerp's two-sided formula, so the interpolated value matches torch.quantile's 'linear' mode. */
function lerp(a: number, b: number, w: number): number {
  return w < 0.5 ? a + w * (b - a) : b - (b - a) * (1 - w)
}

function quantileOfSorted(sorted: Float64Array, q: number): number {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile: q must be in [0, 1], got ${q}`)
  const pos = q * (sorted.length - 1)
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return lerp(sorted[lo]!, sorted[hi]!, pos - lo)
}

/** Several quantiles with one sort, linear interpolation between order statistics (torch.quantile default). */
export function quantiles(values: Values, qs: readonly number[]): Float64Array {
  if (values.length === 0) throw new RangeError('quantile of an empty array')
  for (let i = 0; i < values.length; i++) {
    if (Number.isNaN(values[i]!)) throw new RangeError('quantile: values contain NaN')
  }
  const sorted = sortedCopy(values)
  const out = new Float64Array(qs.length)
  for (let i = 0; i < qs.length; i++) out[i] = quantileOfSorted(sorted, qs[i]!)
  return out
}

export function quantile(values: Values, q: number): number {
  return quantiles(values, [q])[0]!
}

export function mean(values: Values): number {
  if (values.length === 0) throw new RangeError('mean of an empty array')
  let s = 0
  for (let i = 0; i < values.length; i++) s += values[i]!
  return s / values.length
}

/** softmax(values / temperature), with the maximum subtracted first so large inputs do not overflow. */
export function softmax(values: Values, temperature = 1): Float64Array {
  if (!(temperature > 0)) throw new RangeError(`softmax: temperature must be > 0, got ${temperature}`)
  const n = values.length
  const out = new Float64Array(n)
  if (n === 0) return out
  let max = -Infinity
  for (let i = 0; i < n; i++) if (values[i]! > max) max = values[i]!
  let sum = 0
  for (let i = 0; i < n; i++) {
    const e = Math.exp((values[i]! - max) / temperature)
    out[i] = e
    sum += e
  }
  for (let i = 0; i < n; i++) out[i] = out[i]! / sum
  return out
}

/**
 * Divide each row of a row-major [rows × cols] buffer by its L2 norm, in place. Norms are clamped to `eps`
 * (as DataFlex does) so zero rows stay zero instead of becoming NaN. Returns the original norms.
 */
export function l2NormalizeRows(
  data: Float32Array | Float64Array,
  rows: number,
  cols: number,
  eps = 1e-12,
): Float64Array {
  if (data.length !== rows * cols) throw new RangeError(`l2NormalizeRows: ${data.length} ≠ ${rows}×${cols}`)
  const norms = new Float64Array(rows)
  for (let r = 0; r < rows; r++) {
    const off = r * cols
    let s = 0
    for (let c = 0; c < cols; c++) {
      const v = data[off + c]!
      s += v * v
    }
    const norm = Math.sqrt(s)
    norms[r] = norm
    const inv = 1 / Math.max(norm, eps)
    for (let c = 0; c < cols; c++) data[off + c] = data[off + c]! * inv
  }
  return norms
}

/**
 * Counts of `values` in `bins` equal-width bins over [lo, hi]; the last bin is closed, values outside the range
 * and non-finite ones are left out (a report's histograms share one range, so each counts what falls in it).
 */
export function histogram(values: Values, lo: number, hi: number, bins: number): Int32Array {
  if (!(bins >= 1) || !(hi > lo)) throw new RangeError(`histogram: need bins ≥ 1 and hi > lo, got ${bins} bins over [${lo}, ${hi}]`)
  const counts = new Int32Array(bins)
  const width = (hi - lo) / bins
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!
    if (!(v >= lo && v <= hi)) continue
    counts[Math.min(bins - 1, Math.floor((v - lo) / width))]!++
  }
  return counts
}
