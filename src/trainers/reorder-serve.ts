/**
 * How a reorder's orders become the samples of each window (pure: the trainer passes the scoring and ordering in).
 *
 * - Static: the pool is scored and ordered once; the run reads that order as a stream, window after window, from a
 *   cursor that wraps at the end (the warm-up reads the head).
 * - Dynamic: the warm-up draws seeded random rows; every `reorderEvery`-th interval rescores what is left of the
 *   pass (`consumeOnce`: each row once per pass, then the pool refills) and orders it. `head` serves the head of the
 *   pattern over what is left (the Python DataFlex's: the realised stream follows the pattern's prefix, close to
 *   plain sorting); `slice` lays the pattern over the whole pass once, as a plan of rank slots, and at every
 *   rescoring fills the remaining slots with the remaining rows by their current rank, then serves the interval's
 *   slots, so the pass has the pattern's whole shape under fresh scores.
 */
import type { Rng } from '../math/rng.ts'
import { uniformWithoutReplacement } from '../math/sampling.ts'
import type { Serving } from '../strategies/reorder.ts'

export interface Served {
  /** Training rows in training order. */
  readonly indices: Int32Array
  /** Their scores, when the order was scored. */
  readonly scores?: Float64Array
  /** The pool was (re)scored and ordered for this window. */
  readonly rescored: boolean
}

/** Scores for rows (undefined: the reorder orders without scores, e.g. shuffle). */
export type ScoreRows = (rows: Int32Array) => Promise<Float64Array | undefined>
/** The reorder's pattern over rows with those scores: the rows in order. */
export type OrderRows = (rows: Int32Array, scores: Float64Array | undefined) => Promise<Int32Array>

export interface ServeDeps {
  readonly score: ScoreRows
  readonly order: OrderRows
}

function range(n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i)
}

function scoresOf(order: Int32Array, rows: Int32Array, scores: Float64Array | undefined): Float64Array | undefined {
  if (scores === undefined) return undefined
  const at = new Map<number, number>()
  rows.forEach((row, i) => at.set(row, scores[i]!))
  return Float64Array.from(order, (row) => at.get(row)!)
}

/** `k` items of `xs`, cycling from the start when it is shorter (a small pool still fills its window). */
function cycled<T extends Int32Array | Float64Array>(xs: T, k: number): T {
  if (xs.length === 0 || xs.length >= k) return xs.subarray(0, k) as T
  const out = new (xs.constructor as new (n: number) => T)(k)
  for (let i = 0; i < k; i++) out[i] = xs[i % xs.length]!
  return out
}

export class StaticStream {
  private order: Int32Array | undefined
  private scores: Float64Array | undefined
  private cursor = 0

  /** `rows`: the pool the order is laid over (the whole training set, or a pipeline stage's input). */
  constructor(private readonly rows: Int32Array) {}

  /** The next `k` rows of the order (ordered at the first call), wrapping at its end. */
  async take(k: number, deps: ServeDeps): Promise<Served> {
    let rescored = false
    if (this.order === undefined) {
      const pool = this.rows
      const scores = await deps.score(pool)
      this.order = await deps.order(pool, scores)
      this.scores = scoresOf(this.order, pool, scores)
      rescored = true
    }
    const n = this.order.length
    const out = new Int32Array(k)
    const sc = this.scores === undefined ? undefined : new Float64Array(k)
    for (let i = 0; i < k && n > 0; i++) {
      out[i] = this.order[this.cursor]!
      if (sc !== undefined) sc[i] = this.scores![this.cursor]!
      this.cursor = (this.cursor + 1) % n
    }
    return { indices: out, ...(sc === undefined ? {} : { scores: sc }), rescored }
  }

  state(): StaticStreamState {
    return { rows: Array.from(this.rows), cursor: this.cursor, order: this.order === undefined ? null : Array.from(this.order), scores: this.scores === undefined ? null : Array.from(this.scores) }
  }

  static restore(s: StaticStreamState): StaticStream {
    const out = new StaticStream(Int32Array.from(s.rows))
    out.cursor = s.cursor
    if (s.order !== null) out.order = Int32Array.from(s.order)
    if (s.scores !== null) out.scores = Float64Array.from(s.scores)
    return out
  }
}

export interface StaticStreamState {
  rows: number[]
  cursor: number
  order: number[] | null
  scores: number[] | null
}

export interface DynamicStreamState {
  rows: number[]
  pool: number[]
  pending: number[]
  calls: number
  served: number
  slots: number[] | null
}

export class DynamicStream {
  /** Rows not yet served in this pass (consumeOnce), in pool order. */
  private pool: Int32Array
  /** The rest of the last order, served when no rescoring is due. */
  private pending = new Int32Array(0)
  private calls = 0
  /** slice: the pass's rank slots (rank of the row at each slot) and how many slots are filled. */
  private slots: Int32Array | undefined
  private served = 0

  /** `rows`: the pool a pass is made of (the whole training set, or a pipeline stage's input). */
  constructor(
    private readonly rows: Int32Array,
    private readonly serving: Extract<Serving, { variant: 'dynamic' }>,
    private readonly slotPlan: (n: number) => Promise<Int32Array>,
  ) {
    this.pool = rows.slice()
  }

  private refill(): void {
    this.pool = this.rows.slice()
    this.slots = undefined
    this.served = 0
  }

  private consume(rows: Int32Array): void {
    if (!this.serving.consumeOnce) return
    const gone = new Set(rows)
    this.pool = this.pool.filter((r) => !gone.has(r))
    this.served += rows.length
  }

