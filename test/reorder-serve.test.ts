/**
 * How a reorder's orders become the samples of each window (src/trainers/reorder-serve.ts), with fake scoring and
 * ordering: a fixed score per row, optionally drifting with a model version the test bumps each interval (a model
 * that trains), and an ordering that is a plain ascending sort written here or a pattern (folding, saw).
 *
 * References written here in plain loops: the Python DataFlex's DynamicReorder.next_indices for `head` serving,
 * and the rank matching of the pass's slot plan for `slice` serving. Nothing from the code under test is called
 * to build them; the ordering (a dependency the trainer passes in) is shared by both sides.
 */
import { describe, expect, it } from 'vitest'
import { Rng } from '../src/math/rng.ts'
import { applyPattern } from '../src/strategies/reorders/patterns.ts'
import { DynamicStream, StaticStream, type OrderRows, type ServeDeps, type Served } from '../src/trainers/reorder-serve.ts'
import { checkOrder } from '../src/trainers/reorder.ts'
import { StrategyError } from '../src/trainers/strategy-runtime.ts'
import { expectAllClose, expectClose } from './close.ts'

// ───────────────────────────── fixtures ─────────────────────────────

const EXACT = { rel: 1e-12 }

/** Test data comes from a tiny LCG, not from the Rng the code uses. */
function lcg(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 4294967296
  }
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i)
}

/** Distinct scores: a random permutation of 0..n−1 (so a row's score is its rank). */
function permutedScores(n: number, seed: number): Float64Array {
  const rand = lcg(seed)
  const out = range(n)
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return Float64Array.from(out)
}

/** A training model's scores: a fixed base per row plus a drift that changes with the model version. */
class FakeModel {
  version = 0
  scoreCalls = 0
  constructor(
    readonly base: Float64Array,
    readonly drift: number,
  ) {}

  score(row: number): number {
    return this.base[row]! + this.drift * Math.sin(1.7 * row + 2.3 * this.version)
  }

  deps(order: OrderRows): ServeDeps {
    return {
      score: async (rows) => {
        this.scoreCalls++
        return Float64Array.from(rows, (r) => this.score(r))
      },
      order,
    }
  }
}

/** Ascending by score, equal scores in input order (insertion sort). */
const ascending: OrderRows = async (rows, scores) => {
  const idx: number[] = []
  for (let i = 0; i < rows.length; i++) {
    let j = idx.length
    while (j > 0 && scores![idx[j - 1]!]! > scores![i]!) j--
    idx.splice(j, 0, i)
  }
  return Int32Array.from(idx, (i) => rows[i]!)
}

function pattern(name: string, patternParams: Record<string, unknown>): OrderRows {
  return async (rows, scores) => applyPattern(name, rows, scores, { pattern_params: patternParams })
}

const ORDERS: { label: string; order: OrderRows }[] = [
  { label: 'ascending', order: ascending },
  { label: 'folding L=3', order: pattern('folding', { layers: 3 }) },
  { label: 'saw S=3 ρ=0.15 L=2', order: pattern('saw', { num_sections: 3, folding_ratio: 0.15, layers: 2 }) },
]

/** The slot plan as the trainer makes it: the ordering applied to ranks 0..n−1 scored by themselves. */
function slotPlanOf(order: OrderRows): (n: number) => Promise<Int32Array> {
  return (n) => order(Int32Array.from(range(n)), Float64Array.from(range(n)))
}

function dynamic(n: number, every: number, consumeOnce: boolean, serve: 'head' | 'slice', order: OrderRows): DynamicStream {
  return new DynamicStream(Int32Array.from(range(n)), { variant: 'dynamic', reorderEvery: every, consumeOnce, serve }, slotPlanOf(order))
}

interface Expected {
  indices: number[]
  scores?: number[]
  rescored: boolean
}

/** `k` items of xs, repeating from the start when xs is shorter (and non-empty). */
function cycle<T>(xs: T[], k: number): T[] {
  if (xs.length === 0 || xs.length >= k) return xs.slice(0, k)
  return range(k).map((i) => xs[i % xs.length]!)
}

function expectServed(got: Served, want: Expected, what: string): void {
  expect(Array.from(got.indices), `${what}: indices`).toEqual(want.indices)
  expect(got.rescored, `${what}: rescored`).toBe(want.rescored)
  if (want.scores === undefined) expect(got.scores, `${what}: scores`).toBeUndefined()
  else expectAllClose(got.scores!, want.scores, EXACT, `${what}: scores`)
}

