/**
 * Fidelity of the built-in selectors: a fake ModelOps serves fixed losses / gradients / embeddings generated
 * here, and every decision is checked against an independent reference written in this file from the formulas
 * of docs/algorithms.md (#loss … #tsds) (plain loops; nothing from the code under test except the Rng that seeds
 * both sides where a random draw is part of the definition).
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ConfigError } from '../src/config/errors.ts'
import { miniBatchKmeans } from '../src/math/kmeans.ts'
import { Rng } from '../src/math/rng.ts'
import { l2NormalizeRows } from '../src/math/stats.ts'
import { NpyError, encodeNpy, parseNpy, readNpy, writeNpy } from '../src/strategies/npy.ts'
import { clusterLessSelector } from '../src/strategies/selectors/cluster_less.ts'
import { SelectorError } from '../src/strategies/selectors/common.ts'
import { deltaLossSelector, deltaProbabilities, deltaWindow } from '../src/strategies/selectors/delta_loss.ts'
import { BUILTIN_SELECTORS } from '../src/strategies/selectors/index.ts'
import { gradientChunkRows, lessSelector } from '../src/strategies/selectors/less.ts'
import { lossSelector, probabilities } from '../src/strategies/selectors/loss.ts'
import { nearSelector } from '../src/strategies/selectors/near.ts'
import { tsdsSelector } from '../src/strategies/selectors/tsds.ts'
import type {
  EmbeddingOptions,
  GradientOptions,
  LossOptions,
  Matrix,
  ModelOps,
  SelectContext,
  SelectResult,
  SelectorDefinition,
  SelectorEnv,
  Split,
} from '../src/strategies/types.ts'
import { expectClose } from './close.ts'
import { tempDir } from './temp-dirs.ts'

// ───────────────────────────── fixtures ─────────────────────────────

/** Test data comes from a tiny LCG, not from the Rng the code uses. */
function lcg(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 4294967296
  }
}

interface Call {
  readonly op: 'losses' | 'gradients' | 'embeddings'
  readonly split: Split
  readonly indices: number[]
  readonly grad?: GradientOptions
  readonly emb?: EmbeddingOptions
  readonly loss?: LossOptions
}

interface FakeModel extends ModelOps {
  calls: Call[]
  /** Current per-sample train losses (tests change them to simulate training). */
  losses_: Float32Array
  trainGrad: Record<'sgd' | 'adam', Float32Array>
  evalGrad: Float32Array
  embedding: Float32Array
  dim: number
  embDim: number
}

function fakeModel(numTrain: number, numEval: number, opts: { dim?: number; embDim?: number; seed?: number; embedding?: Float32Array } = {}): FakeModel {
  const dim = opts.dim ?? 8
  const embDim = opts.embDim ?? 6
  const r = lcg(opts.seed ?? 1)
  // Raw (un-normalised, varied norms) gradients: the selectors must normalise them.
  const gen = (rows: number): Float32Array => Float32Array.from({ length: rows * dim }, () => (r() * 2 - 1) * (1 + r() * 3))
  const trainGrad = { sgd: gen(numTrain), adam: gen(numTrain) }
  // A common direction in the eval gradients so mean cosines are well spread.
  const evalGrad = gen(numEval)
  for (let j = 0; j < numEval; j++) evalGrad[j * dim] = evalGrad[j * dim]! + 2
  const embedding = opts.embedding ?? Float32Array.from({ length: numTrain * embDim }, () => r())
  const rows = (table: Float32Array, cols: number, idx: Int32Array): Matrix => {
    const data = new Float32Array(idx.length * cols)
    idx.forEach((i, k) => data.set(table.subarray(i * cols, (i + 1) * cols), k * cols))
    return { data, rows: idx.length, cols }
  }
  const model: FakeModel = {
    numTrain,
    numEval,
    calls: [],
    losses_: Float32Array.from({ length: numTrain }, () => 0.5 + r() * 2),
    trainGrad,
    evalGrad,
    embedding,
    dim,
    embDim,
    async losses(split, indices, o = {}) {
      model.calls.push({ op: 'losses', split, indices: Array.from(indices), loss: o })
      return Float32Array.from(indices, (i) => model.losses_[i]!)
    },
    async gradients(split, indices, o) {
      model.calls.push({ op: 'gradients', split, indices: Array.from(indices), grad: o })
      expect(o.projDim).toBe(dim)
      return split === 'eval' ? rows(evalGrad, dim, indices) : rows(trainGrad[o.precondition], dim, indices)
    },
    async embeddings(split, indices, o) {
      model.calls.push({ op: 'embeddings', split, indices: Array.from(indices), emb: o })
      return rows(embedding, embDim, indices)
    },
    async routerLoads() {
      throw new Error('selectors do not ask for router loads')
    },
  }
  return model
}

interface TestCtx extends SelectContext {
  logs: string[]
}

function ctxFor(
  model: ModelOps,
  step: number,
  numSamples: number,
  extra: { updateIndex?: number; updateTimes?: number; flexEpoch?: number; seed?: number } = {},
): TestCtx {
  const logs: string[] = []
  return {
    step,
    numSamples,
    updateIndex: extra.updateIndex ?? 1,
    updateTimes: extra.updateTimes ?? 1,
    flexEpoch: extra.flexEpoch ?? 0,
    rng: Rng.derive(extra.seed ?? 1234, 'select', step),
    model,
    cacheDir: tmpdir(),
    log: (m) => logs.push(m),
    logs,
  }
}

function envFor(numTrain: number, numEval: number, baseDir = tmpdir()): SelectorEnv {
  return { numTrain, numEval, seed: 1234, baseDir }
}

function make<P>(def: SelectorDefinition<P>, raw: unknown, env: SelectorEnv) {
  return def.create(def.params.parse(raw), env)
}

function norm(v: ArrayLike<number>, off: number, d: number): number {
  let s = 0
  for (let c = 0; c < d; c++) s += v[off + c]! ** 2
  return Math.max(Math.sqrt(s), 1e-12)
}

/** Reference ranking: indices by score desc, ties by lower index. */
function rankDesc(scores: ArrayLike<number>): number[] {
  return Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b)
}

/** Reference quantile: linear interpolation between order statistics at q·(n−1). */
function refQuantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b)
  const pos = q * (s.length - 1)
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return s[lo]! + (pos - lo) * (s[hi]! - s[lo]!)
}

function decisions(r: SelectResult): number[] {
  return Array.from(r.indices)
}

// ───────────────────────────── registry surface ─────────────────────────────

