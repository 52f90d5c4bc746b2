/**
 * `dataflex prepare`: exact k-NN and TSDS against independent references written here from the formulas of
 * docs/algorithms.md#offline-half-dataflex-prepare-tsds on small fixed inputs, plus one end-to-end run of the CLI on
 * the tiny model.
 */
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT, resolvePython, sidecarEnv } from '../src/bridge/index.ts'
import { Rng } from '../src/math/rng.ts'
import { exactKnn, forEachKnnChunk, type Rows } from '../src/prepare/knn.ts'
import { parsePrepareOptions } from '../src/prepare/options.ts'
import { kernelDensity, tsdsProbabilities, uniqueIds, waterFill } from '../src/prepare/tsds.ts'
import { asFloatVector, asIntMatrix, readNpy } from '../src/strategies/npy.ts'
import { expectAllClose, expectClose } from './close.ts'
import { TINY_MODEL, tempDir, tinyConfig, writeConfig } from './support.ts'

// ------------------------------------------------------------------------------------------------ fixtures

/** Rows on the unit sphere, with some exact duplicates (ties) when `dupEvery` is set. */
function unitRows(rows: number, cols: number, seed: number, dupEvery = 0): Rows {
  const rng = new Rng(seed)
  const data = new Float32Array(rows * cols)
  for (let r = 0; r < rows; r++) {
    if (dupEvery > 0 && r > 0 && r % dupEvery === 0) {
      data.copyWithin(r * cols, (r - 1) * cols, r * cols)
      continue
    }
    let s = 0
    for (let c = 0; c < cols; c++) {
      const v = rng.normal()
      data[r * cols + c] = v
      s += v * v
    }
    for (let c = 0; c < cols; c++) data[r * cols + c] = data[r * cols + c]! / Math.sqrt(s)
  }
  return { data, rows, cols }
}

// -------------------------------------------------------------------------------------------- references

/** Squared distance as docs/algorithms.md states it: Σ_c (q_c − x_c)², read as float32 inputs. */
function sq(a: Rows, i: number, b: Rows, j: number): number {
  let s = 0
  for (let c = 0; c < a.cols; c++) s += (a.data[i * a.cols + c]! - b.data[j * b.cols + c]!) ** 2
  return s
}

/** k-NN by sorting every candidate: (distance, index) ascending. */
function refKnn(q: Rows, x: Rows, k: number): { idx: number[][]; d2: number[][] } {
  const idx: number[][] = []
  const d2: number[][] = []
  for (let i = 0; i < q.rows; i++) {
    const all = Array.from({ length: x.rows }, (_, j) => ({ j, d: sq(q, i, x, j) }))
    all.sort((a, b) => a.d - b.d || a.j - b.j)
    idx.push(all.slice(0, k).map((e) => e.j))
    d2.push(all.slice(0, k).map((e) => e.d))
  }
  return { idx, d2 }
}

/**
 * TSDS straight from docs/algorithms.md#offline-half-dataflex-prepare-tsds without a heap: every round scans all
 * queries for the smallest (c, k, j) frontier, and recomputes cost_j = Σ_{i≤k} (d_{j,k+1} − d_{j,i}) / κ_{j,i} and
 * the total from scratch.
 */
function refTsds(q: Rows, x: Rows, p: { k: number; kdeK: number; sigma: number; alpha: number; c: number }): number[] {
  const m = q.rows
  const n = x.rows
  const K = Math.min(p.k, n)
  const nb = refKnn(q, x, K)
  const dist = nb.d2.map((row) => row.map(Math.sqrt))
  // κ over the distinct neighbours, each against all distinct neighbours (itself included).
  const ids = [...new Set(nb.idx.flat())].sort((a, b) => a - b)
  const kappaOf = new Map<number, number>()
  for (const u of ids) {
    if (p.sigma === 0) {
      kappaOf.set(u, 1)
      continue
    }
    const d2s = ids.map((v) => sq(x, u, x, v)).sort((a, b) => a - b)
    const kk = Math.min(p.kdeK, ids.length)
    kappaOf.set(u, d2s.slice(0, kk).reduce((s, d) => s + Math.max(0, 1 - d / (p.sigma * p.sigma)), 0))
  }
  const kap = nb.idx.map((row) => row.map((u) => kappaOf.get(u)!))

  const frontier: ({ c: number; k: number } | undefined)[] = Array.from({ length: m }, (_, j) => ({ c: 1 / kap[j]![0]!, k: 0 }))
  const costs = new Array<number>(m).fill(0)
  const lastK = new Array<number>(m).fill(-1)
  let s = 0
  if (K >= 2) {
    for (;;) {
      let best = -1
      for (let j = 0; j < m; j++) {
        const f = frontier[j]
        if (f === undefined) continue
        const b = best >= 0 ? frontier[best]! : undefined
        if (b === undefined || f.c < b.c || (f.c === b.c && f.k < b.k)) best = j
      }
      if (best < 0) break
      const { c, k } = frontier[best]!
      frontier[best] = undefined
      s = c
      let cost = 0
      for (let i = 0; i <= k; i++) cost += (dist[best]![k + 1]! - dist[best]![i]!) / kap[best]![i]!
      costs[best] = cost
      const total = costs.reduce((a, b) => a + b, 0)
      if ((p.alpha / p.c) * total >= (1 - p.alpha) * m) break
      lastK[best] = k
      if (k < K - 2) frontier[best] = { c: c + 1 / kap[best]![k + 1]!, k: k + 1 }
    }
  }
  const probs = new Array<number>(n).fill(0)
  for (let j = 0; j < m; j++) {
    let spent = 0
    for (let i = 0; i <= lastK[j]!; i++) {
      const w = 1 / m / (s * kap[j]![i]!)
      probs[nb.idx[j]![i]!]! += w
      spent += w
    }
    probs[nb.idx[j]![lastK[j]! + 1]!]! += Math.max(1 / m - spent, 0)
  }
  const total = probs.reduce((a, b) => a + Math.max(0, b), 0)
  return probs.map((v) => Math.max(0, v) / total)
}

