/**
 * Fidelity of the built-in weighters: fixed micro-batch losses and embeddings (and eval embeddings from a fake
 * ModelOps that records its calls) go through each weighter, and every weight is checked against an independent
 * reference written here from the formulas of docs/algorithms.md (#weighters) in plain loops.
 */
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { Rng } from '../src/math/rng.ts'
import { resolveComponent } from '../src/strategies/presets.ts'
import { defaultRegistry } from '../src/strategies/registry.ts'
import type { EmbeddingOptions, Matrix, ModelOps, Split } from '../src/strategies/types.ts'
import type { WeighContext, WeighResult, WeighterDefinition, WeighterEnv, WeighterInstance } from '../src/strategies/weighter.ts'
import { BUILTIN_WEIGHTERS, WeighterError, adaptWeighter, jointUpdateAwareWeighter, lossWeighter } from '../src/strategies/weighters/index.ts'
import { expectAllClose, expectClose } from './close.ts'
import { configError, fakeConfig, tempDir } from './support.ts'

// ───────────────────────────── fixtures ─────────────────────────────

/** Test data comes from a tiny LCG, not from the Rng the code uses. */
function lcg(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 4294967296
  }
}

const H = 6
const NUM_EVAL = 7
const ENV: WeighterEnv = { numTrain: 100, numEval: NUM_EVAL, seed: 3, baseDir: '/nonexistent' }
const NO_EVAL: WeighterEnv = { ...ENV, numEval: 0 }
/** float64 arithmetic against the formulas in another order; weights are relative to the group's scale B_G/M_G. */
const TOL = { rel: 1e-12, scale: 1 }

/** Values as float32 rounds them, so the reference sees what the code receives. */
function rows(r: () => number, n: number, offset: number): number[][] {
  return Array.from({ length: n }, () => Array.from({ length: H }, () => Math.fround(offset + 2 * r() - 1)))
}

function matrix(m: number[][]): Matrix {
  return { data: Float32Array.from(m.flat()), rows: m.length, cols: H }
}

interface Micro {
  losses: number[]
  z: number[][]
  step: number
  micro: number
  groupSamples: number
  groupMicro: number
}

/** A micro-batch of `n` samples: losses in [0.5, 4.5), embeddings around a shared direction. */
function microBatch(seed: number, n: number, at: Partial<Omit<Micro, 'losses' | 'z'>> = {}): Micro {
  const r = lcg(seed)
  const losses = Array.from({ length: n }, () => Math.fround(0.5 + 4 * r()))
  return { losses, z: rows(r, n, 0.4), step: 1, micro: 0, groupSamples: 10, groupMicro: 4, ...at }
}

function ctxOf(m: Micro): WeighContext {
  return {
    step: m.step,
    micro: m.micro,
    indices: Int32Array.from(m.losses, (_, i) => 20 + i),
    losses: Float32Array.from(m.losses),
    tokens: Int32Array.from(m.losses, (_, i) => 5 + i),
    embeddings: matrix(m.z),
    groupSamples: m.groupSamples,
    groupMicro: m.groupMicro,
    rng: new Rng(m.step * 31 + m.micro),
    log: () => {},
  }
}

/** Eval row r's embedding under the model as trained to `version` steps (it drifts with training). */
function evalRow(r: number, version: number): number[] {
  const g = lcg(1000 + r)
  return Array.from({ length: H }, (_, c) => Math.fround(0.3 + 2 * g() - 1 + 0.05 * version * (c - 2)))
}

interface EmbedCall {
  split: Split
  indices: number[]
  opts: EmbeddingOptions
}

/** The model at `version` steps: eval embeddings only; every call is recorded in `calls`. */
function fakeModel(version: number, calls: EmbedCall[]): ModelOps {
  const never = () => Promise.reject(new Error('not used by weighters'))
  return {
    numTrain: ENV.numTrain,
    numEval: NUM_EVAL,
    losses: never,
    gradients: never,
    routerLoads: never,
    async embeddings(split, indices, opts) {
      calls.push({ split, indices: Array.from(indices), opts })
      return matrix(Array.from(indices, (r) => evalRow(r, version)))
    },
  }
}