describe('BUILTIN_SELECTORS', () => {
  it('lists the six selectors written here, each with a strict params schema', () => {
    expect(BUILTIN_SELECTORS.map((d) => d.name)).toEqual(['loss', 'delta_loss', 'less', 'cluster_less', 'near', 'tsds', 'nice'])
    for (const d of BUILTIN_SELECTORS) {
      expect(d.kind).toBe('selector')
      expect(d.params.safeParse({ definitely_not_a_param: 1 }).success).toBe(false)
    }
  })
})

// ───────────────────────────── loss ─────────────────────────────

describe('loss selector (docs/algorithms.md#loss)', () => {
  const shipped = { cache_dir: '../dataflex_saves/loss_output', focus: 'medium' }

  it('accepts the shipped components.yaml params and the code defaults', () => {
    const p = lossSelector.params.parse(shipped)
    expect(p).toMatchObject({ focus: 'medium', focus_weight: 5, quantiles: [0.33, 0.66], replacement: false, temperature: 1 })
    expect(lossSelector.params.parse({}).focus).toBe('high')
    expect(lossSelector.params.safeParse({ focus: 'middle' }).success).toBe(false)
    expect(lossSelector.params.safeParse({ quantiles: [0.7, 0.2] }).success).toBe(false)
    expect(lossSelector.params.safeParse({ seed: 1 }).success).toBe(false)
    // DataFlex 1.1's shipped preset adds score_batch_size: a cap on rows per scoring forward here.
    expect(lossSelector.params.parse({ ...shipped, score_batch_size: 8 }).score_batch_size).toBe(8)
    expect(lossSelector.params.parse(shipped).score_batch_size).toBeNull()
    expect(lossSelector.params.safeParse({ score_batch_size: 0 }).success).toBe(false)
  })

  /** p_i ∝ (focus_weight if focused else 1)^(1/T) for finite losses, 0 otherwise. */
  function refProbs(losses: number[], focus: 'low' | 'medium' | 'high', fw: number, qs: [number, number], t: number): number[] {
    const finite = losses.filter((l) => Number.isFinite(l))
    const q1 = refQuantile(finite, qs[0])
    const q2 = refQuantile(finite, qs[1])
    const w = losses.map((l) => {
      if (!Number.isFinite(l)) return 0
      const bucket = l <= q1 ? 'low' : l <= q2 ? 'medium' : 'high'
      return Math.pow(bucket === focus ? fw : 1, 1 / t)
    })
    const z = w.reduce((a, b) => a + b, 0)
    return w.map((x) => x / z)
  }

  it('probabilities() equal the reference formula for every focus, temperature and non-finite losses', () => {
    const r = lcg(4)
    const losses = Array.from({ length: 61 }, () => r() * 3)
    losses[5] = NaN
    losses[9] = Infinity
    losses[10] = losses[11]! // ties at a boundary are fine
    for (const focus of ['low', 'medium', 'high'] as const) {
      for (const [fw, t, qs] of [
        [5, 1, [0.33, 0.66]],
        [3, 0.5, [0.2, 0.9]],
        [10, 2, [0.5, 0.5]],
      ] as [number, number, [number, number]][]) {
        const got = probabilities(losses, { focus, focus_weight: fw, quantiles: qs, temperature: t })
        const ref = refProbs(losses, focus, fw, qs, t)
        ref.forEach((p, i) => expectClose(got.probs[i], p, { rel: 1e-12, scale: 1 }))
        expect(got.nonFinite).toBe(2)
        expect(got.low + got.medium + got.high).toBe(59)
      }
    }
  })

  it('selects distinct finite samples, deterministic per seed, different per step, scores = losses', async () => {
    const model = fakeModel(80, 4)
    model.losses_[3] = NaN
    const sel = make(lossSelector, shipped, envFor(80, 4))
    const a = await sel.select(ctxFor(model, 10, 30))
    const b = await sel.select(ctxFor(model, 10, 30))
    const c = await sel.select(ctxFor(model, 20, 30))
    expect(decisions(a)).toEqual(decisions(b))
    expect(decisions(a)).not.toEqual(decisions(c))
    expect(new Set(a.indices).size).toBe(30)
    expect(a.indices.includes(3)).toBe(false)
    a.indices.forEach((i, k) => expect(a.scores![k]).toBe(model.losses_[i]))
    expect(model.calls.filter((x) => x.op === 'losses').every((x) => x.split === 'train' && x.indices.length === 80)).toBe(true)
    expect(model.calls.every((x) => x.op !== 'losses' || x.loss?.maxBatchRows === undefined)).toBe(true)
    expect(a.info).toMatchObject({ method: 'loss', focus: 'medium', non_finite: 1, replacement: false })
    // DataFlex 1.1's score_batch_size reaches the model op as a row cap, and changes nothing else.
    const capped = await make(lossSelector, { ...shipped, score_batch_size: 8 }, envFor(80, 4)).select(ctxFor(model, 10, 30))
    expect(decisions(capped)).toEqual(decisions(a))
    expect(model.calls.at(-1)?.loss).toEqual({ maxBatchRows: 8 })
  })

  it('the empirical first-pick distribution follows the reference probabilities', async () => {
    const model = fakeModel(12, 1)
    const sel = make(lossSelector, { focus: 'high', focus_weight: 6 }, envFor(12, 1))
    const ref = refProbs(Array.from(model.losses_), 'high', 6, [0.33, 0.66], 1)
    const counts = new Float64Array(12)
    const trials = 6000
    for (let s = 0; s < trials; s++) counts[(await sel.select(ctxFor(model, s, 1))).indices[0]!]!++
    ref.forEach((p, i) => expect(Math.abs(counts[i]! / trials - p)).toBeLessThan(0.02))
  })

  it('switches to replacement (logged) when more samples are asked than have finite losses', async () => {
    const model = fakeModel(10, 1)
    model.losses_[0] = NaN
    const sel = make(lossSelector, {}, envFor(10, 1))
    const ctx = ctxFor(model, 1, 15)
    const r = await sel.select(ctx)
    expect(r.indices.length).toBe(15)
    expect(r.indices.includes(0)).toBe(false)
    expect(r.info).toMatchObject({ replacement: true })
    expect(ctx.logs.join('\n')).toMatch(/with replacement/)
    model.losses_.fill(NaN)
    await expect(sel.select(ctxFor(model, 1, 2))).rejects.toMatchObject({ code: 'no_finite_losses' })
  })
})

// ───────────────────────────── delta_loss ─────────────────────────────

