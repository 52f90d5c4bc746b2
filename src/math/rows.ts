/**
 * Block-wise row access to a row-major [rows × cols] matrix that lives either in memory or in a file (a pool's
 * embeddings can be larger than the heap). Algorithms that only ever read contiguous row blocks or single rows
 * (mini-batch k-means, farthest-first, LSH, distances to cluster means) take a RowBlocks and run on either.
 */
import type { RowMatrix } from './linalg.ts'

export interface RowBlocks {
  readonly rows: number
  readonly cols: number
  /** Rows [start, start + count), row-major; valid until the next call (a file source reuses one buffer). */
  block(start: number, count: number): Float32Array | Float64Array
}

/** A RowBlocks over an in-memory matrix: blocks are views, nothing is copied. */
export function inMemoryRows(m: RowMatrix): RowBlocks {
  if (m.data.length !== m.rows * m.cols) throw new RangeError(`inMemoryRows: data length ${m.data.length} ≠ ${m.rows}×${m.cols}`)
  return {
    rows: m.rows,
    cols: m.cols,
    block(start, count) {
      checkBlock(m.rows, start, count)
      return m.data.subarray(start * m.cols, (start + count) * m.cols)
    },
  }
}

export function isRowBlocks(x: RowMatrix | RowBlocks): x is RowBlocks {
  return typeof (x as Partial<RowBlocks>).block === 'function'
}

/** Either form as a RowBlocks. */
export function asRowBlocks(x: RowMatrix | RowBlocks): RowBlocks {
  return isRowBlocks(x) ? x : inMemoryRows(x)
}

export function checkBlock(rows: number, start: number, count: number): void {
  if (!(Number.isInteger(start) && Number.isInteger(count) && start >= 0 && count >= 0 && start + count <= rows)) {
    throw new RangeError(`rows [${start}, ${start + count}) outside [0, ${rows})`)
  }
}

/** Visits the rows in blocks of at most `blockRows`: fn(first row, the block as a matrix). */
export function forEachRowBlock(src: RowBlocks, blockRows: number, fn: (start: number, block: RowMatrix) => void): void {
  if (!(Number.isInteger(blockRows) && blockRows > 0)) throw new RangeError('blockRows must be a positive integer')
  for (let start = 0; start < src.rows; start += blockRows) {
    const count = Math.min(blockRows, src.rows - start)
    fn(start, { data: src.block(start, count), rows: count, cols: src.cols })
  }
}

/** Copies row i of `src` into row j of `dst` (cols wide). */
export function copyRowInto(src: RowBlocks, i: number, dst: Float64Array, j: number): void {
  dst.set(src.block(i, 1), j * src.cols)
}