/** Every value is a plain JSON value (no typed arrays, Maps, undefined), so the state survives JSON unchanged. */
function expectPlainJson(state: unknown): void {
  const plain = (v: unknown): boolean =>
    v === null ||
    typeof v === 'number' ||
    typeof v === 'string' ||
    typeof v === 'boolean' ||
    (Array.isArray(v) && v.every(plain)) ||
    (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype && Object.values(v as object).every(plain))
  expect(plain(state)).toBe(true)
  expect(JSON.parse(JSON.stringify(state))).toEqual(state)
}

// ───────────────────────────── references ─────────────────────────────

/** DataFlex's DynamicReorder.next_indices in plain loops (plus: short outputs cycle to k; scores of served rows). */
class HeadReference {
  pool: number[]
  pending: number[] = []
  calls = 0

  constructor(
    readonly n: number,
    readonly every: number,
    readonly consumeOnce: boolean,
  ) {
    this.pool = range(n)
  }

  private consume(rows: number[]): void {
    if (this.consumeOnce) this.pool = this.pool.filter((r) => !rows.includes(r))
  }

  warm(rows: number[]): void {
    this.consume(rows)
    this.pending = []
  }

  async next(k: number, score: (row: number) => number, order: OrderRows): Promise<Expected> {
    this.calls += 1
    const due = (this.calls - 1) % this.every === 0
    if (!due && this.pending.length >= k) {
      const out = this.pending.slice(0, k)
      this.pending = this.pending.slice(k)
      this.consume(out)
      return { indices: out, rescored: false }
    }
    const out: number[] = []
    const outScores: number[] = []
    while (out.length < k) {
      if (this.pool.length === 0) {
        if (!this.consumeOnce) break
        this.pool = range(this.n)
      }
      const sc = this.pool.map(score)
      const ordered = Array.from(await order(Int32Array.from(this.pool), Float64Array.from(sc)))
      const take = Math.min(k - out.length, ordered.length)
      for (let i = 0; i < take; i++) {
        out.push(ordered[i]!)
        outScores.push(sc[this.pool.indexOf(ordered[i]!)]!)
      }
      this.pending = ordered.slice(take)
      if (!this.consumeOnce) break
      this.consume(ordered.slice(0, take))
    }
    return { indices: cycle(out, k), scores: cycle(outScores, k), rescored: true }
  }
}

/**
 * Slice serving from its definition: the pass's slot plan (the ordering over ranks 0..N−1) is fixed per pass; at a
 * rescoring, the remaining slots, taken in the order of the ranks the plan gives them, receive the remaining rows
 * taken in the order of their current scores (rank r-th slot ← rank r-th row; equal scores: lower row first), and
 * the interval serves the next slots. Without consumption the slots are walked as a cycle and the whole pool is
 * matched to all of them.
 */
class SliceReference {
  pool: number[]
  /** Slots of the pass served so far (consume once), or the position in the cycle of slots. */
  pos = 0
  plan: number[] | undefined
  pending: number[] = []
  calls = 0

  constructor(
    readonly n: number,
    readonly every: number,
    readonly consumeOnce: boolean,
    readonly order: OrderRows,
  ) {
    this.pool = range(n)
  }

  private consume(rows: number[]): void {
    if (this.consumeOnce) {
      this.pool = this.pool.filter((r) => !rows.includes(r))
      this.pos += rows.length
    } else {
      this.pos = (this.pos + rows.length) % this.n
    }
  }

  warm(rows: number[]): void {
    // Warm-up rows take the pass's first slots when consumed; a non-consuming pool does not move.
    if (this.consumeOnce) this.consume(rows)
    this.pending = []
  }

  /** The remaining slots (in slot order) filled with the remaining rows by rank. */
  private async match(score: (row: number) => number): Promise<number[]> {
    this.plan ??= Array.from(await slotPlanOf(this.order)(this.n))
    const plan = this.plan
    const slots = this.consumeOnce ? range(this.n - this.pos).map((j) => this.pos + j) : range(this.n).map((j) => (this.pos + j) % this.n)
    const sc = new Map(this.pool.map((r) => [r, score(r)]))
    const rowAtRank = new Map<number, number>()
    for (const r of this.pool) {
      let rank = 0
      for (const s of this.pool) if (sc.get(s)! < sc.get(r)! || (sc.get(s) === sc.get(r) && s < r)) rank++
      rowAtRank.set(rank, r)
    }
    return slots.map((j) => {
      let rank = 0
      for (const i of slots) if (plan[i]! < plan[j]!) rank++
      return rowAtRank.get(rank)!
    })
  }