describe('delta_loss selector (docs/algorithms.md#delta_loss)', () => {
  /** Window (docs/algorithms.md#delta_loss): x = (c−1)/(T−1), σ = 1/(1+e^{−10(x−0.5)}), [⌊σ(N−wN)⌋, ⌊σ(N−wN)+wN⌋). */
  function refWindow(c: number, t: number, n: number, w: number): [number, number] {
    const x = (c - 1) / (t - 1)
    const s = 1 / (1 + Math.exp(-10 * (x - 0.5)))
    return [Math.floor(s * (n - w * n)), Math.floor(s * (n - w * n) + w * n)]
  }

  it('window bounds match the formula at every update', () => {
    for (const [n, w, t] of [
      [100, 0.2, 5],
      [999, 0.2, 10],
      [37, 0.5, 3],
    ] as const) {
      for (let c = 2; c <= t; c++) {
        const got = deltaWindow(c, t, n, w)
        expect([got.start, got.end]).toEqual(refWindow(c, t, n, w))
      }
    }
    // update_times = 1 never divides by zero.
    expect(Number.isFinite(deltaWindow(1, 1, 50, 0.2).start)).toBe(true)
  })

  /** 0.025 outside, 1 inside the window of the Δ-descending ranking, cut at the first Δ < 0; normalised. */
  function refDeltaProbs(delta: number[], c: number, t: number, w: number): number[] {
    const n = delta.length
    const order = rankDesc(delta)
    let [start, end] = refWindow(c, t, n, w)
    const firstNeg = order.findIndex((i) => delta[i]! < 0)
    if (firstNeg >= 0) end = Math.min(end, firstNeg)
    const p = new Array<number>(n).fill(0.025)
    for (let k = start; k < end; k++) p[order[k]!] = 1
    const z = p.reduce((a, b) => a + b, 0)
    return p.map((x) => x / z)
  }

  it('deltaProbabilities equal the reference, including the cut at the first negative Δ', () => {
    const r = lcg(8)
    const positive = Array.from({ length: 50 }, () => r())
    const mixed = Array.from({ length: 50 }, () => r() - 0.3)
    for (const delta of [positive, mixed]) {
      for (let c = 2; c <= 6; c++) {
        const got = deltaProbabilities(delta, c, 6, 0.2)
        refDeltaProbs(delta, c, 6, 0.2).forEach((p, i) => expectClose(got.probs[i], p, { rel: 1e-12, scale: 1 }))
      }
    }
  })

  it('measures ℓ⁰ at the first update of every flex-epoch and scores Δ against that epoch’s ℓ⁰', async () => {
    const n = 60
    const model = fakeModel(n, 1)
    const sel = make(deltaLossSelector, { cache_dir: 'x', window_size: 0.2 }, envFor(n, 1))
    const T = 4
    const epochStart = Float32Array.from(model.losses_)
    const first = await sel.select(ctxFor(model, 5, 20, { updateIndex: 1, updateTimes: T }))
    expect(first.info).toMatchObject({ phase: 'initial' })
    expect(new Set(first.indices).size).toBe(20)

    // Training lowers some losses.
    const r = lcg(2)
    for (let i = 0; i < n; i++) model.losses_[i] = model.losses_[i]! - r() * 0.5 + 0.1
    const now = Float32Array.from(model.losses_)
    const second = await sel.select(ctxFor(model, 7, 20, { updateIndex: 3, updateTimes: T }))
    expect(second.info).toMatchObject({ phase: 'delta' })
    const delta = Array.from(epochStart, (l0, i) => l0 - now[i]!)
    second.indices.forEach((i, k) => expectClose(second.scores![k], delta[i]!, { rel: 1e-6, scale: 1 }))
    const got = deltaProbabilities(delta, 3, T, 0.2)
    refDeltaProbs(delta, 3, T, 0.2).forEach((p, i) => expectClose(got.probs[i], p, { rel: 1e-12, scale: 1 }))

    // Next flex-epoch: ℓ⁰ is re-measured (DataFlex kept the first epoch's).
    const newStart = Float32Array.from(model.losses_)
    const third = await sel.select(ctxFor(model, 9, 20, { updateIndex: 1, updateTimes: T, flexEpoch: 1 }))
    expect(third.info).toMatchObject({ phase: 'initial' })
    for (let i = 0; i < n; i++) model.losses_[i] = model.losses_[i]! - 0.01 * i
    const fourth = await sel.select(ctxFor(model, 11, 20, { updateIndex: 2, updateTimes: T, flexEpoch: 1 }))
    fourth.indices.forEach((i, k) => expectClose(fourth.scores![k], newStart[i]! - model.losses_[i]!, { rel: 1e-6, scale: 1 }))
  })

  it('initial passes are deterministic per seed and differ between steps', async () => {
    const model = fakeModel(50, 1)
    const pick = async (step: number, seed?: number) =>
      decisions(await make(deltaLossSelector, {}, envFor(50, 1)).select(ctxFor(model, step, 10, { updateIndex: 1, updateTimes: 3, seed })))
    expect(await pick(4)).toEqual(await pick(4))
    expect(await pick(4)).not.toEqual(await pick(5))
    expect(await pick(4, 1)).not.toEqual(await pick(4, 2))
  })

  it('update_times = 1 works, state() round-trips, and a restored instance decides identically', async () => {
    const n = 40
    const model = fakeModel(n, 1)
    const a = make(deltaLossSelector, {}, envFor(n, 1))
    for (let e = 0; e < 3; e++) {
      const r = await a.select(ctxFor(model, 10 + e, 8, { updateIndex: 1, updateTimes: 1, flexEpoch: e }))
      expect(r.info).toMatchObject({ phase: 'initial' })
    }
    await a.select(ctxFor(model, 20, 8, { updateIndex: 1, updateTimes: 3, flexEpoch: 3 }))
    const saved = JSON.parse(JSON.stringify(a.state!())) as unknown
    for (let i = 0; i < n; i++) model.losses_[i] = model.losses_[i]! * (i % 3 === 0 ? 0.5 : 1.1)
    const b = make(deltaLossSelector, {}, envFor(n, 1))
    b.restore!(saved)
    const ra = await a.select(ctxFor(model, 22, 8, { updateIndex: 2, updateTimes: 3, flexEpoch: 3 }))
    const rb = await b.select(ctxFor(model, 22, 8, { updateIndex: 2, updateTimes: 3, flexEpoch: 3 }))
    expect(decisions(rb)).toEqual(decisions(ra))
    expect(Array.from(rb.scores!)).toEqual(Array.from(ra.scores!))
    expect(() => b.restore!({ version: 1, flex_epoch: 0, initial_losses: 'AAAA' })).toThrow(SelectorError)
    expect(() => b.restore!({ nonsense: true })).toThrow(SelectorError)
  })
})

