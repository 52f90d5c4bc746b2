import { createHash } from 'node:crypto'

type Hashable = Int32Array | Float32Array | Float64Array | Uint8Array

/** sha256 over the raw little-endian bytes of typed arrays (hex, first 16 chars): stable across runs. */
export function hashArrays(...arrays: Hashable[]): string {
  const h = createHash('sha256')
  for (const a of arrays) {
    h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    h.update('|')
  }
  return h.digest('hex').slice(0, 16)
}
