/**
 * Row-major matrix helpers. Shapes are checked once per call, inner loops index typed arrays directly, and sums
 * accumulate in float64 so float32 inputs do not lose precision over long rows.
 */

/** Structurally the same as strategies' `Matrix`, so either can be passed; float64 data is accepted too. */
export interface RowMatrix {
  readonly data: Float32Array | Float64Array
  readonly rows: number
  readonly cols: number
}

type Vec = Float32Array | Float64Array

function checkMatrix(m: RowMatrix, what: string): void {
  if (m.data.length !== m.rows * m.cols) {
    throw new RangeError(`${what}: data length ${m.data.length} ≠ ${m.rows}×${m.cols}`)
  }
}

function checkLength(v: ArrayLike<number>, n: number, what: string): void {
  if (v.length !== n) throw new RangeError(`${what}: expected length ${n}, got ${v.length}`)
}

export function dot(a: Vec, b: Vec): number {
  checkLength(b, a.length, 'dot')
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!
  return s
}

/** Cosine similarity; 0 when either vector is zero (no NaN). */
export function cosine(a: Vec, b: Vec): number {
  checkLength(b, a.length, 'cosine')
  let ab = 0
  let aa = 0
  let bb = 0
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!
    const y = b[i]!
    ab += x * y
    aa += x * x
    bb += y * y
  }
  return aa === 0 || bb === 0 ? 0 : ab / Math.sqrt(aa * bb)
}

/** ⟨row i of m, v⟩. */
export function rowDot(m: RowMatrix, i: number, v: Vec): number {
  checkLength(v, m.cols, 'rowDot')
  if (!(i >= 0 && i < m.rows)) throw new RangeError(`rowDot: row ${i} out of [0, ${m.rows})`)
  const d = m.data
  const off = i * m.cols
  let s = 0
  for (let c = 0; c < m.cols; c++) s += d[off + c]! * v[c]!
  return s
}

/** m · v, one float64 per row. */
export function matVec(m: RowMatrix, v: Vec, out: Float64Array = new Float64Array(m.rows)): Float64Array {
  checkMatrix(m, 'matVec')
  checkLength(v, m.cols, 'matVec')
  checkLength(out, m.rows, 'matVec out')
  const d = m.data
  const cols = m.cols
  for (let r = 0; r < m.rows; r++) {
    const off = r * cols
    let s = 0
    for (let c = 0; c < cols; c++) s += d[off + c]! * v[c]!
    out[r] = s
  }
  return out
}

/** Column-wise sum of the rows, added into `acc` (so callers can stream chunks into one total). */
export function addRows(m: RowMatrix, acc: Float64Array): Float64Array {
  checkMatrix(m, 'addRows')
  checkLength(acc, m.cols, 'addRows acc')
  const d = m.data
  const cols = m.cols
  for (let r = 0; r < m.rows; r++) {
    const off = r * cols
    for (let c = 0; c < cols; c++) acc[c] = acc[c]! + d[off + c]!
  }
  return acc
}

/** Mean of the rows (the zero vector for a matrix with no rows). */
export function meanRows(m: RowMatrix): Float64Array {
  const acc = addRows(m, new Float64Array(m.cols))
  if (m.rows > 0) for (let c = 0; c < m.cols; c++) acc[c] = acc[c]! / m.rows
  return acc
}

/** ‖a_i − b_j‖² for one pair of rows. */
export function rowSqDist(a: RowMatrix, i: number, b: RowMatrix, j: number): number {
  const cols = a.cols
  const ad = a.data
  const bd = b.data
  const ao = i * cols
  const bo = j * cols
  let s = 0
  for (let c = 0; c < cols; c++) {
    const diff = ad[ao + c]! - bd[bo + c]!
    s += diff * diff
  }
  return s
}

/**
 * Squared Euclidean distances between the rows of `a` and the rows of `b`, `chunkRows` rows of `a` at a time:
 * `fn(rowStart, rowCount, dist)` gets a [rowCount × b.rows] block (reused between calls, copy to keep it).
 * Differences are summed directly rather than via ‖a‖²+‖b‖²−2ab, so results are exact-zero for equal rows and
 * never negative, which keeps nearest-centre ties deterministic.
 */
export function forEachSqDistChunk(
  a: RowMatrix,
  b: RowMatrix,
  chunkRows: number,
  fn: (rowStart: number, rowCount: number, dist: Float64Array) => void,
): void {
  checkMatrix(a, 'forEachSqDistChunk a')
  checkMatrix(b, 'forEachSqDistChunk b')
  if (a.cols !== b.cols) throw new RangeError(`forEachSqDistChunk: ${a.cols} ≠ ${b.cols} columns`)
  if (!(Number.isInteger(chunkRows) && chunkRows > 0)) throw new RangeError(`chunkRows must be a positive integer`)
  const rowsPer = Math.min(chunkRows, Math.max(1, a.rows))
  const block = new Float64Array(rowsPer * b.rows)
  for (let start = 0; start < a.rows; start += rowsPer) {
    const count = Math.min(rowsPer, a.rows - start)
    for (let r = 0; r < count; r++) {
      const off = r * b.rows
      for (let j = 0; j < b.rows; j++) block[off + j] = rowSqDist(a, start + r, b, j)
    }
    fn(start, count, count === rowsPer ? block : block.subarray(0, count * b.rows))
  }
}

/** The full [a.rows × b.rows] squared-distance matrix (for small inputs; stream with forEachSqDistChunk). */
export function pairwiseSqDist(a: RowMatrix, b: RowMatrix): Float64Array {
  const out = new Float64Array(a.rows * b.rows)
  forEachSqDistChunk(a, b, Math.max(1, a.rows), (start, count, dist) => out.set(dist, start * b.rows))
  return out
}

/** Row i of m as a view (no copy). */
export function row(m: RowMatrix, i: number): Vec {
  return m.data.subarray(i * m.cols, (i + 1) * m.cols)
}