async function refresh(w: WeighterInstance, step: number, calls: EmbedCall[] = []) {
  return w.refresh!.run({ step, model: fakeModel(step, calls), rng: new Rng(step), cacheDir: '/nonexistent', log: () => {} })
}

function create(def: WeighterDefinition, params: Record<string, unknown> = {}, env: WeighterEnv = ENV): WeighterInstance {
  return def.create(def.params.parse(params), env)
}

async function weigh(w: WeighterInstance, m: Micro): Promise<WeighResult> {
  return w.weigh(ctxOf(m))
}

function unit(v: number[], eps: number): number[] {
  let s = 0
  for (const x of v) s += x * x
  const d = Math.max(Math.sqrt(s), eps)
  return v.map((x) => x / d)
}

function dotOf(a: number[], b: number[]): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!
  return s
}

// ───────────────────────────── loss ─────────────────────────────

type Strategy = 'linupper' | 'uniform' | 'quadratic' | 'extremes'

function refLoss(m: Micro, strategy: Strategy, delta: number, r: number): number[] {
  const lo = Math.min(...m.losses)
  const hi = Math.max(...m.losses)
  const den = Math.max(hi - lo, 1e-6)
  const a = m.losses.map((l) => {
    const s = (2 * delta * l) / den - (delta * (hi + lo)) / den
    if (strategy === 'linupper') return Math.min(s + delta, delta)
    if (strategy === 'uniform') return s
    if (strategy === 'quadratic') return 1 - (s * s) / (delta * delta)
    return Math.abs(s)
  })
  const top = Math.max(...a)
  const e = a.map((x) => Math.exp((x - top) / r))
  const sum = e.reduce((x, y) => x + y, 0)
  return e.map((x) => ((x / sum) * m.groupSamples) / m.groupMicro)
}

describe('loss', () => {
  it('softmax over the micro-batch of the strategy value of the range-scaled loss, times B_G/M_G', async () => {
    for (const strategy of ['linupper', 'uniform', 'quadratic', 'extremes'] as const) {
      for (const [delta, temperature] of [[1, 1], [0.5, 1], [2, 0.7]] as const) {
        const w = create(lossWeighter, { strategy, delta, temperature })
        expect(w.reduction).toBe('sample_mean')
        expect(w.embeddings).toBeUndefined()
        expect(w.refresh).toBeUndefined()
        for (const [seed, n, groupSamples, groupMicro] of [[1, 1, 3, 3], [2, 3, 10, 4], [3, 8, 13, 2]] as const) {
          const m = microBatch(seed, n, { groupSamples, groupMicro })
          expectAllClose((await weigh(w, m)).weights, refLoss(m, strategy, delta, temperature), TOL, `${strategy} δ=${delta} r=${temperature} b=${n}`)
        }
      }
    }
  })

  it('a worked case: losses 1, 2, 3 under linupper give a = 0, 1, 1', async () => {
    const m: Micro = { losses: [1, 2, 3], z: [], step: 4, micro: 1, groupSamples: 6, groupMicro: 2 }
    const e = Math.E
    const expected = [1 / (1 + 2 * e), e / (1 + 2 * e), e / (1 + 2 * e)].map((x) => x * 3)
    expectAllClose((await create(lossWeighter).weigh({ ...ctxOf(m), embeddings: undefined })).weights, expected, TOL)
  })

  it('equal losses weigh 1/b each, which is the plain mean when B_G = b·M_G', async () => {
    const m: Micro = { losses: [2, 2, 2, 2], z: [], step: 1, micro: 0, groupSamples: 8, groupMicro: 2 }
    for (const strategy of ['linupper', 'uniform', 'quadratic', 'extremes'] as const) {
      expectAllClose((await weigh(create(lossWeighter, { strategy }), m)).weights, [1, 1, 1, 1], TOL)
    }
  })

  it('a non-finite loss is an error naming the sample and the step', async () => {
    const m = microBatch(4, 3, { step: 9, micro: 2 })
    m.losses[1] = NaN
    const err = await Promise.resolve()
      .then(() => weigh(create(lossWeighter), m))
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(WeighterError)
    expect((err as WeighterError).code).toBe('bad_input')
    expect((err as Error).message).toBe('loss: loss of sample 1 (training index 21) of micro-batch 2 at step 9 is NaN')
  })

  it('params: defaults, and bad values refused', () => {
    expect(lossWeighter.params.parse({})).toEqual({ strategy: 'linupper', delta: 1, temperature: 1 })
    for (const bad of [{ strategy: 'flat' }, { delta: 0 }, { temperature: -1 }, { r: 1 }]) expect(lossWeighter.params.safeParse(bad).success).toBe(false)
  })
})