  /** Rows served elsewhere this pass (a pipeline's warm-up, an earlier pool): they leave the pass's pool. */
  exclude(rows: Iterable<number>): void {
    this.consume(Int32Array.from(rows))
  }

  /** slice over a non-consuming pool: the next interval starts `n` slots further along the cycle of slots. */
  private advance(n: number): void {
    if (this.serving.serve === 'slice') this.served = (this.served + n) % Math.max(1, this.rows.length)
  }

  /** The warm-up: `k` rows drawn at random (without replacement) from the pool, consumed. */
  warmup(k: number, rng: Rng): Served {
    if (this.pool.length === 0) this.refill()
    const picked = Int32Array.from(uniformWithoutReplacement(rng, this.pool.length, Math.min(k, this.pool.length)), (j) => this.pool[j]!)
    this.consume(picked)
    this.pending = new Int32Array(0)
    return { indices: cycled(picked, k), rescored: false }
  }

  /**
   * The next interval's `k` rows: the rest of the last order, or a fresh order when a rescoring is due (every
   * `reorderEvery`-th call, unless `rescore` says otherwise: a pipeline stage's own clock).
   */
  async next(k: number, deps: ServeDeps, rescore?: boolean): Promise<Served> {
    this.calls++
    const due = rescore ?? (this.calls - 1) % this.serving.reorderEvery === 0
    if (!due && this.pending.length >= k) {
      const out = this.pending.slice(0, k)
      this.pending = this.pending.slice(k)
      this.consume(out)
      if (!this.serving.consumeOnce) this.advance(k)
      return { indices: out, rescored: false }
    }
    const parts: Int32Array[] = []
    const partScores: (Float64Array | undefined)[] = []
    let got = 0
    while (got < k) {
      if (this.pool.length === 0) {
        if (!this.serving.consumeOnce) break
        this.refill()
        if (this.pool.length === 0) break
      }
      const scores = await deps.score(this.pool)
      const ordered = this.serving.serve === 'slice' ? await this.sliceOrder(scores, deps) : await deps.order(this.pool, scores)
      const take = Math.min(k - got, ordered.length)
      const head = ordered.slice(0, take)
      parts.push(head)
      partScores.push(scoresOf(head, this.pool, scores))
      this.pending = ordered.slice(take)
      got += take
      if (!this.serving.consumeOnce) {
        this.advance(take)
        break
      }
      this.consume(head)
    }
    const out = new Int32Array(got)
    let o = 0
    for (const p of parts) {
      out.set(p, o)
      o += p.length
    }
    const scored = partScores.every((s) => s !== undefined) && partScores.length > 0
    const sc = scored ? Float64Array.from(partScores.flatMap((s) => Array.from(s!))) : undefined
    return { indices: cycled(out, k), ...(sc === undefined ? {} : { scores: cycled(sc, k) }), rescored: true }
  }

  /**
   * The pool in the order of the pass's remaining slots: slot j of the pass holds the row whose rank among what is
   * left matches the rank the pattern put at slot j (ranks matched in ascending order, ties by pool order).
   */
  private async sliceOrder(scores: Float64Array | undefined, deps: ServeDeps): Promise<Int32Array> {
    if (scores === undefined) return deps.order(this.pool, undefined)
    const passSize = this.serving.consumeOnce ? this.served + this.pool.length : this.pool.length
    this.slots ??= await this.slotPlan(passSize)
    const start = this.serving.consumeOnce ? this.served : this.served % passSize
    // The slots to fill, in slot order (for a non-consuming pool: all of them, from the current position on).
    const slotIdx = this.serving.consumeOnce
      ? range(passSize - start).map((j) => j + start)
      : range(passSize).map((j) => (j + start) % passSize)
    const byRank = Array.from(slotIdx).sort((a, b) => this.slots![a]! - this.slots![b]! || a - b)
    const rows = Array.from(range(this.pool.length)).sort((a, b) => scores[a]! - scores[b]! || a - b)
    const atSlot = new Map<number, number>()
    byRank.forEach((slot, i) => atSlot.set(slot, this.pool[rows[i]!]!))
    return Int32Array.from(slotIdx, (slot) => atSlot.get(slot)!)
  }

  state(): DynamicStreamState {
    return {
      rows: Array.from(this.rows),
      pool: Array.from(this.pool),
      pending: Array.from(this.pending),
      calls: this.calls,
      served: this.served,
      slots: this.slots === undefined ? null : Array.from(this.slots),
    }
  }

  static restore(s: DynamicStreamState, serving: Extract<Serving, { variant: 'dynamic' }>, slotPlan: (n: number) => Promise<Int32Array>): DynamicStream {
    const out = new DynamicStream(Int32Array.from(s.rows), serving, slotPlan)
    out.pool = Int32Array.from(s.pool)
    out.pending = Int32Array.from(s.pending)
    out.calls = s.calls
    out.served = s.served
    if (s.slots !== null) out.slots = Int32Array.from(s.slots)
    return out
  }
}

export type Stream = StaticStream | DynamicStream
export type StreamState = StaticStreamState | DynamicStreamState

/** The stream a reorder's serving reads (a reorder without serving is static), new over `rows` or restored. */
export function streamFor(serving: Serving | undefined, rows: Int32Array, slotPlan: (n: number) => Promise<Int32Array>, saved?: StreamState): Stream {
  if (serving === undefined || serving.variant === 'static') return saved === undefined ? new StaticStream(rows) : StaticStream.restore(saved as StaticStreamState)
  return saved === undefined ? new DynamicStream(rows, serving, slotPlan) : DynamicStream.restore(saved as DynamicStreamState, serving, slotPlan)
}
