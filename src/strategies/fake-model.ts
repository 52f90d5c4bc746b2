/**
 * A deterministic stand-in for `ModelOps` (what a strategy asks of the model), so that a strategy can be unit-tested
 * without a sidecar. Each op answers sample by sample: from a table the test gives (per split), from a function of
 * (split, index), or, when neither is given, with a value seeded by (seed, op, split, index) — the same sample gets the
 * same answer whatever batch it is asked in, as with the real executor. Every call is recorded in `calls`.
 */
import { Rng } from '../math/rng.ts'
import { l2NormalizeRows } from '../math/stats.ts'
import type { EmbeddingOptions, GradientOptions, LossOptions, Matrix, ModelOps, RouterLoads, Split } from './types.ts'

/** Per split ('train', 'eval', 'eval:<dataset>'), a value of T; a split left out is answered like an op not given. */
export type PerSplit<T> = { readonly [S in Split]?: T }

/** Rows of a table: a row-major Matrix, or one array per row. */
export type Rows = Matrix | readonly ArrayLike<number>[]

/** A row per sample: from tables, or a function of the sample (and the op's options). */
export type RowSource<O> = PerSplit<Rows> | ((split: Split, index: number, opts: O) => ArrayLike<number>)

export interface FakeModelOptions {
  readonly numTrain: number
  /** Default 0. */
  readonly numEval?: number
  /** Seeds every op answered without a table or function (default 0). */
  readonly seed?: number
  /** Per-sample mean token loss. Seeded: uniform in [0.5, 2.5). */
  readonly losses?: PerSplit<ArrayLike<number>> | ((split: Split, index: number) => number)
  /**
   * Projected gradients: each row must have `projDim` values (what the real op returns); `normalize` is applied to
   * them. Seeded: standard normal entries, their stream keyed by the projector seed and the preconditioning too.
   */
  readonly gradients?: RowSource<GradientOptions>
  /** Pooled hidden states; `normalize` is applied. Seeded: `hidden` standard normal entries, keyed by layer, pooling and model too. */
  readonly embeddings?: RowSource<EmbeddingOptions>
  /** Width of seeded embeddings (default 16). */
  readonly hidden?: number
  /** Expert loads of a mixture-of-experts model (rows of layers·experts counts); without them routerLoads fails, as for a dense model. */
  readonly routerLoads?: { readonly layers: number; readonly experts: number; readonly topK: number; readonly loads: RowSource<{ batchSize?: number }> }
}

export interface FakeCall {
  readonly op: 'losses' | 'gradients' | 'embeddings' | 'routerLoads'
  readonly split: Split
  readonly indices: number[]
  readonly options: unknown
}

export interface FakeModelOps extends ModelOps {
  /** Every op asked so far, in order. */
  readonly calls: FakeCall[]
}

const SEEDED_LOSS_MIN = 0.5
const SEEDED_LOSS_SPAN = 2

function isMatrix(t: Rows | ArrayLike<number>): t is Matrix {
  return typeof (t as Matrix).cols === 'number'
}

/** Rows of a table, or entries of a loss table. */
function lengthOf(t: Rows | ArrayLike<number>): number {
  return isMatrix(t) ? t.rows : t.length
}

function rowOf(rows: Rows, i: number): ArrayLike<number> {
  return isMatrix(rows) ? rows.data.subarray(i * rows.cols, (i + 1) * rows.cols) : rows[i]!
}

/** Stacks per-sample rows into a Matrix (every row as wide as the first). */
function stack(rows: ArrayLike<number>[], what: string, width?: number): Matrix {
  const cols = width ?? rows[0]?.length ?? 0
  const data = new Float32Array(rows.length * cols)
  rows.forEach((r, k) => {
    if (r.length !== cols) throw new RangeError(`fakeModelOps: ${what} row ${k} has ${r.length} values, expected ${cols}`)
    data.set(r, k * cols)
  })
  return { data, rows: rows.length, cols }
}

function normalRow(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal())
}

