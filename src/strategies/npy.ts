/**
 * NumPy .npy files (format v1.0, also reading v2.0/3.0 headers): the exchange format between `dataflex
 * prepare` and the near/tsds selectors. Only little-endian, C-order float32/float64/int32/int64 arrays; anything
 * else is a typed NpyError that says what was found and what was expected.
 */
import { readFileSync } from 'node:fs'
import { writeFileAtomic } from '../util/atomic.ts'

export type NpyDtype = '<f4' | '<f8' | '<i4' | '<i8'

export type NpyErrorCode =
  | 'not_found'
  | 'not_npy'
  | 'unsupported_version'
  | 'bad_header'
  | 'unsupported_dtype'
  | 'fortran_order'
  | 'truncated'
  | 'dtype_mismatch'
  | 'shape_mismatch'
  | 'length_mismatch'
  | 'out_of_range'

export class NpyError extends Error {
  override readonly name = 'NpyError'
  readonly code: NpyErrorCode
  readonly path: string | undefined

  constructor(code: NpyErrorCode, message: string, path?: string, cause?: unknown) {
    super(path === undefined ? message : `${path}: ${message}`, cause === undefined ? undefined : { cause })
    this.code = code
    this.path = path
  }
}

export interface NpyArray {
  readonly dtype: NpyDtype
  readonly shape: readonly number[]
  /** int64 files are returned as float64 (exact below 2^53); use `toInt32` for index data. */
  readonly data: Float32Array | Float64Array | Int32Array
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59] // "\x93NUMPY"
const ITEM_SIZE: Record<NpyDtype, number> = { '<f4': 4, '<f8': 8, '<i4': 4, '<i8': 8 }

function isDtype(s: string): s is NpyDtype {
  return s === '<f4' || s === '<f8' || s === '<i4' || s === '<i8'
}

/** Parses the Python-literal header dict, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }. */
function parseHeader(text: string, path: string | undefined): { descr: string; fortran: boolean; shape: number[] } {
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]+)['"]/.exec(text)?.[1]
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text)?.[1]
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text)?.[1]
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new NpyError('bad_header', `unreadable .npy header ${JSON.stringify(text.trim())}`, path)
  }
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => Number(s.replace(/L$/, '')))
  if (shape.some((v) => !Number.isInteger(v) || v < 0)) {
    throw new NpyError('bad_header', `bad shape (${shapeText}) in .npy header`, path)
  }
  return { descr, fortran: fortran === 'True', shape }
}

/** Decodes the bytes of a .npy file. */
export function parseNpy(bytes: Uint8Array, path?: string): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new NpyError('not_npy', 'not a .npy file (missing the \\x93NUMPY magic)', path)
  }
  const major = bytes[6]!
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let headerLen: number
  let headerStart: number
  if (major === 1) {
    headerLen = view.getUint16(8, true)
    headerStart = 10
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new NpyError('truncated', 'truncated .npy header', path)
    headerLen = view.getUint32(8, true)
    headerStart = 12
  } else {
    throw new NpyError('unsupported_version', `unsupported .npy format version ${major}.${bytes[7]}`, path)
  }
  const dataStart = headerStart + headerLen
  if (bytes.length < dataStart) throw new NpyError('truncated', 'truncated .npy header', path)
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, dataStart))
  const { descr, fortran, shape } = parseHeader(header, path)
  // '=' / '|' prefixes mean native / not applicable; on the little-endian hosts we run on, '=' is '<'.
  const normal = descr.replace(/^=/, '<')
  if (!isDtype(normal)) {
    throw new NpyError('unsupported_dtype', `dtype '${descr}' is not supported (use <f4, <f8, <i4 or <i8)`, path)
  }
  if (fortran && shape.length > 1) {
    throw new NpyError('fortran_order', 'Fortran-order arrays are not supported; save with C order', path)
  }
  const count = shape.reduce((a, b) => a * b, 1)
  const size = ITEM_SIZE[normal]
  if (bytes.length - dataStart < count * size) {
    throw new NpyError('truncated', `data is ${bytes.length - dataStart} bytes, shape ${fmtShape(shape)} needs ${count * size}`, path)
  }
  // Copy into a fresh, aligned buffer (the data offset is only guaranteed 16-byte aligned within the file).
  // new Uint8Array(view) copies (Buffer#slice would not).
  const raw = new Uint8Array(bytes.subarray(dataStart, dataStart + count * size)).buffer
  let data: Float32Array | Float64Array | Int32Array
  if (normal === '<f4') data = new Float32Array(raw)
  else if (normal === '<f8') data = new Float64Array(raw)
  else if (normal === '<i4') data = new Int32Array(raw)
  else {
    const big = new BigInt64Array(raw)
    const out = new Float64Array(count)
    for (let i = 0; i < count; i++) {
      const v = big[i]!
      if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
        throw new NpyError('out_of_range', `int64 value ${v} at flat index ${i} is beyond 2^53`, path)
      }
      out[i] = Number(v)
    }
    data = out
  }
  return { dtype: normal, shape, data }
}