// ───────────────────────────── adapt ─────────────────────────────

interface AdaptRef {
  tau: number
  clip: number | null
  eps: number
  reduce: 'sum' | 'mean'
}

/** The mean over the anchors of the cosine of each sample to each anchor, through a tempered sigmoid. */
function refAdapt(m: Micro, anchors: number[][], p: AdaptRef): { weights: number[]; meanScore: number } {
  const a = anchors.map((v) => unit(v, p.eps))
  const scores = m.z.map((phi) => {
    const u = unit(phi, p.eps)
    let s = 0
    for (const am of a) s += dotOf(u, am)
    return s / a.length
  })
  const weights = scores.map((s) => {
    let w = 1 / (1 + Math.exp(-s / Math.max(p.tau, p.eps)))
    if (p.clip !== null) w = Math.min(w, p.clip)
    return p.reduce === 'sum' ? (w * m.groupSamples) / m.groupMicro : w
  })
  return { weights, meanScore: scores.reduce((x, y) => x + y, 0) / scores.length }
}

const allEval = (version: number) => Array.from({ length: NUM_EVAL }, (_, r) => evalRow(r, version))

describe('adapt', () => {
  it('asks for last-layer position-weighted embeddings and refreshes every refresh_interval steps', () => {
    const w = create(adaptWeighter, { refresh_interval: 7 })
    expect(w.reduction).toBe('sample_mean')
    expect(w.embeddings).toEqual({ layer: -1, pooling: 'position_weighted', normalize: false })
    expect(w.refresh?.every).toBe(7)
  })

  it('refresh embeds every eval row once, anchor_batch_size rows per forward', async () => {
    const calls: EmbedCall[] = []
    const out = await refresh(create(adaptWeighter, { anchor_batch_size: 3 }), 5, calls)
    expect(calls).toEqual([{ split: 'eval', indices: [0, 1, 2, 3, 4, 5, 6], opts: { layer: -1, pooling: 'position_weighted', normalize: false, batchSize: 3 } }])
    expect(out).toEqual({ info: { anchors: NUM_EVAL } })
  })

  it('weights = sigmoid(mean anchor cosine / τ), clipped, per reduce; new anchors at each refresh', async () => {
    const cases: AdaptRef[] = [
      { tau: 1, clip: null, eps: 1e-8, reduce: 'sum' },
      { tau: 0.3, clip: 0.6, eps: 1e-8, reduce: 'sum' },
      { tau: 0.5, clip: null, eps: 1e-3, reduce: 'mean' },
      { tau: 2, clip: 0.55, eps: 1e-8, reduce: 'mean' },
    ]
    for (const p of cases) {
      const w = create(adaptWeighter, { ...p })
      for (const version of [0, 4]) {
        await refresh(w, version)
        for (const [seed, n, groupSamples, groupMicro] of [[11, 1, 5, 2], [12, 4, 10, 4], [13, 5, 5, 1]] as const) {
          const m = microBatch(seed + version, n, { step: version + 1, groupSamples, groupMicro })
          const ref = refAdapt(m, allEval(version), p)
          const out = await weigh(w, m)
          expectAllClose(out.weights, ref.weights, TOL, `adapt ${JSON.stringify(p)} b=${n}`)
          expectClose(out.info?.['mean_score'] as number, ref.meanScore, TOL, 'mean_score')
        }
      }
    }
    // The clip binds in the cases above (else the clip cases test nothing).
    const m = microBatch(12, 4)
    const w = create(adaptWeighter, { tau: 0.3, clip: 0.6 })
    await refresh(w, 0)
    expect(Math.max(...(await weigh(w, m)).weights)).toBeCloseTo((0.6 * 10) / 4, 12)
  })

  it('needs an eval set, and anchors before its first weights', async () => {
    expect(() => create(adaptWeighter, {}, NO_EVAL)).toThrow(WeighterError)
    expect(() => create(adaptWeighter, {}, NO_EVAL)).toThrow('adapt: ADAPT needs an eval set as its anchors: set eval_dataset in the training config')
    const early = await Promise.resolve()
      .then(() => weigh(create(adaptWeighter), microBatch(1, 3, { step: 2 })))
      .catch((e: unknown) => e)
    expect(early).toMatchObject({ code: 'not_ready', message: expect.stringContaining('no anchors at step 2') })
  })

  it('state() → restore() continues identically; a bad state is refused', async () => {
    const a = create(adaptWeighter, { tau: 0.4 })
    await refresh(a, 3)
    await weigh(a, microBatch(21, 4, { step: 4 }))
    const b = create(adaptWeighter, { tau: 0.4 })
    b.restore!(JSON.parse(JSON.stringify(a.state!())))
    expect(b.state!()).toEqual(a.state!())
    for (const seed of [22, 23]) {
      const m = microBatch(seed, 5, { step: 5 })
      expect(Array.from((await weigh(b, m)).weights)).toEqual(Array.from((await weigh(a, m)).weights))
    }
    expect(create(adaptWeighter).state!()).toEqual({ anchor_mean: null, refreshed_at: null })
    expect(() => b.restore!({ anchor_mean: [1, 'x'], refreshed_at: 3 })).toThrow('adapt: state.anchor_mean must be null or a list of finite numbers')
    expect(() => b.restore!({ anchor_mean: [1, 2], refreshed_at: null })).toThrow('both be set or both be null')
    expect(() => b.restore!([])).toThrow('adapt: state must be an object')
  })

  it('params: defaults, and bad values refused', () => {
    expect(adaptWeighter.params.parse({})).toEqual({ tau: 1, refresh_interval: 50, anchor_batch_size: 8, clip: null, eps: 1e-8, reduce: 'sum' })
    for (const bad of [{ tau: 0 }, { refresh_interval: 0 }, { anchor_batch_size: 1.5 }, { clip: 0 }, { reduce: 'avg' }]) {
      expect(adaptWeighter.params.safeParse(bad).success).toBe(false)
    }
  })
})