// ------------------------------------------------------------------------------------------------- k-NN

describe('exact k-NN', () => {
  it('equals a full sort, ties by lower index, for any chunking', () => {
    const base = unitRows(57, 9, 1, 5) // rows 5, 10, … duplicate their predecessor
    const queries = unitRows(13, 9, 2)
    const ref = refKnn(queries, base, 11)
    for (const opts of [{}, { queryChunk: 1, baseChunk: 1 }, { queryChunk: 4, baseChunk: 7 }]) {
      const nb = exactKnn(queries, base, 11, opts)
      expect(Array.from(nb.indices)).toEqual(ref.idx.flat())
      expect(Array.from(nb.sqDist)).toEqual(ref.d2.flat())
    }
  })

  it('finds a query that is a pool row at distance exactly 0, the lower duplicate first', () => {
    const base = unitRows(20, 6, 3, 4)
    const queries: Rows = { data: base.data.slice(4 * 6, 5 * 6), rows: 1, cols: 6 } // row 4 = row 3
    const nb = exactKnn(queries, base, 3)
    expect(Array.from(nb.indices.subarray(0, 2))).toEqual([3, 4])
    expect(nb.sqDist[0]).toBe(0)
    expect(nb.sqDist[1]).toBe(0)
  })

  it('streams chunks covering every query once', () => {
    const base = unitRows(30, 4, 4)
    const queries = unitRows(10, 4, 5)
    const seen: number[] = []
    forEachKnnChunk(queries, base, 2, (start, count) => seen.push(...Array.from({ length: count }, (_, i) => start + i)), { queryChunk: 3 })
    expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => i))
  })

  it('rejects k outside [1, N] and mismatched widths', () => {
    const base = unitRows(5, 3, 6)
    expect(() => exactKnn(unitRows(2, 3, 7), base, 6)).toThrow(/k must be/)
    expect(() => exactKnn(unitRows(2, 4, 7), base, 2)).toThrow(/columns/)
  })
})

// ------------------------------------------------------------------------------------------------- TSDS