  async next(k: number, score: (row: number) => number): Promise<Expected> {
    this.calls += 1
    const due = (this.calls - 1) % this.every === 0
    if (!due && this.pending.length >= k) {
      const out = this.pending.slice(0, k)
      this.pending = this.pending.slice(k)
      this.consume(out)
      return { indices: out, rescored: false }
    }
    const out: number[] = []
    while (out.length < k) {
      if (this.pool.length === 0) {
        if (!this.consumeOnce) break
        this.pool = range(this.n)
        this.pos = 0
        this.plan = undefined
      }
      const assigned = await this.match(score)
      const take = Math.min(k - out.length, assigned.length)
      out.push(...assigned.slice(0, take))
      this.pending = assigned.slice(take)
      this.consume(assigned.slice(0, take))
      if (!this.consumeOnce) break
    }
    return { indices: cycle(out, k), scores: cycle(out.map(score), k), rescored: true }
  }
}

// ───────────────────────────── static ─────────────────────────────

describe('StaticStream', () => {
  it('orders once; the first take is the head, the cursor continues and wraps; scores follow the rows', async () => {
    const n = 10
    const model = new FakeModel(permutedScores(n, 3), 1.5)
    let orderCalls = 0
    const fold = pattern('folding', { layers: 3 })
    const deps = model.deps(async (rows, scores) => {
      orderCalls++
      return fold(rows, scores)
    })
    const full = Array.from(await fold(Int32Array.from(range(n)), Float64Array.from(range(n), (r) => model.score(r))))
    const stream = new StaticStream(Int32Array.from(range(n)))
    let cursor = 0
    const first = range(n).map((r) => model.score(r))
    for (const [i, k] of [4, 4, 4, 25, 1].entries()) {
      // The model keeps training; a static order does not look again.
      model.version = i
      const got = await stream.take(k, deps)
      const want = range(k).map((j) => full[(cursor + j) % n]!)
      cursor = (cursor + k) % n
      expectServed(got, { indices: want, scores: want.map((r) => first[r]!), rescored: i === 0 }, `take ${i}`)
    }
    expect(model.scoreCalls).toBe(1)
    expect(orderCalls).toBe(1)
    const state = stream.state()
    expectPlainJson(state)
    expect(state).toMatchObject({ cursor, order: full })
  })

  it('an ordering without scores (shuffle) serves no scores', async () => {
    const stream = new StaticStream(Int32Array.from(range(5)))
    const deps: ServeDeps = { score: async () => undefined, order: async (rows) => rows.slice().reverse() }
    expectServed(await stream.take(3, deps), { indices: [4, 3, 2], rescored: true }, 'first')
    expectServed(await stream.take(3, deps), { indices: [1, 0, 4], rescored: false }, 'second')
    const state = stream.state()
    expectPlainJson(state)
    expect(state).toEqual({ rows: [0, 1, 2, 3, 4], cursor: 1, order: [4, 3, 2, 1, 0], scores: null })
    // Restored, it goes on where it stood.
    expectServed(await StaticStream.restore(state).take(2, deps), { indices: [3, 2], rescored: false }, 'restored')
  })
})

// ───────────────────────────── dynamic: head ─────────────────────────────