// ───────────────────────────── less ─────────────────────────────

/** Reference LESS score: s_i = (1/N_e) Σ_j cos(g_i, e_j), by explicit double loop. */
function refLessScores(train: Float32Array, evalG: Float32Array, n: number, ne: number, d: number): number[] {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    let s = 0
    for (let j = 0; j < ne; j++) {
      let dot = 0
      for (let c = 0; c < d; c++) dot += train[i * d + c]! * evalG[j * d + c]!
      s += dot / (norm(train, i * d, d) * norm(evalG, j * d, d))
    }
    out.push(s / ne)
  }
  return out
}

describe('less selector (docs/algorithms.md#less)', () => {
  const shipped = { cache_dir: '../dataflex_saves/less_output', gradient_type: 'adam', proj_dim: 8, seed: 123, save_interval: 16 }

  it('accepts the shipped params, defaults proj_dim 8192 / seed 42, rejects unknown keys', () => {
    expect(lessSelector.params.parse({})).toMatchObject({ gradient_type: 'adam', proj_dim: 8192, seed: 42, save_interval: 16 })
    expect(lessSelector.params.parse({ ...shipped, proj_dim: 4096 }).proj_dim).toBe(4096)
    expect(lessSelector.params.safeParse({ gradient_type: 'adamw' }).success).toBe(false)
    expect(lessSelector.params.safeParse({ projdim: 8 }).success).toBe(false)
  })

  it('selects the top-k by mean cosine to the eval gradients (adam train, sgd eval)', async () => {
    const n = 50
    const ne = 7
    const model = fakeModel(n, ne)
    const sel = make(lessSelector, shipped, envFor(n, ne))
    const r = await sel.select(ctxFor(model, 12, 15))
    const ref = refLessScores(model.trainGrad.adam, model.evalGrad, n, ne, model.dim)
    expect(decisions(r)).toEqual(rankDesc(ref).slice(0, 15))
    r.indices.forEach((i, k) => expectClose(r.scores![k], ref[i]!, { rel: 1e-10, scale: 1 }))
    const grads = model.calls.filter((c) => c.op === 'gradients')
    expect(grads.filter((c) => c.split === 'eval').every((c) => c.grad!.precondition === 'sgd' && c.grad!.normalize)).toBe(true)
    expect(grads.filter((c) => c.split === 'train').every((c) => c.grad!.precondition === 'adam' && c.grad!.seed === 123)).toBe(true)
    expect(grads.every((c) => c.grad!.chunkSize === 16)).toBe(true) // save_interval: rows per batched gradient pass
    expect(grads.filter((c) => c.split === 'train').flatMap((c) => c.indices)).toEqual(Array.from({ length: n }, (_, i) => i))

    const sgd = make(lessSelector, { ...shipped, gradient_type: 'sgd' }, envFor(n, ne))
    const rs = await sgd.select(ctxFor(model, 12, 15))
    expect(decisions(rs)).toEqual(rankDesc(refLessScores(model.trainGrad.sgd, model.evalGrad, n, ne, model.dim)).slice(0, 15))
  })

  it('asking for more than N returns all N (logged); no eval set is a typed error', async () => {
    const model = fakeModel(6, 2)
    const sel = make(lessSelector, shipped, envFor(6, 2))
    const ctx = ctxFor(model, 1, 10)
    const r = await sel.select(ctx)
    expect(r.indices.length).toBe(6)
    expect(ctx.logs.length).toBe(1)
    await expect(make(lessSelector, shipped, envFor(6, 0)).select(ctxFor(fakeModel(6, 0), 1, 2))).rejects.toMatchObject({
      name: 'SelectorError',
      code: 'no_eval_data',
    })
  })

  it('requests gradients in bounded chunks', async () => {
    expect(gradientChunkRows(4096)).toBe(256)
    expect(gradientChunkRows(8192)).toBe(128)
    expect(gradientChunkRows(2 ** 30)).toBe(1)
    // Memory flat in N: no request (so no reply Node holds) exceeds 2^20 floats, i.e. 16 rows at d = 2^16.
    const n = 50
    const d = 2 ** 16
    const model = fakeModel(n, 3, { dim: d })
    await make(lessSelector, { ...shipped, proj_dim: d }, envFor(n, 3)).select(ctxFor(model, 1, 5))
    const grads = model.calls.filter((c) => c.op === 'gradients')
    expect(grads.every((c) => c.indices.length <= 16)).toBe(true)
    expect(grads.filter((c) => c.split === 'train').length).toBe(Math.ceil(n / 16))
  })
})

// ───────────────────────────── cluster_less ─────────────────────────────

/** Four well-separated blobs of unequal sizes on orthogonal axes, interleaved in index order. */
function blobEmbeddings(): { data: Float32Array; truth: number[]; n: number; d: number } {
  const sizes = [10, 14, 8, 12]
  const truth: number[] = sizes.flatMap((s, b) => new Array<number>(s).fill(b))
  const r = lcg(17)
  // Deterministic shuffle so blobs interleave.
  for (let i = truth.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1))
    ;[truth[i], truth[j]] = [truth[j]!, truth[i]!]
  }
  const n = truth.length
  const d = 6
  const data = new Float32Array(n * d)
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < d; c++) data[i * d + c] = (r() - 0.5) * 0.2
    data[i * d + truth[i]!] = data[i * d + truth[i]!]! + 3
  }
  return { data, truth, n, d }
}

/**
 * Reference cluster-LESS given clusters and each cluster's representatives:
 * c = normalise(mean_r ĝ_r); score_c = (1/N_e) Σ_j ⟨c, ê_j⟩; per-sample score = its cluster's; top-k.
 */
function refClusterLess(
  clusterOf: number[],
  reps: Map<number, number[]>,
  train: Float32Array,
  evalG: Float32Array,
  ne: number,
  d: number,
  k: number,
): { indices: number[]; sampleScores: number[] } {
  const clusterScore = new Map<number, number>()
  for (const [c, members] of reps) {
    const mean = new Array<number>(d).fill(0)
    for (const i of members) for (let t = 0; t < d; t++) mean[t]! += train[i * d + t]! / norm(train, i * d, d) / members.length
    const mn = norm(mean, 0, d)
    let s = 0
    for (let j = 0; j < ne; j++) {
      let dot = 0
      for (let t = 0; t < d; t++) dot += (mean[t]! / mn) * evalG[j * d + t]!
      s += dot / norm(evalG, j * d, d)
    }
    clusterScore.set(c, s / ne)
  }
  const sampleScores = clusterOf.map((c) => clusterScore.get(c) ?? 0)
  return { indices: rankDesc(sampleScores).slice(0, k), sampleScores }
}