describe('TSDS water-filling', () => {
  it('matches a hand computation (one query, κ ≡ 1)', () => {
    // d = 0, 1, 2, 3: levels c = 1, 2, 3; costs 1, 3, 6.
    const idx = Int32Array.from([7, 2, 5, 0])
    const d = Float64Array.from([0, 1, 2, 3])
    const one = new Float64Array(4).fill(1)
    // α/C · total ≥ (1−α)·M with α = 0.5: C = 1 stops at the first pop (all mass on the nearest).
    expect(Array.from(waterFill(idx, d, one, 1, 4, 8, { alpha: 0.5, c: 1 }).probs)).toEqual([0, 0, 0, 0, 0, 0, 0, 1])
    // C = 2 stops at the second pop (total 3): lastK = 0, s = 2 → 1/2 at rank 0, the leftover 1/2 at rank 1.
    const two = waterFill(idx, d, one, 1, 4, 8, { alpha: 0.5, c: 2 })
    expect(two.level).toBe(2)
    expect(two.stopped).toBe(true)
    expect(Array.from(two.probs)).toEqual([0, 0, 0.5, 0, 0, 0, 0, 0.5])
    // C = 10 never stops: ranks 0..2 at level 3, rank 3 gets the (zero) leftover.
    const ten = waterFill(idx, d, one, 1, 4, 8, { alpha: 0.5, c: 10 })
    expect(ten.stopped).toBe(false)
    expect(ten.lastK[0]).toBe(2)
    for (const [i, v] of [[7, 1 / 3], [2, 1 / 3], [5, 1 / 3], [0, 0]] as const) expectClose(ten.probs[i], v, { rel: 1e-14, scale: 1 })
  })

  it('matches the reference on random inputs, for several α, C, σ and K', () => {
    const base = unitRows(40, 5, 11, 7)
    const queries = unitRows(6, 5, 12)
    const cases = [
      { k: 40, kdeK: 40, sigma: 0.75, alpha: 0.6, c: 5.0 }, // the defaults, capped at N
      { k: 12, kdeK: 5, sigma: 0.9, alpha: 0.6, c: 5.0 },
      { k: 10, kdeK: 8, sigma: 1.2, alpha: 0.9, c: 0.5 }, // stops early
      { k: 25, kdeK: 10, sigma: 0, alpha: 0.2, c: 3.0 }, // κ ≡ 1
      { k: 1, kdeK: 3, sigma: 0.5, alpha: 0.6, c: 5.0 }, // K = 1: all mass on the nearest
      { k: 2, kdeK: 3, sigma: 0.5, alpha: 0.3, c: 50 },
      { k: 10, kdeK: 8, sigma: 0.75, alpha: 0.99, c: 0.1 }, // stops at the first pop: queries never advanced
    ]
    for (const p of cases) {
      const got = tsdsProbabilities(queries, base, p)
      const want = refTsds(queries, base, p)
      expect(got.probs.length).toBe(40)
      expectAllClose(got.probs, want, { rel: 1e-12, scale: 1 }, 'probability')
      expectClose(got.probs.reduce((a, b) => a + b, 0), 1, { rel: 1e-12 })
    }
  })

  it('density: κ ≥ 1 (self included), larger in denser places, ≡ 1 at σ = 0', () => {
    const base = unitRows(30, 4, 21, 3)
    const ids = uniqueIds(Int32Array.from([9, 3, 3, 0, 29, 10, 9]))
    expect(Array.from(ids)).toEqual([0, 3, 9, 10, 29])
    const kappa = kernelDensity(base, ids, 5, 1.0)
    for (let u = 0; u < ids.length; u++) {
      expect(kappa[u]).toBeGreaterThanOrEqual(1)
      let want = 0
      for (let v = 0; v < ids.length; v++) want += Math.max(0, 1 - sq(base, ids[u]!, base, ids[v]!))
      expectClose(kappa[u], want, { rel: 1e-12 })
    }
    expect(Array.from(kernelDensity(base, ids, 5, 0))).toEqual([1, 1, 1, 1, 1])
  })

  it('rejects bad parameters and ids', () => {
    const one = new Float64Array(2).fill(1)
    const d = Float64Array.from([0, 1])
    expect(() => waterFill(Int32Array.from([0, 1]), d, one, 1, 2, 2, { alpha: 1.5, c: 1 })).toThrow(/alpha/)
    expect(() => waterFill(Int32Array.from([0, 1]), d, one, 1, 2, 2, { alpha: 0.5, c: 0 })).toThrow(/C must/)
    expect(() => waterFill(Int32Array.from([0, -1]), d, one, 1, 2, 2, { alpha: 0.5, c: 1 })).toThrow(/out of/)
  })
})

// ---------------------------------------------------------------------------------------------- options

describe('prepare options', () => {
  it('defaults per method and rejects misuse with the flag named', () => {
    const near = parsePrepareOptions('near', 'c.yaml', [], { out: 'x.npy' }, '/tmp')
    expect(near).toMatchObject({ method: 'near', k: 1000, queries: 'eval', out: '/tmp/x.npy' })
    const tsds = parsePrepareOptions('tsds', 'c.yaml', [], { out: 'p.npy', sigma: '0', alpha: '1' }, '/tmp')
    expect(tsds).toMatchObject({ k: 5000, kdeK: 1000, sigma: 0, alpha: 1, c: 5 })
    expect(() => parsePrepareOptions('far', 'c.yaml', [], { out: 'x.npy' })).toThrow(/unknown prepare method/)
    expect(() => parsePrepareOptions('near', 'c.yaml', [], {})).toThrow(/--out/)
    expect(() => parsePrepareOptions('near', 'c.yaml', [], { out: 'x.npy', sigma: '1' })).toThrow(/--sigma applies to 'prepare tsds' only/)
    expect(() => parsePrepareOptions('tsds', 'c.yaml', [], { out: 'x.npy', alpha: '2' })).toThrow(/--alpha/)
    expect(() => parsePrepareOptions('tsds', 'c.yaml', [], { out: 'x.npy', k: '0' })).toThrow(/--k/)
    expect(() => parsePrepareOptions('tsds', 'c.yaml', [], { out: 'x.npy', embedModel: '/nonexistent/model' })).toThrow(/--embed-model/)
  })
})