describe('DynamicStream head serving (the Python DataFlex)', () => {
  it('a hand-worked example: sorted heads, pending rows between rescorings, refill at the pass end', async () => {
    // Scores 5 3 4 0 2 1 → ascending rows 3 5 4 1 2 0.
    const model = new FakeModel(Float64Array.from([5, 3, 4, 0, 2, 1]), 0)
    const stream = dynamic(6, 2, true, 'head', ascending)
    const deps = model.deps(ascending)
    const got = []
    for (let i = 0; i < 5; i++) got.push(await stream.next(4, deps))
    // 1: rescore [3 5 4 1], pending [2 0]; 2: not due, pending too short → rescore the rest [2 0] and refill [3 5];
    // 3: due → rescore what is left [4 1 2 0]; 4: not due, nothing pending → rescore the refilled pool.
    expect(got.map((s) => Array.from(s.indices))).toEqual([
      [3, 5, 4, 1],
      [2, 0, 3, 5],
      [4, 1, 2, 0],
      [3, 5, 4, 1],
      [2, 0, 3, 5],
    ])
    expect(got.map((s) => s.rescored)).toEqual([true, true, true, true, true])
    expectAllClose(got[1]!.scores!, [4, 5, 0, 1], EXACT, 'scores of a refilled interval')
  })

  it('equals the plain-loop DataFlex reference (N, k, reorder_every, consume_once, drifting scores, warm-up)', async () => {
    let cases = 0
    for (const n of [7, 12, 30]) {
      for (const k of [1, 3, 5, 8]) {
        for (const every of [1, 2, 3]) {
          for (const consumeOnce of [true, false]) {
            for (const { label, order } of ORDERS) {
              for (const drift of [0, 2.5]) {
                for (const warm of [false, true]) {
                  const what = `n=${n} k=${k} every=${every} consume=${consumeOnce} ${label} drift=${drift} warm=${warm}`
                  const model = new FakeModel(permutedScores(n, n * 31 + k), drift)
                  const stream = dynamic(n, every, consumeOnce, 'head', order)
                  const ref = new HeadReference(n, every, consumeOnce)
                  const deps = model.deps(order)
                  if (warm) {
                    const w = stream.warmup(k, Rng.derive(n, 'warm'))
                    ref.warm([...new Set(w.indices)])
                  }
                  for (let call = 0; call < Math.ceil((3 * n) / k) + 2; call++) {
                    model.version = call
                    const want = await ref.next(k, (r) => model.score(r), order)
                    expectServed(await stream.next(k, deps), want, `${what} call ${call}`)
                  }
                  cases++
                }
              }
            }
          }
        }
      }
    }
    expect(cases).toBe(3 * 4 * 3 * 2 * 3 * 2 * 2)
  })

  it('without consume_once every interval orders the whole pool; a short pool cycles to k', async () => {
    const model = new FakeModel(Float64Array.from([2, 0, 1]), 0)
    const stream = dynamic(3, 1, false, 'head', ascending)
    for (let i = 0; i < 3; i++) {
      const got = await stream.next(5, model.deps(ascending))
      expectServed(got, { indices: [1, 2, 0, 1, 2], scores: [0, 1, 2, 0, 1], rescored: true }, `call ${i}`)
    }
    expect((stream.state() as { pool: number[] }).pool).toEqual([0, 1, 2])
  })
})

// ───────────────────────────── dynamic: both servings ─────────────────────────────

describe('DynamicStream: warm-up and passes', () => {
  it('the warm-up draws distinct rows, seeded, and consumes them; a short pool cycles', async () => {
    for (const serve of ['head', 'slice'] as const) {
      const stream = dynamic(10, 1, true, serve, ascending)
      const w = stream.warmup(4, Rng.derive(7, 'warm'))
      const again = dynamic(10, 1, true, serve, ascending).warmup(4, Rng.derive(7, 'warm'))
      expect(Array.from(w.indices)).toEqual(Array.from(again.indices))
      expect(new Set(w.indices).size).toBe(4)
      expect(w.rescored).toBe(false)
      expect(w.scores).toBeUndefined()
      const rest = range(10).filter((r) => !w.indices.includes(r))
      expect((stream.state() as { pool: number[] }).pool).toEqual(rest)
      // The pass goes on with the six other rows, each once.
      const model = new FakeModel(permutedScores(10, 5), 0)
      const served = [...(await stream.next(3, model.deps(ascending))).indices, ...(await stream.next(3, model.deps(ascending))).indices]
      expect(served.sort((a, b) => a - b)).toEqual(rest)
      // The pass is used up: a warm-up now refills the pool first.
      const w2 = stream.warmup(4, Rng.derive(8, 'warm'))
      expect(new Set(w2.indices).size).toBe(4)
      const short = dynamic(3, 1, true, serve, ascending).warmup(5, Rng.derive(9, 'warm'))
      expect(short.indices.length).toBe(5)
      expect(new Set(short.indices).size).toBe(3)
      expect(Array.from(short.indices.subarray(3))).toEqual(Array.from(short.indices.subarray(0, 2)))
    }
  })

  it('with consume_once every row is served exactly once per pass, under drifting scores, in both servings', async () => {
    for (const serve of ['head', 'slice'] as const) {
      for (const { label, order } of ORDERS) {
        for (const [n, k, every] of [
          [12, 5, 1],
          [30, 4, 2],
          [17, 17, 3],
          [9, 2, 3],
        ] as const) {
          const model = new FakeModel(permutedScores(n, k), 3)
          const stream = dynamic(n, every, true, serve, order)
          const served: number[] = []
          for (let call = 0; served.length < 3 * n; call++) {
            model.version = call
            served.push(...(await stream.next(k, model.deps(order))).indices)
          }
          for (let pass = 0; pass < 3; pass++) {
            const rows = served.slice(pass * n, (pass + 1) * n).sort((a, b) => a - b)
            expect(rows, `${serve} ${label} n=${n} k=${k} every=${every} pass ${pass}`).toEqual(range(n))
          }
        }
      }
    }
  })

  it('state() is plain JSON', async () => {
    for (const serve of ['head', 'slice'] as const) {
      const model = new FakeModel(permutedScores(8, 1), 1)
      const stream = dynamic(8, 2, true, serve, ascending)
      expectPlainJson(stream.state())
      stream.warmup(2, Rng.derive(1, 'warm'))
      await stream.next(3, model.deps(ascending))
      const state = stream.state()
      expectPlainJson(state)
      expect(state).toMatchObject({ calls: 1, served: 5 })
      expect((state as { pool: number[] }).pool.length).toBe(3)
      expect((state as { slots: number[] | null }).slots === null).toBe(serve === 'head')
    }
  })
})