// ───────────────────────────── joint_update_aware ─────────────────────────────

interface JuaRef {
  beta: number
  tau: number
  iters: number
  damping: number
  normalize: boolean
  mode: 'full' | 'align_only' | 'diverse_only' | 'uniform'
}

const JUA_DEFAULT: JuaRef = { beta: 0.1, tau: 0.05, iters: 5, damping: 1, normalize: true, mode: 'full' }

function juaParams(p: JuaRef, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { beta: p.beta, tau: p.tau, fixed_point_iters: p.iters, damping: p.damping, embed_normalize: p.normalize, objective_mode: p.mode, ...extra }
}

/** The raw mean of `vectors`, unit-normalised when `normalize`. */
function direction(vectors: number[][], normalize: boolean): number[] {
  const u = new Array<number>(H).fill(0)
  for (const v of vectors) for (let c = 0; c < H; c++) u[c] = u[c]! + v[c]! / vectors.length
  return normalize ? unit(u, 1e-12) : u
}

/** The damped fixed point on the micro-batch's z rows for the target u. */
function refJua(m: Micro, u: number[], p: JuaRef): { weights: number[]; change: number } {
  const n = m.z.length
  const scale = m.groupSamples / m.groupMicro
  if (n === 1) return { weights: [scale], change: 0 }
  const z = m.z.map((v) => (p.normalize ? unit(v, 1e-12) : v))
  const s = z.map((zi) => dotOf(zi, u))
  const S = z.map((zi) => z.map((zj) => dotOf(zi, zj)))
  let w = new Array<number>(n).fill(1 / n)
  let change = 0
  if (p.mode !== 'uniform') {
    for (let k = 0; k < p.iters; k++) {
      const g = s.map((si, i) => {
        const sw = S[i]!.reduce((acc, sij, j) => acc + sij * w[j]!, 0)
        if (p.mode === 'align_only') return si
        if (p.mode === 'diverse_only') return -p.beta * sw
        return si - p.beta * sw
      })
      const top = Math.max(...g)
      const e = g.map((x) => Math.exp((x - top) / p.tau))
      const total = e.reduce((x, y) => x + y, 0)
      const next = w.map((wi, i) => (1 - p.damping) * wi + (p.damping * e[i]!) / total)
      change = next.reduce((acc, x, i) => acc + Math.abs(x - w[i]!), 0)
      w = next
    }
  }
  return { weights: w.map((x) => x * scale), change }
}