export function readNpy(path: string): NpyArray {
  let bytes: Uint8Array
  try {
    bytes = readFileSync(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new NpyError('not_found', 'file not found', path, err)
    throw err
  }
  return parseNpy(bytes, path)
}

/** Encodes an array as .npy v1.0 bytes (C order). int64 is written from integer-valued numbers. */
export function encodeNpy(data: Float32Array | Float64Array | Int32Array, shape: readonly number[], dtype?: NpyDtype): Uint8Array {
  const dt: NpyDtype = dtype ?? (data instanceof Float32Array ? '<f4' : data instanceof Float64Array ? '<f8' : '<i4')
  const count = shape.reduce((a, b) => a * b, 1)
  if (count !== data.length) {
    throw new NpyError('shape_mismatch', `shape ${fmtShape(shape)} holds ${count} items, data has ${data.length}`)
  }
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`
  let header = `{'descr': '${dt}', 'fortran_order': False, 'shape': ${shapeText}, }`
  // Pad with spaces so magic + length + header + '\n' is a multiple of 64 (numpy's alignment rule).
  const unpadded = 10 + header.length + 1
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n'
  if (header.length > 0xffff) throw new NpyError('bad_header', 'header too long for .npy v1.0')
  const size = ITEM_SIZE[dt]
  const out = new Uint8Array(10 + header.length + count * size)
  out.set(MAGIC, 0)
  out[6] = 1
  out[7] = 0
  const view = new DataView(out.buffer)
  view.setUint16(8, header.length, true)
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i)
  const off = 10 + header.length
  for (let i = 0; i < count; i++) {
    const v = data[i]!
    const at = off + i * size
    if (dt === '<f4') view.setFloat32(at, v, true)
    else if (dt === '<f8') view.setFloat64(at, v, true)
    else if (dt === '<i4') view.setInt32(at, v, true)
    else {
      if (!Number.isSafeInteger(v)) throw new NpyError('out_of_range', `value ${v} at ${i} is not a safe integer`)
      view.setBigInt64(at, BigInt(v), true)
    }
  }
  return out
}

/** Writes a .npy atomically: a selector never reads a half-written file, an interrupted write leaves the old one. */
export function writeNpy(path: string, data: Float32Array | Float64Array | Int32Array, shape: readonly number[], dtype?: NpyDtype): void {
  writeFileAtomic(path, encodeNpy(data, shape, dtype))
}

function fmtShape(shape: readonly number[]): string {
  return `(${shape.join(', ')}${shape.length === 1 ? ',' : ''})`
}

/** Expect an integer matrix (2-D, <i4 or <i8) and return it as int32. */
export function asIntMatrix(arr: NpyArray, path?: string): { data: Int32Array; rows: number; cols: number } {
  if (arr.dtype !== '<i4' && arr.dtype !== '<i8') {
    throw new NpyError('dtype_mismatch', `expected an integer array (<i4 or <i8), got ${arr.dtype}`, path)
  }
  if (arr.shape.length !== 2) {
    throw new NpyError('shape_mismatch', `expected a 2-D array (queries × neighbours), got shape ${fmtShape(arr.shape)}`, path)
  }
  const [rows, cols] = arr.shape as [number, number]
  if (arr.data instanceof Int32Array) return { data: arr.data, rows, cols }
  const out = new Int32Array(arr.data.length)
  for (let i = 0; i < out.length; i++) {
    const v = arr.data[i]!
    if (v > 0x7fffffff || v < -0x80000000) {
      throw new NpyError('out_of_range', `value ${v} at flat index ${i} does not fit in int32`, path)
    }
    out[i] = v
  }
  return { data: out, rows, cols }
}

/** Expect a float vector (1-D, <f4 or <f8) of the given length, returned as float64. */
export function asFloatVector(arr: NpyArray, length: number, path?: string): Float64Array {
  if (arr.dtype !== '<f4' && arr.dtype !== '<f8') {
    throw new NpyError('dtype_mismatch', `expected a float array (<f4 or <f8), got ${arr.dtype}`, path)
  }
  if (arr.shape.length !== 1) {
    throw new NpyError('shape_mismatch', `expected a 1-D array, got shape ${fmtShape(arr.shape)}`, path)
  }
  if (arr.data.length !== length) {
    throw new NpyError('length_mismatch', `expected ${length} entries (one per training sample), got ${arr.data.length}`, path)
  }
  return Float64Array.from(arr.data)
}