// ───────────────────────────── dynamic: slice ─────────────────────────────

/** The mean score of each consecutive chunk of k served rows. */
function chunkMeans(scores: number[], k: number): number[] {
  const out: number[] = []
  for (let s = 0; s < scores.length; s += k) {
    let sum = 0
    for (let i = s; i < s + k; i++) sum += scores[i]!
    out.push(sum / k)
  }
  return out
}

describe('DynamicStream slice serving', () => {
  it('with fixed scores a pass is the pattern applied once to the whole pool', async () => {
    for (const { label, order } of ORDERS) {
      for (const [n, k, every] of [
        [12, 3, 1],
        [12, 5, 2],
        [30, 4, 3],
        [30, 7, 1],
      ] as const) {
        const model = new FakeModel(permutedScores(n, 17), 0)
        const stream = dynamic(n, every, true, 'slice', order)
        const served: number[] = []
        while (served.length < n) served.push(...(await stream.next(k, model.deps(order))).indices)
        const whole = await order(Int32Array.from(range(n)), Float64Array.from(range(n), (r) => model.score(r)))
        expect(served.slice(0, n), `${label} n=${n} k=${k} every=${every}`).toEqual(Array.from(whole))
      }
    }
  })

  it('without consume_once the slots are walked as a cycle, also across the intervals between rescorings', async () => {
    for (const { label, order } of ORDERS) {
      for (const every of [1, 2, 3]) {
        const n = 12
        const k = 5
        const model = new FakeModel(permutedScores(n, 41), 0)
        const stream = dynamic(n, every, false, 'slice', order)
        const served: number[] = []
        for (let i = 0; i < 6; i++) served.push(...(await stream.next(k, model.deps(order))).indices)
        const whole = Array.from(await order(Int32Array.from(range(n)), Float64Array.from(range(n), (r) => model.score(r))))
        expect(served, `${label} every=${every}`).toEqual(range(30).map((i) => whole[i % n]!))
      }
    }
  })

  it('realises the whole shape of folding L=3 where head collapses to near sorting (chunk score means)', async () => {
    const n = 60
    const k = 10
    const fold = pattern('folding', { layers: 3 })
    const scores = permutedScores(n, 23)
    const run = async (serve: 'head' | 'slice'): Promise<number[]> => {
      const model = new FakeModel(scores, 0)
      const stream = dynamic(n, 1, true, serve, fold)
      const out: number[] = []
      for (let i = 0; i < n / k; i++) out.push(...(await stream.next(k, model.deps(fold))).scores!)
      return chunkMeans(out, k)
    }
    // Scores are ranks, so the pass folds ranks: 0 3 … 57 | 1 4 … 58 | 2 5 … 59, ten to a chunk: three sweeps.
    const cycles = [0, 1, 2].flatMap((l) => range(n / 3).map((i) => l + 3 * i))
    const slice = await run('slice')
    expectAllClose(slice, chunkMeans(cycles, k), EXACT, 'slice chunk means')
    expect(slice).toEqual([13.5, 43.5, 14.5, 44.5, 15.5, 45.5])
    // Head takes the first cycle of the fold over what is left each time: the low scores first, a rising stream.
    const ref = new HeadReference(n, 1, true)
    const headServed: number[] = []
    for (let i = 0; i < n / k; i++) headServed.push(...(await ref.next(k, (r) => scores[r]!, fold)).scores!)
    const head = await run('head')
    expectAllClose(head, chunkMeans(headServed, k), EXACT, 'head chunk means')
    expectAllClose(head, [13.5, 20.2, 28, 36.6, 33.7, 45], EXACT, 'head chunk means (worked out)')
    const largestFall = (m: number[]): number => Math.max(...m.slice(1).map((x, i) => m[i]! - x))
    expect(largestFall(slice)).toBe(29)
    expectClose(largestFall(head), 2.9, { rel: 1e-9 }, 'head largest fall')
  })

  it('realises the shape of saw where head does not (slot plan vs heads over what is left)', async () => {
    const n = 60
    const k = 6
    const saw = pattern('saw', { num_sections: 3, folding_ratio: 0.15, layers: 2 })
    const scores = permutedScores(n, 29)
    const served = async (serve: 'head' | 'slice'): Promise<number[]> => {
      const model = new FakeModel(scores, 0)
      const stream = dynamic(n, 1, true, serve, saw)
      const out: number[] = []
      for (let i = 0; i < n / k; i++) out.push(...(await stream.next(k, model.deps(saw))).scores!)
      return out
    }
    const whole = Array.from(await saw(Int32Array.from(range(n)), scores))
    const slice = await served('slice')
    expect(slice).toEqual(whole.map((r) => scores[r]!))
    const head = await served('head')
    expect(head).not.toEqual(slice)
    // Descents in the served stream: the zigzag's backward cycles in slice; head serves each interval's head.
    const descents = (xs: number[]): number => xs.slice(1).filter((x, i) => x < xs[i]!).length
    expect(descents(slice)).toBeGreaterThan(descents(head))
  })

  it('equals the plain-loop rank-matching reference (drifting scores, reorder_every, consume_once, warm-up)', async () => {
    let cases = 0
    for (const n of [7, 12, 30]) {
      for (const k of [1, 3, 5, 8]) {
        for (const every of [1, 2, 3]) {
          for (const consumeOnce of [true, false]) {
            for (const { label, order } of ORDERS) {
              for (const warm of [false, true]) {
                const what = `n=${n} k=${k} every=${every} consume=${consumeOnce} ${label} warm=${warm}`
                const model = new FakeModel(permutedScores(n, n * 7 + k), 2.5)
                const stream = dynamic(n, every, consumeOnce, 'slice', order)
                const ref = new SliceReference(n, every, consumeOnce, order)
                const deps = model.deps(order)
                if (warm) ref.warm([...new Set(stream.warmup(k, Rng.derive(n, 'warm')).indices)])
                for (let call = 0; call < Math.ceil((3 * n) / k) + 2; call++) {
                  model.version = call
                  const want = await ref.next(k, (r) => model.score(r))
                  expectServed(await stream.next(k, deps), want, `${what} call ${call}`)
                }
                cases++
              }
            }
          }
        }
      }
    }
    expect(cases).toBe(3 * 4 * 3 * 2 * 3 * 2)
  })
})

