/**
 * Message <-> ZeroMQ frames. Frame 0 is the msgpack header; every typed array found anywhere in the header
 * is pulled out into its own raw little-endian frame and replaced by `{"$nd": i, dtype, shape}`.
 *
 * Arrays never go through msgpack: msgpackr silently corrupts a Float32Array packed directly, and raw
 * frames spare large payloads a copy through the msgpack encoder.
 */
import { endianness } from 'node:os'
import { Packr, type Options } from 'msgpackr'
import { WireFormatError } from './errors.ts'

if (endianness() !== 'LE') {
  // Frames are little-endian by contract and typed arrays use host order; refuse rather than corrupt.
  throw new Error('the DataFlex bridge requires a little-endian host')
}

export type DType = 'float32' | 'float64' | 'int32' | 'int64' | 'uint8'
export type WireArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array

export const DTYPES: readonly DType[] = ['float32', 'float64', 'int32', 'int64', 'uint8']
export const ITEMSIZE: Readonly<Record<DType, number>> = { float32: 4, float64: 8, int32: 4, int64: 8, uint8: 1 }
export const ND_KEY = '$nd'

/** A multi-dimensional array: flat C-order data plus its shape. 1-D arrays travel as the bare typed array. */
export class NdArray<A extends WireArray = WireArray> {
  readonly data: A
  readonly shape: readonly number[]

  constructor(data: A, shape: readonly number[]) {
    if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new WireFormatError('encode', `NdArray shape must be non-negative integers, got [${shape.join(', ')}]`)
    }
    const count = shape.reduce((a, b) => a * b, 1)
    if (count !== data.length) {
      throw new WireFormatError('encode', `NdArray shape [${shape.join(', ')}] needs ${count} elements, data has ${data.length}`)
    }
    this.data = data
    this.shape = Object.freeze([...shape])
  }

  get dtype(): DType {
    return dtypeOf(this.data)
  }
}

/** The wire dtype of a typed array; throws for a kind the wire does not carry. */
export function dtypeOf(a: ArrayBufferView): DType {
  if (a instanceof Float32Array) return 'float32'
  if (a instanceof Float64Array) return 'float64'
  if (a instanceof Int32Array) return 'int32'
  if (a instanceof BigInt64Array) return 'int64'
  if (a instanceof Uint8Array) return 'uint8' // Buffer included
  throw new WireFormatError(
    'encode',
    `${a.constructor.name} cannot be sent; use Float32Array, Float64Array, Int32Array, BigInt64Array or Uint8Array`,
  )
}

const msgpackOptions: Options = {
  useRecords: false, // plain maps only: the Python side knows nothing of msgpackr records
  mapsAsObjects: true,
  // 'auto' (numbers while safe, bigint beyond 2^53) exists at runtime but not in the typings.
  int64AsType: 'auto' as Options['int64AsType'],
}
const packr = new Packr(msgpackOptions)

const MAX_DEPTH = 64

/**
 * Header object -> frames `[msgpack header, payload0, payload1, …]`. Payload frames are zero-copy views
 * of the arrays' memory: do not mutate an array until the request carrying it has settled.
 */
export function encodeMessage(header: Readonly<Record<string, unknown>>): Buffer[] {
  const payloads: Buffer[] = []
  const body = extract(header, payloads, 'header', 0)
  let head: Buffer
  try {
    head = packr.pack(body)
  } catch (cause) {
    throw new WireFormatError('encode', `cannot encode header: ${String(cause)}`, { cause })
  }
  return [head, ...payloads]
}

function arrayRef(a: WireArray, shape: readonly number[], payloads: Buffer[]): Record<string, unknown> {
  const dtype = dtypeOf(a)
  payloads.push(Buffer.from(a.buffer, a.byteOffset, a.byteLength))
  return { [ND_KEY]: payloads.length - 1, dtype, shape: [...shape] }
}

function extract(value: unknown, payloads: Buffer[], path: string, depth: number): unknown {
  switch (typeof value) {
    case 'number':
      // msgpackr writes integers beyond 32 bits as float64; as bigint they stay integers for Python.
      return Number.isSafeInteger(value) && (value > 0xffffffff || value < -0x80000000) ? BigInt(value) : value
    case 'string':
    case 'boolean':
    case 'bigint':
      return value
    case 'undefined':
      return null
    case 'function':
    case 'symbol':
      throw new WireFormatError('encode', `${path}: cannot send a ${typeof value}`)
  }
  if (value === null) return null
  if (depth > MAX_DEPTH) throw new WireFormatError('encode', `${path}: nested deeper than ${MAX_DEPTH} (a cycle?)`)
  if (ArrayBuffer.isView(value)) {
    const a = value as WireArray
    return arrayRef(a, [a.length], payloads)
  }
  if (value instanceof NdArray) return arrayRef(value.data, value.shape, payloads)
  if (Array.isArray(value)) return value.map((v, i) => extract(v, payloads, `${path}[${i}]`, depth + 1))
  const proto: unknown = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) {
    const name = (value as object).constructor?.name ?? 'object'
    throw new WireFormatError('encode', `${path}: cannot send a ${name}; use plain objects, arrays and typed arrays`)
  }
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (k === ND_KEY) throw new WireFormatError('encode', `${path}: '${ND_KEY}' is a reserved key`)
    if (v === undefined) continue // absent, like JSON
    out[k] = extract(v, payloads, `${path}.${k}`, depth + 1)
  }
  return out
}