async function expectJua(w: WeighterInstance, m: Micro, u: number[], p: JuaRef, what: string): Promise<void> {
  const out = await weigh(w, m)
  const ref = refJua(m, u, p)
  expectAllClose(out.weights, ref.weights, TOL, what)
  if (m.z.length > 1) expectClose(out.info?.['fixed_point_change'] as number, ref.change, TOL, `${what} change`)
}

describe('joint_update_aware', () => {
  it('asks for embed_layer with last_token or label_mean pooling, unnormalised; refresh only with an eval set', () => {
    const w = create(jointUpdateAwareWeighter, { target_update_step: 9 })
    expect(w.reduction).toBe('sample_mean')
    expect(w.embeddings).toEqual({ layer: -1, pooling: 'last_token', normalize: false })
    expect(w.refresh?.every).toBe(9)
    expect(create(jointUpdateAwareWeighter, { pooling: 'mean_pool', embed_layer: -3 }).embeddings).toEqual({ layer: -3, pooling: 'label_mean', normalize: false })
    expect(create(jointUpdateAwareWeighter, {}, NO_EVAL).refresh).toBeUndefined()
  })

  it('every mode, normalised or not, damped or not: the fixed point of softmax((s − βSw)/τ), times B_G/M_G', async () => {
    const modes = ['full', 'align_only', 'diverse_only', 'uniform'] as const
    const cases: JuaRef[] = [
      ...modes.map((mode) => ({ ...JUA_DEFAULT, mode })),
      ...modes.map((mode) => ({ ...JUA_DEFAULT, mode, normalize: false, beta: 0.3, tau: 0.5 })),
      { ...JUA_DEFAULT, damping: 0.6, iters: 7 },
      { ...JUA_DEFAULT, damping: 0.3, iters: 1, beta: 1 },
      { ...JUA_DEFAULT, beta: 0 },
    ]
    for (const p of cases) {
      const w = create(jointUpdateAwareWeighter, juaParams(p, { target_num_batches: 0 }))
      await refresh(w, 2)
      const u = direction(allEval(2), p.normalize)
      for (const [seed, n, groupSamples, groupMicro] of [[31, 1, 3, 3], [32, 2, 6, 2], [33, 5, 10, 4], [34, 8, 17, 3]] as const) {
        await expectJua(w, microBatch(seed, n, { step: 3, groupSamples, groupMicro }), u, p, `${JSON.stringify(p)} b=${n}`)
      }
    }
  })

  it('the target: the raw mean of the next target_num_batches eval batches in order, wrapping around', async () => {
    // 7 eval rows in batches of 3: [0 1 2] [3 4 5] [6]; with 4 batches a refresh, batches 0 1 2 0, 1 2 0 1, 2 0 1 2, …
    const plans: [number, number[][]][] = [
      [1, [[0, 1, 2], [3, 4, 5], [6], [0, 1, 2]]],
      [4, [[0, 1, 2, 3, 4, 5, 6, 0, 1, 2], [3, 4, 5, 6, 0, 1, 2, 3, 4, 5], [6, 0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6, 0, 1, 2]]],
      [0, [[0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6]]],
      [-2, [[0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6]]],
    ]
    for (const normalize of [true, false]) {
      for (const [numBatches, visits] of plans) {
        const p = { ...JUA_DEFAULT, normalize }
        const w = create(jointUpdateAwareWeighter, juaParams(p, { target_batch_size: 3, target_num_batches: numBatches, embed_layer: -2, pooling: 'mean_pool' }))
        for (const [r, visited] of visits.entries()) {
          const calls: EmbedCall[] = []
          const step = 10 * r
          expect(await refresh(w, step, calls)).toEqual({ info: { target_rows: visited.length } })
          expect(calls).toEqual([{ split: 'eval', indices: [...new Set(visited)], opts: { layer: -2, pooling: 'label_mean', normalize: false, batchSize: 3 } }])
          const u = direction(visited.map((row) => evalRow(row, step)), normalize)
          await expectJua(w, microBatch(40 + r, 4, { step: step + 1 }), u, p, `batches ${numBatches} refresh ${r}`)
        }
      }
    }
  })

  it('without an eval set: the first micro-batch mean z at each refresh point, kept for target_update_step steps', async () => {
    for (const normalize of [true, false]) {
      const p = { ...JUA_DEFAULT, normalize }
      const w = create(jointUpdateAwareWeighter, juaParams(p, { target_update_step: 2 }), NO_EVAL)
      const zOf = (m: Micro) => m.z.map((v) => (normalize ? unit(v, 1e-12) : v))
      // A lone sample weighs 1 and sets no target.
      await expectJua(w, microBatch(50, 1, { step: 1, micro: 0 }), [], p, 'lone sample')
      const first = microBatch(51, 4, { step: 1, micro: 1 })
      const u1 = direction(zOf(first), normalize)
      await expectJua(w, first, u1, p, 'step 1 micro 1')
      await expectJua(w, microBatch(52, 3, { step: 1, micro: 2 }), u1, p, 'step 1 micro 2')
      await expectJua(w, microBatch(53, 5, { step: 2 }), u1, p, 'step 2')
      const third = microBatch(54, 3, { step: 3 })
      const u3 = direction(zOf(third), normalize)
      await expectJua(w, third, u3, p, 'step 3: a new target')
      await expectJua(w, microBatch(55, 4, { step: 4 }), u3, p, 'step 4')
      expect(w.state!()).toMatchObject({ target_step: 2, eval_cursor: 0 })
    }
  })

  it('state() → restore() continues identically, with and without an eval set', async () => {
    for (const env of [ENV, NO_EVAL]) {
      const params = { target_batch_size: 2, target_num_batches: 1, target_update_step: 2 }
      const a = create(jointUpdateAwareWeighter, params, env)
      const b = create(jointUpdateAwareWeighter, params, env)
      if (env.numEval > 0) await refresh(a, 0)
      await weigh(a, microBatch(60, 4, { step: 1 }))
      b.restore!(JSON.parse(JSON.stringify(a.state!())))
      expect(b.state!()).toEqual(a.state!())
      for (const step of [2, 3, 4]) {
        if (env.numEval > 0 && step === 3) {
          const callsA: EmbedCall[] = []
          const callsB: EmbedCall[] = []
          await refresh(a, 2, callsA)
          await refresh(b, 2, callsB)
          expect(callsB).toEqual(callsA)
          expect(callsA[0]!.indices).toEqual([2, 3])
        }
        const m = microBatch(60 + step, 4, { step })
        expect(Array.from((await weigh(b, m)).weights)).toEqual(Array.from((await weigh(a, m)).weights))
      }
    }
  })

  it('errors: weights before the first refresh, a bad state', async () => {
    const early = await Promise.resolve()
      .then(() => weigh(create(jointUpdateAwareWeighter), microBatch(70, 3, { step: 6 })))
      .catch((e: unknown) => e)
    expect(early).toBeInstanceOf(WeighterError)
    expect(early).toMatchObject({ code: 'not_ready', message: expect.stringContaining('no target direction at step 6') })
    const w = create(jointUpdateAwareWeighter, { target_batch_size: 3 })
    expect(() => w.restore!({ target: null, target_step: null, eval_cursor: 3 })).toThrow('joint_update_aware: state.eval_cursor must be an integer in [0, 3)')
    expect(() => w.restore!({ target: [1], target_step: null, eval_cursor: 0 })).toThrow('both be set or both be null')
  })

  it('params: defaults (DataFlex\'s), and bad values refused', () => {
    expect(jointUpdateAwareWeighter.params.parse({})).toEqual({
      beta: 0.1,
      tau: 0.05,
      fixed_point_iters: 5,
      damping: 1,
      target_update_step: 50,
      target_batch_size: 1,
      target_num_batches: 1,
      embed_normalize: true,
      pooling: 'last_token',
      embed_layer: -1,
      objective_mode: 'full',
    })
    const bad = [{ tau: 0 }, { damping: 0 }, { damping: 1.5 }, { beta: -1 }, { fixed_point_iters: 0 }, { pooling: 'cls' }, { objective_mode: 'both' }, { seed: 42 }]
    for (const p of bad) expect(jointUpdateAwareWeighter.params.safeParse(p).success).toBe(false)
  })
})