// -------------------------------------------------------------------------------------------- end to end

const CAN_RUN = existsSync(resolvePython().executable) && existsSync(TINY_MODEL)
const run = promisify(execFile)

async function prepare(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [join(REPO_ROOT, 'bin', 'dataflex.mjs'), 'prepare', ...args], {
    cwd: REPO_ROOT,
    env: sidecarEnv(process.env),
    timeout: 240_000,
  })
}

interface Meta {
  method: string
  shape: number[]
  params: Record<string, number>
  config: { sha256: string }
  model: { sha256: string }
  data: { train: { rows: number; embeddings_sha256: string }; queries: { rows: number; source: string; embeddings_sha256: string } }
}

describe.skipIf(!CAN_RUN)('dataflex prepare on the tiny model', () => {
  it('near with a train dataset as queries finds each query at its own train row; tsds on the eval set', { timeout: 400_000 }, async () => {
    const dir = tempDir('prepare')
    const cfg = writeConfig(dir, 'cfg.yaml', tinyConfig(join(dir, 'out')))

    // The train set is arith_clean[:26] + facts[:26]; arith_clean as the queries is train rows 0..25 again, so
    // each query's nearest row is itself: the indices align with the preprocessed train set.
    const nearOut = join(dir, 'top_indices.npy')
    await prepare(['near', cfg, '--out', nearOut, '--queries', 'arith_clean', '--k', '4'])
    const near = asIntMatrix(readNpy(nearOut))
    expect([near.rows, near.cols]).toEqual([26, 4])
    for (let j = 0; j < 26; j++) {
      expect(near.data[j * 4]).toBe(j)
      const row = Array.from(near.data.subarray(j * 4, j * 4 + 4))
      expect(new Set(row).size).toBe(4)
      for (const v of row) expect(v >= 0 && v < 52).toBe(true)
    }
    const nearMeta = JSON.parse(readFileSync(`${nearOut}.json`, 'utf8')) as Meta
    expect(nearMeta).toMatchObject({ method: 'near', shape: [26, 4], params: { k: 4 } })
    expect(nearMeta.data.queries).toMatchObject({ source: 'arith_clean', rows: 26 })

    const tsdsOut = join(dir, 'tsds_probs.npy')
    const { stdout } = await prepare(['tsds', cfg, '--out', tsdsOut])
    expect(stdout).toMatch(/wrote .*tsds_probs\.npy \(<f8, shape \[52\]\)/)
    const probs = asFloatVector(readNpy(tsdsOut), 52)
    let sum = 0
    for (const p of probs) {
      expect(p).toBeGreaterThanOrEqual(0)
      sum += p
    }
    expectClose(sum, 1, { rel: 1e-12 })
    const tsdsMeta = JSON.parse(readFileSync(`${tsdsOut}.json`, 'utf8')) as Meta
    expect(tsdsMeta).toMatchObject({ method: 'tsds', shape: [52], params: { k: 52, kde_k: 52, sigma: 0.75, alpha: 0.6, c: 5 } })
    expect(tsdsMeta.data.queries).toMatchObject({ source: 'eval', rows: 26 })

    // Deterministic: two sidecars embed the train pool bit-identically (same batch size: another one pads
    // differently and changes the last bits); same config and model hashes.
    expect(tsdsMeta.data.train.embeddings_sha256).toBe(nearMeta.data.train.embeddings_sha256)
    expect(tsdsMeta.config.sha256).toBe(nearMeta.config.sha256)
    expect(tsdsMeta.model.sha256).toBe(nearMeta.model.sha256)
  })

  it('a query source that conflicts with val_size is a usage error (exit 2)', { timeout: 120_000 }, async () => {
    const dir = tempDir('prepare-bad')
    const cfg = writeConfig(dir, 'cfg.yaml', tinyConfig(join(dir, 'out'), { eval_dataset: null, val_size: 0.2 }))
    const err = await prepare(['near', cfg, '--out', join(dir, 'x.npy'), '--queries', 'facts']).catch((e: { code: number; stderr: string }) => e)
    expect(err).toMatchObject({ code: 2 })
    expect((err as { stderr: string }).stderr).toMatch(/--queries facts cannot be used with val_size/)
    expect(existsSync(join(dir, 'x.npy'))).toBe(false)
  })
})