/** A ModelOps answering from tables, functions or seeded values (see the module comment). */
export function fakeModelOps(options: FakeModelOptions): FakeModelOps {
  const { numTrain, numEval = 0, seed = 0, hidden = 16 } = options
  for (const [name, v] of [['numTrain', numTrain], ['numEval', numEval], ['hidden', hidden]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`fakeModelOps: ${name} must be a non-negative integer, got ${v}`)
  }
  const sizeOf = (split: Split): number | undefined => (split === 'train' ? numTrain : split === 'eval' ? numEval : undefined)
  // A table of a fixed-size split must cover exactly its rows: a short one is a mistake in the test.
  const checkTables = (what: string, tables: PerSplit<Rows | ArrayLike<number>> | undefined): void => {
    if (tables === undefined || typeof tables === 'function') return
    for (const [split, t] of Object.entries(tables) as [Split, Rows | ArrayLike<number>][]) {
      const n = sizeOf(split)
      const len = lengthOf(t)
      if (n !== undefined && len !== n) throw new RangeError(`fakeModelOps: ${what}.${split} has ${len} rows, the split has ${n}`)
    }
  }
  checkTables('losses', options.losses as PerSplit<ArrayLike<number>> | undefined)
  checkTables('gradients', options.gradients as PerSplit<Rows> | undefined)
  checkTables('embeddings', options.embeddings as PerSplit<Rows> | undefined)
  checkTables('routerLoads', options.routerLoads?.loads as PerSplit<Rows> | undefined)

  const calls: FakeCall[] = []
  const record = (op: FakeCall['op'], split: Split, indices: Int32Array, opts: unknown): number[] => {
    const list = Array.from(indices)
    const n = sizeOf(split)
    for (const [k, i] of list.entries()) {
      if (!Number.isInteger(i) || i < 0 || (n !== undefined && i >= n)) {
        throw new RangeError(`fakeModelOps.${op}: index ${i} at position ${k} is outside split '${split}'${n === undefined ? '' : ` [0, ${n})`}`)
      }
    }
    calls.push({ op, split, indices: list, options: opts })
    return list
  }
  /** Row `index` of a split's table (undefined: no table for that split). */
  const fromTable = <T extends Rows | ArrayLike<number>>(op: string, tables: PerSplit<T>, split: Split, index: number): T | undefined => {
    const t = tables[split]
    if (t === undefined) return undefined
    const len = lengthOf(t)
    if (index >= len) throw new RangeError(`fakeModelOps.${op}: index ${index} is past the ${len} rows given for split '${split}'`)
    return t
  }
  const rowsFrom = <O>(op: string, source: RowSource<O> | undefined, split: Split, list: number[], opts: O, seeded: (index: number) => ArrayLike<number>): ArrayLike<number>[] =>
    list.map((i) => {
      if (typeof source === 'function') return source(split, i, opts)
      const table = source === undefined ? undefined : fromTable(op, source, split, i)
      return table === undefined ? seeded(i) : rowOf(table, i)
    })
  const normalized = (m: Matrix, on: boolean): Matrix => {
    if (on) l2NormalizeRows(m.data, m.rows, m.cols)
    return m
  }

  return {
    numTrain,
    numEval,
    calls,
    async losses(split: Split, indices: Int32Array, opts: LossOptions = {}): Promise<Float32Array> {
      const list = record('losses', split, indices, opts)
      const source = options.losses
      return Float32Array.from(list, (i) => {
        if (typeof source === 'function') return source(split, i)
        const table = source === undefined ? undefined : fromTable('losses', source, split, i)
        if (table !== undefined) return table[i]!
        return SEEDED_LOSS_MIN + SEEDED_LOSS_SPAN * Rng.derive(seed, 'losses', split, i).float()
      })
    },
    async gradients(split: Split, indices: Int32Array, opts: GradientOptions): Promise<Matrix> {
      const list = record('gradients', split, indices, opts)
      const rows = rowsFrom('gradients', options.gradients, split, list, opts, (i) =>
        normalRow(Rng.derive(seed, 'gradients', split, i, opts.seed, opts.precondition), opts.projDim),
      )
      return normalized(stack(rows, 'gradients', opts.projDim), opts.normalize)
    },
    async embeddings(split: Split, indices: Int32Array, opts: EmbeddingOptions): Promise<Matrix> {
      const list = record('embeddings', split, indices, opts)
      const rows = rowsFrom('embeddings', options.embeddings, split, list, opts, (i) =>
        normalRow(Rng.derive(seed, 'embeddings', split, i, opts.layer, opts.pooling, opts.model ?? ''), hidden),
      )
      return normalized(stack(rows, 'embeddings'), opts.normalize)
    },
    async routerLoads(split: Split, indices: Int32Array, opts: { batchSize?: number } = {}): Promise<RouterLoads> {
      const list = record('routerLoads', split, indices, opts)
      const moe = options.routerLoads
      if (moe === undefined) throw new Error('router_loads: not a mixture-of-experts model (fakeModelOps was given no routerLoads)')
      const rows = rowsFrom('routerLoads', moe.loads, split, list, opts, () => {
        throw new Error(`fakeModelOps.routerLoads: no loads given for split '${split}'`)
      })
      return { loads: stack(rows, 'routerLoads', moe.layers * moe.experts), layers: moe.layers, experts: moe.experts, topK: moe.topK }
    },
  }
}
