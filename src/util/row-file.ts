/**
 * A float32 row matrix in a file, written row block by row block and read back the same way with positioned reads
 * (Node has no mmap in core; block-wise access is all its readers need, and the OS page cache does the caching). The
 * heap holds one block buffer, so memory grows with the file on disk, not with the rows. Host byte order: the file
 * is scratch for this process, never an interchange format.
 */
import { closeSync, mkdirSync, openSync, readSync, rmSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'
import { checkBlock, type RowBlocks } from '../math/rows.ts'

export class RowFile implements RowBlocks {
  private fd: number | null
  private buf = new Float32Array(0)
  private written = 0

  private constructor(
    readonly path: string,
    readonly cols: number,
  ) {
    mkdirSync(dirname(path), { recursive: true })
    this.fd = openSync(path, 'w+')
  }

  /** A new, empty file at `path` (replacing one left there), rows `cols` floats wide. */
  static create(path: string, cols: number): RowFile {
    if (!(Number.isInteger(cols) && cols > 0)) throw new RangeError(`RowFile: cols must be a positive integer, got ${cols}`)
    return new RowFile(path, cols)
  }

  get rows(): number {
    return this.written
  }

  /** Appends whole rows (data.length a multiple of cols). */
  append(data: Float32Array): void {
    if (data.length % this.cols !== 0) throw new RangeError(`RowFile.append: ${data.length} values is not a whole number of ${this.cols}-wide rows`)
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    let done = 0
    const pos = this.written * this.cols * 4
    while (done < bytes.length) done += writeSync(this.open(), bytes, done, bytes.length - done, pos + done)
    this.written += data.length / this.cols
  }

  block(start: number, count: number): Float32Array {
    checkBlock(this.written, start, count)
    const n = count * this.cols
    if (this.buf.length < n) this.buf = new Float32Array(n)
    const out = this.buf.subarray(0, n)
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
    const pos = start * this.cols * 4
    let done = 0
    while (done < bytes.length) {
      const got = readSync(this.open(), bytes, done, bytes.length - done, pos + done)
      if (got === 0) throw new Error(`RowFile ${this.path}: unexpected end of file at byte ${pos + done}`)
      done += got
    }
    return out
  }

  /** Closes and deletes the file (idempotent). */
  dispose(): void {
    if (this.fd === null) return
    closeSync(this.fd)
    this.fd = null
    this.buf = new Float32Array(0)
    rmSync(this.path, { force: true })
  }

  private open(): number {
    if (this.fd === null) throw new Error(`RowFile ${this.path} is closed`)
    return this.fd
  }
}