// ───────────────────────────── the example custom weighter ─────────────────────────────

describe('examples/strategies/outlier_guard.ts', () => {
  async function example(params: Record<string, unknown>): Promise<WeighterInstance> {
    const dir = tempDir('weighter-example')
    const components = { weighters: { guard: { name: 'custom', params: { path: `${REPO_ROOT}/examples/strategies/outlier_guard.ts`, ...params } } } }
    const r = await resolveComponent(fakeConfig(dir, { components, component_name: 'guard' }), 'weighter', { cwd: dir })
    expect(r.strategy).toBe('outlier_guard')
    return r.definition.create(r.params, ENV)
  }

  it('all ones, except a loss above max_ratio × the median, which is weighted down to that bound', async () => {
    const m: Micro = { losses: [1, 1.2, 0.8, 10, 0.9], z: [], step: 1, micro: 0, groupSamples: 5, groupMicro: 1 }
    const w = await example({})
    expect(w.reduction).toBe('token_mean')
    const out = await weigh(w, m)
    expectAllClose(out.weights, [1, 1, 1, 0.3, 1], { rel: 1e-6 })
    expect(out.info).toEqual({ guarded: 1 })
    // An even count takes the mean of the middle two: median 1.5, bound 3 with max_ratio 2.
    const even = await weigh(await example({ max_ratio: 2 }), { ...m, losses: [1, 2, 6, 1] })
    expectAllClose(even.weights, [1, 1, 0.5, 1], { rel: 1e-6 })
    expect(Array.from((await weigh(await example({ max_ratio: null }), m)).weights)).toEqual([1, 1, 1, 1, 1])
  })
})