/** Nearest-to-centroid representatives, computed from scratch: distances to the members' mean embedding. */
function refNearestReps(emb: Float32Array, clusterOf: number[], d: number, spc: number, far = false): Map<number, number[]> {
  const unit = Float64Array.from(emb)
  for (let i = 0; i < clusterOf.length; i++) {
    const nn = norm(emb, i * d, d)
    for (let t = 0; t < d; t++) unit[i * d + t] = emb[i * d + t]! / nn
  }
  const reps = new Map<number, number[]>()
  for (const c of new Set(clusterOf)) {
    const members = clusterOf.map((cc, i) => (cc === c ? i : -1)).filter((i) => i >= 0)
    const centre = new Array<number>(d).fill(0)
    for (const i of members) for (let t = 0; t < d; t++) centre[t]! += unit[i * d + t]! / members.length
    const dist = (i: number): number => {
      let s = 0
      for (let t = 0; t < d; t++) s += (unit[i * d + t]! - centre[t]!) ** 2
      return s
    }
    const sorted = [...members].sort((a, b) => (far ? dist(b) - dist(a) : dist(a) - dist(b)) || a - b)
    reps.set(c, sorted.slice(0, spc))
  }
  return reps
}

describe('cluster_less selector (docs/algorithms.md#cluster_less)', () => {
  const shippedYaml = {
    cache_dir: '../dataflex_saves/cluster_less_output',
    gradient_type: 'adam',
    proj_dim: 4096,
    seed: 42,
    save_interval: 16,
    cluster_size: 64,
    samples_per_cluster: 4,
    clustering_batch_size: 8,
    clustering_max_iter: 10,
    clustering_method: 'kmeans',
    representative_strategy: 'random',
    embedding_model_name_or_path: null,
    embedding_model_dtype: 'auto',
    embedding_layer: -1,
  }

  it('accepts the shipped params, every alias, and the code defaults', () => {
    expect(clusterLessSelector.params.parse(shippedYaml)).toMatchObject({ samples_per_cluster: 4, clustering_max_iter: 10, num_clusters: null })
    const defaults = clusterLessSelector.params.parse({})
    expect(defaults).toMatchObject({ proj_dim: 4096, seed: 42, samples_per_cluster: 3, clustering_max_iter: 20, assignment_chunk_size: 4096 })
    const methods: Record<string, string> = {
      kmeans: 'kmeans',
      euclidean_kmeans: 'kmeans',
      spherical_kmeans: 'spherical_kmeans',
      cosine_kmeans: 'spherical_kmeans',
      farthest_first: 'farthest_first',
      kcenter: 'farthest_first',
      K_Center: 'farthest_first',
      random_projection_lsh: 'random_projection_lsh',
      lsh: 'random_projection_lsh',
      rp_lsh: 'random_projection_lsh',
      random_partition: 'random_partition',
      random: 'random_partition',
    }
    for (const [alias, canon] of Object.entries(methods)) {
      expect(clusterLessSelector.params.parse({ clustering_method: alias }).clustering_method).toBe(canon)
    }
    const strategies: Record<string, string> = {
      random: 'random',
      rand: 'random',
      nearest: 'nearest',
      nearest_to_centroid: 'nearest',
      center: 'nearest',
      centroid: 'nearest',
      farthest: 'farthest',
      farthest_from_centroid: 'farthest',
      boundary: 'farthest',
      mixed: 'mixed',
      mixed_center_boundary: 'mixed',
      center_boundary: 'mixed',
    }
    for (const [alias, canon] of Object.entries(strategies)) {
      expect(clusterLessSelector.params.parse({ representative_strategy: alias }).representative_strategy).toBe(canon)
    }
    expect(clusterLessSelector.params.safeParse({ clustering_method: 'dbscan' }).success).toBe(false)
    expect(clusterLessSelector.params.safeParse({ representative_strategy: 'median' }).success).toBe(false)
  })

  const blobs = blobEmbeddings()
  const params = (extra: Record<string, unknown>) => ({ proj_dim: 8, num_clusters: 4, seed: 3, ...extra })

  it('k-means finds the blobs; nearest representatives, cluster scores and whole-cluster top-k match the reference', async () => {
    const ne = 5
    const model = fakeModel(blobs.n, ne, { embDim: blobs.d, embedding: blobs.data })
    const sel = make(clusterLessSelector, params({ representative_strategy: 'centroid', samples_per_cluster: 3 }), envFor(blobs.n, ne))
    // Enough for the two best clusters whole plus part of the third.
    const k = 27
    const r = await sel.select(ctxFor(model, 30, k))
    const reps = refNearestReps(blobs.data, blobs.truth, blobs.d, 3)
    const ref = refClusterLess(blobs.truth, reps, model.trainGrad.adam, model.evalGrad, ne, model.dim, k)
    expect(decisions(r)).toEqual(ref.indices)
    r.indices.forEach((i, q) => expectClose(r.scores![q], ref.sampleScores[i]!, { rel: 1e-10, scale: 1 }))
    // Only the representatives' training gradients were computed.
    const trainGradIdx = model.calls.filter((c) => c.op === 'gradients' && c.split === 'train').flatMap((c) => c.indices)
    expect(new Set(trainGradIdx)).toEqual(new Set([...reps.values()].flat()))
    // Whole clusters first: the selection holds complete clusters and at most one partial one.
    const picked = new Map<number, number>()
    for (const i of r.indices) picked.set(blobs.truth[i]!, (picked.get(blobs.truth[i]!) ?? 0) + 1)
    const sizes = [10, 14, 8, 12]
    expect([...picked].filter(([c, cnt]) => cnt < sizes[c]!).length).toBeLessThanOrEqual(1)
    const emb = model.calls.filter((c) => c.op === 'embeddings')
    expect(emb[0]!.emb).toMatchObject({ layer: -1, pooling: 'mask_mean', normalize: true })
    expect(emb[0]!.emb!.model).toBeUndefined()
  })

  it('farthest and mixed representatives follow the centroid-distance order', async () => {
    const ne = 3
    const model = fakeModel(blobs.n, ne, { embDim: blobs.d, embedding: blobs.data })
    const far = make(clusterLessSelector, params({ representative_strategy: 'boundary', samples_per_cluster: 2 }), envFor(blobs.n, ne))
    await far.select(ctxFor(model, 1, 10))
    const got = new Set(model.calls.filter((c) => c.op === 'gradients' && c.split === 'train').flatMap((c) => c.indices))
    expect(got).toEqual(new Set([...refNearestReps(blobs.data, blobs.truth, blobs.d, 2, true).values()].flat()))

    model.calls = []
    const mixed = make(clusterLessSelector, params({ representative_strategy: 'mixed', samples_per_cluster: 3 }), envFor(blobs.n, ne))
    await mixed.select(ctxFor(model, 1, 10))
    const near = refNearestReps(blobs.data, blobs.truth, blobs.d, 2)
    const farR = refNearestReps(blobs.data, blobs.truth, blobs.d, 1, true)
    const expected = new Set([...near.values()].flat().concat([...farR.values()].flat()))
    expect(new Set(model.calls.filter((c) => c.op === 'gradients' && c.split === 'train').flatMap((c) => c.indices))).toEqual(expected)
  })

  it('random representatives: per-cluster counts, seeded per step, scores match the reference from the drawn set', async () => {
    const ne = 4
    const model = fakeModel(blobs.n, ne, { embDim: blobs.d, embedding: blobs.data })
    const sel = make(clusterLessSelector, params({ clustering_method: 'spherical_kmeans', samples_per_cluster: 4 }), envFor(blobs.n, ne))
    const drawn = async (step: number): Promise<{ reps: number[]; r: SelectResult }> => {
      model.calls = []
      const r = await sel.select(ctxFor(model, step, 20))
      return { reps: model.calls.filter((c) => c.op === 'gradients' && c.split === 'train').flatMap((c) => c.indices), r }
    }
    const a = await drawn(40)
    const b = await drawn(40)
    const c = await drawn(41)
    expect(a.reps).toEqual(b.reps)
    expect(decisions(a.r)).toEqual(decisions(b.r))
    expect(a.reps).not.toEqual(c.reps)
    const byCluster = new Map<number, number[]>()
    for (const i of a.reps) byCluster.set(blobs.truth[i]!, [...(byCluster.get(blobs.truth[i]!) ?? []), i])
    expect([...byCluster.keys()].sort()).toEqual([0, 1, 2, 3])
    for (const members of byCluster.values()) expect(new Set(members).size).toBe(4)
    const ref = refClusterLess(blobs.truth, byCluster, model.trainGrad.adam, model.evalGrad, ne, model.dim, 20)
    expect(decisions(a.r)).toEqual(ref.indices)
  })

  it('clusters once, keeps them in state(), and a restored instance neither re-embeds nor decides differently', async () => {
    const ne = 3
    const model = fakeModel(blobs.n, ne, { embDim: blobs.d, embedding: blobs.data })
    for (const method of ['kmeans', 'farthest_first', 'lsh', 'random_partition']) {
      model.calls = []
      const a = make(clusterLessSelector, params({ clustering_method: method }), envFor(blobs.n, ne))
      const r1 = await a.select(ctxFor(model, 5, 12))
      const r2 = await a.select(ctxFor(model, 6, 12))
      expect(model.calls.filter((c) => c.op === 'embeddings').length).toBeGreaterThan(0)
      const embedCalls = model.calls.filter((c) => c.op === 'embeddings').length
      expect(r2.info).toMatchObject({ cluster_cache_hit: true })
      expect(r1.info).toMatchObject({ cluster_cache_hit: false })
      const saved = JSON.parse(JSON.stringify(a.state!())) as unknown
      const b = make(clusterLessSelector, params({ clustering_method: method }), envFor(blobs.n, ne))
      b.restore!(saved)
      const rb = await b.select(ctxFor(model, 6, 12))
      expect(model.calls.filter((c) => c.op === 'embeddings').length).toBe(embedCalls)
      expect(decisions(rb)).toEqual(decisions(r2))
      const ids = new Int32Array(new Uint8Array(Buffer.from((saved as { cluster_ids: string }).cluster_ids, 'base64')).buffer)
      expect(ids.length).toBe(blobs.n)
      expect(Math.max(...ids)).toBeLessThan(4)
      const wrong = make(clusterLessSelector, params({ clustering_method: method === 'kmeans' ? 'lsh' : 'kmeans' }), envFor(blobs.n, ne))
      expect(() => wrong.restore!(saved)).toThrow(SelectorError)
    }
  })

  it('passes the embedding options through: a separate model resolved against the config folder, the layer', async () => {
    const dir = tempDir('sel')
    const model = fakeModel(blobs.n, 2, { embDim: blobs.d, embedding: blobs.data })
    const sel = make(clusterLessSelector, params({ embedding_model_name_or_path: '.', embedding_layer: -2 }), envFor(blobs.n, 2, dir))
    await sel.select(ctxFor(model, 1, 5))
    expect(model.calls.find((c) => c.op === 'embeddings')!.emb).toMatchObject({ model: dir, layer: -2, pooling: 'mask_mean' })
    model.calls = []
    const hub = make(clusterLessSelector, params({ embedding_model_name_or_path: 'org/not-a-local-dir' }), envFor(blobs.n, 2, dir))
    await hub.select(ctxFor(model, 1, 5))
    expect(model.calls.find((c) => c.op === 'embeddings')!.emb!.model).toBe('org/not-a-local-dir')
  })

  it('above minibatch_threshold: embeddings in a file under the cache folder (removed after), mini-batch k-means', async () => {
    const ne = 2
    const model = fakeModel(blobs.n, ne, { embDim: blobs.d, embedding: blobs.data })
    const extra = { minibatch_threshold: 10, minibatch_size: 8, minibatch_iter: 7, assignment_chunk_size: 5 }
    const sel = make(clusterLessSelector, params(extra), envFor(blobs.n, ne))
    const ctx = { ...ctxFor(model, 1, 10), cacheDir: tempDir('cl-cache') }
    const r = await sel.select(ctx)
    expect(r.info).toMatchObject({ embeddings_on_disk: true, kmeans_iterations: 7, reseeded: 0 })
    expect(readdirSync(ctx.cacheDir)).toEqual([])
    // The same clustering as mini-batch k-means over the unit rows held in memory.
    const unit = Float32Array.from(blobs.data)
    l2NormalizeRows(unit, blobs.n, blobs.d)
    const ref = miniBatchKmeans({ data: unit, rows: blobs.n, cols: blobs.d }, 4, {
      rng: Rng.derive(3, 'cluster_less', 'clustering', 'kmeans'),
      iterations: 7,
      batchSize: 8,
    })
    const ids = new Int32Array(new Uint8Array(Buffer.from((sel.state!() as { cluster_ids: string }).cluster_ids, 'base64')).buffer)
    expect(ids).toEqual(ref.assign)
    // At or below the threshold nothing is written and Lloyd runs (it stops early on these blobs).
    const small = await make(clusterLessSelector, params({}), envFor(blobs.n, ne)).select(ctx)
    expect(small.info).toMatchObject({ embeddings_on_disk: false })
    expect((small.info as { kmeans_iterations: number }).kmeans_iterations).toBeLessThan(20)
  })

  it('k = clamp(ceil(N / cluster_size), 1, N) when num_clusters is not given', async () => {
    const model = fakeModel(blobs.n, 2, { embDim: blobs.d, embedding: blobs.data })
    const sel = make(clusterLessSelector, { proj_dim: 8, cluster_size: 10 }, envFor(blobs.n, 2))
    const r = await sel.select(ctxFor(model, 1, 5))
    expect(r.info).toMatchObject({ num_clusters: Math.ceil(blobs.n / 10) })
  })
})