describe('checkOrder: what order() returns must be a permutation of the indices given, or a prefix of one', () => {
  const rows = Int32Array.from([7, 3, 9, 3]) // a pool may hold a row twice (draws with replacement)
  const code = (res: unknown): string | undefined => {
    try {
      checkOrder(res, rows, 's', 4)
      return undefined
    } catch (err) {
      expect(err).toBeInstanceOf(StrategyError)
      return (err as StrategyError).code
    }
  }

  it('accepts permutations and prefixes, typed or plain', () => {
    expect(Array.from(checkOrder({ order: Int32Array.from([3, 9, 7, 3]) }, rows, 's', 4))).toEqual([3, 9, 7, 3])
    expect(Array.from(checkOrder({ order: [9, 3] }, rows, 's', 4))).toEqual([9, 3])
  })

  it('refuses anything else, naming the strategy and the step', () => {
    expect(code({ order: [3, 3, 3] })).toBe('bad_index') // 3 given twice, returned three times
    expect(code({ order: [7, 8] })).toBe('bad_index')
    expect(code({ order: [7, 3, 9, 3, 7] })).toBe('too_many_indices')
    expect(code({ order: 'ascending' })).toBe('bad_index')
    expect(code(undefined)).toBe('bad_index')
    expect(() => checkOrder({ order: [7, 7] }, rows, 'mine', 12)).toThrow("mine: order() at step 12: entry 7 at position 1 repeats an index")
  })
})
