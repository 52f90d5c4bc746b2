/**
 * Ranking helpers. Ties always go to the lower index and NaN ranks below every number, so a ranking is a pure
 * function of the values (torch.topk leaves tie order unspecified; we need replayable decisions).
 */

type Values = ArrayLike<number>

function key(values: Values, i: number): number {
  const v = values[i]!
  return Number.isNaN(v) ? -Infinity : v
}

/** True when index a ranks strictly before index b (larger value, then lower index). */
function before(values: Values, a: number, b: number): boolean {
  const va = key(values, a)
  const vb = key(values, b)
  return va > vb || (va === vb && a < b)
}

/** All indices ordered by value, largest first; ties by lower index. */
export function argsortDesc(values: Values): Int32Array {
  const n = values.length
  const order = new Int32Array(n)
  for (let i = 0; i < n; i++) order[i] = i
  // A Float64Array copy of the keys keeps the comparator free of NaN checks.
  const keys = new Float64Array(n)
  for (let i = 0; i < n; i++) keys[i] = key(values, i)
  return order.sort((a, b) => {
    const d = keys[b]! - keys[a]!
    // -Infinity − -Infinity is NaN: treat as a tie.
    return d > 0 ? 1 : d < 0 ? -1 : a - b
  })
}

/** All indices ordered by value, smallest first; ties by lower index (NaN last). */
export function argsortAsc(values: Values): Int32Array {
  const n = values.length
  const keys = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    const v = values[i]!
    keys[i] = Number.isNaN(v) ? Infinity : v
  }
  const order = new Int32Array(n)
  for (let i = 0; i < n; i++) order[i] = i
  return order.sort((a, b) => {
    const d = keys[a]! - keys[b]!
    return d > 0 ? 1 : d < 0 ? -1 : a - b
  })
}

/**
 * Indices of the k largest values, largest first, ties by lower index. O(n log k) with a bounded min-heap whose
 * root is the currently worst kept index.
 */
export function topK(values: Values, k: number): Int32Array {
  const n = values.length
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`topK: k must be a non-negative integer, got ${k}`)
  if (k > n) throw new RangeError(`topK: k=${k} exceeds the number of values (${n})`)
  if (k === 0) return new Int32Array(0)
  if (k * 4 >= n) return argsortDesc(values).slice(0, k)

  const heap = new Int32Array(k)
  let size = 0
  // "worse(a, b)": a should sit above b in the min-heap.
  const worse = (a: number, b: number): boolean => before(values, b, a)
  const siftUp = (pos: number): void => {
    while (pos > 0) {
      const parent = (pos - 1) >> 1
      if (!worse(heap[pos]!, heap[parent]!)) break
      const t = heap[pos]!
      heap[pos] = heap[parent]!
      heap[parent] = t
      pos = parent
    }
  }
  const siftDown = (pos: number): void => {
    for (;;) {
      const l = 2 * pos + 1
      const r = l + 1
      let m = pos
      if (l < size && worse(heap[l]!, heap[m]!)) m = l
      if (r < size && worse(heap[r]!, heap[m]!)) m = r
      if (m === pos) break
      const t = heap[pos]!
      heap[pos] = heap[m]!
      heap[m] = t
      pos = m
    }
  }
  for (let i = 0; i < n; i++) {
    if (size < k) {
      heap[size] = i
      siftUp(size++)
    } else if (before(values, i, heap[0]!)) {
      heap[0] = i
      siftDown(0)
    }
  }
  return heap.sort((a, b) => (before(values, a, b) ? -1 : before(values, b, a) ? 1 : 0))
}