// ───────────────────────────── npy ─────────────────────────────

describe('npy reader/writer', () => {
  it('round-trips every supported dtype with a 64-byte aligned v1.0 header', () => {
    const cases = [
      [Float32Array.from([1.5, -2, 3.25, 0]), [2, 2], '<f4'],
      [Float64Array.from([Math.PI, -1e300, 0]), [3], '<f8'],
      [Int32Array.from([1, -5, 7, 2 ** 31 - 1, 0, 3]), [3, 2], '<i4'],
      [Float64Array.from([0, 2 ** 40, -3, 9]), [2, 2], '<i8'],
    ] as const
    for (const [data, shape, dtype] of cases) {
      const bytes = encodeNpy(data, shape, dtype)
      const headerLen = bytes[8]! | (bytes[9]! << 8)
      expect((10 + headerLen) % 64).toBe(0)
      const back = parseNpy(bytes)
      expect(back.dtype).toBe(dtype)
      expect(back.shape).toEqual(shape)
      expect(Array.from(back.data)).toEqual(Array.from(data))
    }
  })

  it('rejects what it cannot read with a typed error', () => {
    const good = encodeNpy(Float32Array.from([1, 2]), [2])
    const expectCode = (bytes: Uint8Array, code: string) => {
      try {
        parseNpy(bytes)
        expect.unreachable()
      } catch (err) {
        expect(err).toBeInstanceOf(NpyError)
        expect((err as NpyError).code).toBe(code)
      }
    }
    expectCode(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), 'not_npy')
    expectCode(good.slice(0, good.length - 2), 'truncated')
    const swap = (from: string, to: string): Uint8Array => {
      const text = new TextDecoder('latin1').decode(good).replace(from, to)
      return Uint8Array.from(text, (ch) => ch.charCodeAt(0))
    }
    expectCode(swap("'<f4'", "'>f4'"), 'unsupported_dtype')
    expectCode(swap("'<f4'", "'|b1'"), 'unsupported_dtype')
    const f = encodeNpy(Float32Array.from([1, 2, 3, 4]), [2, 2])
    const fortran = Uint8Array.from(new TextDecoder('latin1').decode(f).replace('False', 'True '), (ch) => ch.charCodeAt(0))
    expectCode(fortran, 'fortran_order')
    const v9 = Uint8Array.from(good)
    v9[6] = 9
    expectCode(v9, 'unsupported_version')
    expect(() => readNpy(join(tempDir('sel'), 'missing.npy'))).toThrow(expect.objectContaining({ code: 'not_found' }))
  })

  const python = ['python3', 'python'].find((exe) => {
    try {
      execFileSync(exe, ['-c', 'import numpy'], { stdio: 'ignore' })
      return true
    } catch {
      return false
    }
  })

  it.skipIf(python === undefined)('interoperates with numpy in both directions', () => {
    const dir = tempDir('sel')
    writeNpy(join(dir, 'ts.npy'), Int32Array.from([0, 1, 2, 3, 4, 5]), [2, 3], '<i8')
    const script = [
      'import numpy as np, sys',
      `a = np.load(r"${join(dir, 'ts.npy')}")`,
      'assert a.dtype == np.int64 and a.shape == (2, 3) and a.tolist() == [[0, 1, 2], [3, 4, 5]], a',
      `np.save(r"${join(dir, 'py_f4.npy')}", np.array([0.5, 0.25, 2.0], dtype=np.float32))`,
      `np.save(r"${join(dir, 'py_i8.npy')}", np.arange(12, dtype=np.int64).reshape(3, 4))`,
      `np.save(r"${join(dir, 'py_f.npy')}", np.asfortranarray(np.ones((2, 3))))`,
    ].join('\n')
    execFileSync(python!, ['-c', script])
    expect(Array.from(readNpy(join(dir, 'py_f4.npy')).data)).toEqual([0.5, 0.25, 2])
    const m = readNpy(join(dir, 'py_i8.npy'))
    expect(m.shape).toEqual([3, 4])
    expect(Array.from(m.data)).toEqual(Array.from({ length: 12 }, (_, i) => i))
    expect(() => readNpy(join(dir, 'py_f.npy'))).toThrow(expect.objectContaining({ code: 'fortran_order' }))
  })
})