/** Frame 0 -> the raw header value (not validated yet). */
export function unpackHeader(frame: Uint8Array): unknown {
  try {
    return packr.unpack(frame)
  } catch (cause) {
    throw new WireFormatError('bad_header', `header is not valid msgpack: ${String(cause)}`, { cause })
  }
}

/**
 * Replace every `{"$nd": i, dtype, shape}` inside `value` with a typed array over `payloads[i]`
 * (an NdArray when the shape is not 1-D). Every payload must be referenced.
 */
export function resolveArrays(value: unknown, payloads: readonly Buffer[]): unknown {
  const used = new Array<boolean>(payloads.length).fill(false)
  const out = resolve(value, payloads, used)
  const unused = used.flatMap((u, i) => (u ? [] : [i]))
  if (unused.length > 0) {
    throw new WireFormatError('bad_array', `array frame(s) ${unused.join(', ')} are not referenced from the header`)
  }
  return out
}

function resolve(value: unknown, payloads: readonly Buffer[], used: boolean[]): unknown {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return value
  if (Array.isArray(value)) return value.map((v) => resolve(v, payloads, used))
  const obj = value as Record<string, unknown>
  if (Object.hasOwn(obj, ND_KEY)) return refToArray(obj, payloads, used)
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(obj)) out[k] = resolve(v, payloads, used)
  return out
}

function isDType(x: unknown): x is DType {
  return typeof x === 'string' && (DTYPES as readonly string[]).includes(x)
}

function refToArray(ref: Record<string, unknown>, payloads: readonly Buffer[], used: boolean[]): WireArray | NdArray {
  const keys = Object.keys(ref).sort().join(',')
  if (keys !== '$nd,dtype,shape') {
    throw new WireFormatError('bad_array', `array reference must have exactly the keys $nd, dtype, shape; got ${keys}`)
  }
  const { [ND_KEY]: idx, dtype, shape } = ref
  if (typeof idx !== 'number' || !Number.isInteger(idx) || idx < 0 || idx >= payloads.length) {
    throw new WireFormatError('bad_array', `array reference $nd=${String(idx)} points at no frame (${payloads.length} array frames)`)
  }
  if (!isDType(dtype)) {
    throw new WireFormatError('bad_array', `unknown dtype ${JSON.stringify(dtype)}; expected one of ${DTYPES.join(', ')}`)
  }
  if (!Array.isArray(shape) || !shape.every((d): d is number => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new WireFormatError('bad_array', `shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`)
  }
  const frame = payloads[idx] as Buffer
  const count = shape.reduce((a, b) => a * b, 1)
  if (frame.byteLength !== count * ITEMSIZE[dtype]) {
    throw new WireFormatError(
      'bad_array',
      `frame ${idx} has ${frame.byteLength} bytes but ${dtype}[${shape.join(', ')}] needs ${count * ITEMSIZE[dtype]}`,
    )
  }
  used[idx] = true
  const data = typedView(frame, dtype, count)
  return shape.length === 1 ? data : new NdArray(data, shape)
}

function typedView(frame: Buffer, dtype: DType, count: number): WireArray {
  let buf = frame.buffer as ArrayBuffer
  let offset = frame.byteOffset
  // Zero-copy only when the frame owns its whole ArrayBuffer (zeromq.js external buffers for frames
  // over 128 B). Small frames are copies inside a shared pool: view them and we expose or pin the pool;
  // and an unaligned offset cannot be viewed at all.
  if (offset !== 0 || buf.byteLength !== frame.byteLength) {
    buf = new ArrayBuffer(frame.byteLength)
    new Uint8Array(buf).set(frame)
    offset = 0
  }
  switch (dtype) {
    case 'float32':
      return new Float32Array(buf, offset, count)
    case 'float64':
      return new Float64Array(buf, offset, count)
    case 'int32':
      return new Int32Array(buf, offset, count)
    case 'int64':
      return new BigInt64Array(buf, offset, count)
    case 'uint8':
      return new Uint8Array(buf, offset, count)
  }
}

/** Encode-then-decode helpers for one whole message (tests, tools). */
export function decodeMessage(frames: readonly Buffer[]): unknown {
  const [head, ...payloads] = frames
  if (head === undefined) throw new WireFormatError('bad_header', 'empty message')
  const raw = unpackHeader(head)
  return resolveArrays(raw, payloads)
}