// ───────────────────────────── registry and presets ─────────────────────────────

describe('registry and presets', () => {
  it('every built-in weighter is registered, and every shipped weighters preset resolves and creates', async () => {
    const names = BUILTIN_WEIGHTERS.map((d) => d.name).sort()
    expect(names).toEqual(['adapt', 'joint_update_aware', 'loss'])
    expect(defaultRegistry().names('weighter')).toEqual([...names, 'custom'])
    for (const key of [...names, 'custom']) {
      const cfg = fakeConfig(REPO_ROOT, { components_cfg_file: 'configs/components.yaml', component_name: key })
      const r = await resolveComponent(cfg, 'weighter', { cwd: REPO_ROOT })
      expect(r.algorithm).toBe(key)
      const w = r.definition.create(r.params, ENV)
      expect(typeof w.weigh).toBe('function')
      if (key !== 'custom') expect(r.params).toEqual(r.definition.params.parse({}))
    }
    const custom = await resolveComponent(fakeConfig(REPO_ROOT, { components_cfg_file: 'configs/components.yaml', component_name: 'custom' }), 'weighter', { cwd: REPO_ROOT })
    expect([custom.strategy, custom.file]).toEqual(['outlier_guard', `${REPO_ROOT}/examples/strategies/outlier_guard.ts`])
  })

  it('bad params are refused with the key, the preset and the reason', async () => {
    const dir = tempDir('weighter-params')
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ name: 'loss', params: { strategy: 'flat' } }, 'weighters.w.params.strategy', /bad value for param 'strategy' of weighter 'w' \(algorithm loss\)/],
      [{ name: 'adapt', params: { clip: -1 } }, 'weighters.w.params.clip', /bad value for param 'clip'/],
      [{ name: 'joint_update_aware', params: { damping: 0 } }, 'weighters.w.params.damping', /bad value for param 'damping'/],
      [{ name: 'joint_update_aware', params: { seed: 42 } }, 'weighters.w.params.seed', /unknown param 'seed'/],
    ]
    for (const [preset, key, message] of cases) {
      const err = await configError(resolveComponent(fakeConfig(dir, { components: { weighters: { w: preset } }, component_name: 'w' }), 'weighter', { cwd: dir }))
      expect(err.key).toBe(key)
      expect(err.message).toMatch(message)
    }
  })
})