// ───────────────────────────── near ─────────────────────────────

describe('near selector (docs/algorithms.md#near)', () => {
  /** Reference walk: column by column, row by row, skipping repeats, until k. */
  function refWalk(m: number[][], k: number): number[] {
    const out: number[] = []
    const cols = m[0]!.length
    for (let c = 0; c < cols; c++) for (const row of m) if (out.length < k && !out.includes(row[c]!)) out.push(row[c]!)
    return out
  }

  const neighbours = [
    [4, 7, 1, 9],
    [4, 2, 7, 0],
    [8, 7, 3, 5],
  ]
  const flat = Int32Array.from(neighbours.flat())

  it('walks the neighbour matrix rank by rank (int32 and int64 files), same set every update', async () => {
    const dir = tempDir('sel')
    writeNpy(join(dir, 'top_i4.npy'), flat, [3, 4], '<i4')
    writeNpy(join(dir, 'top_i8.npy'), flat, [3, 4], '<i8')
    for (const file of ['top_i4.npy', 'top_i8.npy']) {
      const sel = make(nearSelector, { indices_path: file, cache_dir: 'x' }, envFor(10, 0, dir))
      for (const k of [1, 3, 5, 8, 9]) {
        const r = await sel.select(ctxFor(fakeModel(10, 0), k, k))
        expect(decisions(r)).toEqual(refWalk(neighbours, k))
        const again = await sel.select(ctxFor(fakeModel(10, 0), k + 100, k))
        expect(decisions(again)).toEqual(decisions(r))
      }
    }
    const r = await make(nearSelector, { indices_path: 'top_i4.npy' }, envFor(10, 0, dir)).select(ctxFor(fakeModel(10, 0), 1, 5))
    expect(Array.from(r.scores!)).toEqual([0, 0, 1, 1, 2])
  })

  it('validates the file against numTrain, dtype and shape at construction (config errors on indices_path)', async () => {
    const dir = tempDir('sel')
    const expectConfig = (file: string, numTrain: number, code: string, pattern: RegExp) => {
      try {
        make(nearSelector, { indices_path: file }, envFor(numTrain, 0, dir))
        expect.unreachable()
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError)
        expect((err as ConfigError).code).toBe(code)
        expect((err as ConfigError).key).toBe('indices_path')
        expect((err as Error).message).toMatch(pattern)
      }
    }
    writeNpy(join(dir, 'ok.npy'), flat, [3, 4])
    expectConfig('ok.npy', 9, 'bad_value', /index 9 .* outside \[0, 9\)/)
    writeNpy(join(dir, 'neg.npy'), Int32Array.from([1, -1]), [1, 2])
    expectConfig('neg.npy', 9, 'bad_value', /index -1/)
    writeNpy(join(dir, 'float.npy'), Float32Array.from([1, 2]), [1, 2])
    expectConfig('float.npy', 9, 'bad_value', /integer/)
    writeNpy(join(dir, 'vec.npy'), Int32Array.from([1, 2]), [2])
    expectConfig('vec.npy', 9, 'bad_value', /2-D/)
    expectConfig('absent.npy', 9, 'file_not_found', /not found/)
    writeFileSync(join(dir, 'junk.npy'), 'hello')
    expectConfig('junk.npy', 9, 'bad_value', /not a \.npy/)

    const sel = make(nearSelector, { indices_path: 'ok.npy' }, envFor(10, 0, dir))
    await expect(sel.select(ctxFor(fakeModel(10, 0), 1, 10))).rejects.toMatchObject({ code: 'insufficient_candidates' })
    expect(nearSelector.params.safeParse({}).success).toBe(false)
  })
})

// ───────────────────────────── tsds ─────────────────────────────

describe('tsds selector (docs/algorithms.md#tsds)', () => {
  const probs = Float64Array.from([0.1, 0, 0.3, 0.05, 0, 0.2, 0.15, 0.2])

  it('samples distinct non-zero indices, seeded per step, scores = normalised probabilities', async () => {
    const dir = tempDir('sel')
    writeNpy(join(dir, 'p8.npy'), probs, [8])
    writeNpy(join(dir, 'p4.npy'), Float32Array.from(probs, (p) => p * 10), [8]) // un-normalised float32
    for (const file of ['p8.npy', 'p4.npy']) {
      const sel = make(tsdsSelector, { probs_path: file, cache_dir: 'x' }, envFor(8, 0, dir))
      const a = await sel.select(ctxFor(fakeModel(8, 0), 3, 5))
      const b = await sel.select(ctxFor(fakeModel(8, 0), 3, 5))
      expect(decisions(a)).toEqual(decisions(b))
      expect(new Set(a.indices).size).toBe(5)
      expect(a.indices.includes(1) || a.indices.includes(4)).toBe(false)
      a.indices.forEach((i, k) => expectClose(a.scores![k], probs[i]!, { rel: 1e-6 }))
      const seen = new Set<string>()
      for (let s = 0; s < 10; s++) seen.add(decisions(await sel.select(ctxFor(fakeModel(8, 0), s, 3))).join(','))
      expect(seen.size).toBeGreaterThan(1)
    }
  })

  it('first-pick frequencies follow the probabilities', async () => {
    const dir = tempDir('sel')
    writeNpy(join(dir, 'p.npy'), probs, [8])
    const sel = make(tsdsSelector, { probs_path: 'p.npy' }, envFor(8, 0, dir))
    const counts = new Float64Array(8)
    for (let s = 0; s < 5000; s++) counts[(await sel.select(ctxFor(fakeModel(8, 0), s, 1))).indices[0]!]!++
    probs.forEach((p, i) => expect(Math.abs(counts[i]! / 5000 - p)).toBeLessThan(0.02))
  })

  it('falls back to sampling with replacement, with a warning, when too few probabilities are non-zero', async () => {
    const dir = tempDir('sel')
    writeNpy(join(dir, 'p.npy'), probs, [8])
    const sel = make(tsdsSelector, { probs_path: 'p.npy' }, envFor(8, 0, dir))
    const ctx = ctxFor(fakeModel(8, 0), 1, 12)
    const r = await sel.select(ctx)
    expect(r.indices.length).toBe(12)
    expect(Array.from(r.indices).every((i) => probs[i]! > 0)).toBe(true)
    expect(r.info).toMatchObject({ replacement: true, non_zero: 6 })
    expect(ctx.logs.join('\n')).toMatch(/warning.*with replacement/)
  })

  it('validates length, dtype, shape and values at construction (config errors on probs_path)', () => {
    const dir = tempDir('sel')
    const expectConfig = (file: string, pattern: RegExp, code = 'bad_value') => {
      try {
        make(tsdsSelector, { probs_path: file }, envFor(8, 0, dir))
        expect.unreachable()
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError)
        expect((err as ConfigError).code).toBe(code)
        expect((err as ConfigError).key).toBe('probs_path')
        expect((err as Error).message).toMatch(pattern)
      }
    }
    writeNpy(join(dir, 'short.npy'), Float64Array.from([0.5, 0.5]), [2])
    expectConfig('short.npy', /expected 8 entries .* got 2/)
    writeNpy(join(dir, 'int.npy'), Int32Array.from(probs, () => 1), [8])
    expectConfig('int.npy', /float/)
    writeNpy(join(dir, 'mat.npy'), probs, [2, 4])
    expectConfig('mat.npy', /1-D/)
    writeNpy(join(dir, 'neg.npy'), Float64Array.from(probs, (p, i) => (i === 2 ? -0.1 : p)), [8])
    expectConfig('neg.npy', /sample 2/)
    writeNpy(join(dir, 'nan.npy'), Float64Array.from(probs, (p, i) => (i === 5 ? NaN : p)), [8])
    expectConfig('nan.npy', /sample 5/)
    writeNpy(join(dir, 'zero.npy'), new Float64Array(8), [8])
    expectConfig('zero.npy', /all probabilities are zero/)
    expectConfig('nope.npy', /not found/, 'file_not_found')
    // The file the test wrote is a real .npy (magic + header) that numpy could read back.
    expect(readFileSync(join(dir, 'short.npy')).subarray(1, 6).toString()).toBe('NUMPY')
  })
})
