/**
 * Fidelity of the built-in mixers: fixed per-step per-domain statistics (and router loads from a fake ModelOps) are
 * fed through several consecutive updates, and every decision is checked against an independent reference written
 * here from the formulas of docs/algorithms.md (#static … #ado) in plain loops (nothing from the code under test
 * except the Rng that seeds both sides where a random draw is part of the definition).
 */
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { Rng } from '../src/math/rng.ts'
import type { Domain, MixerDefinition, MixerEnv, MixerInstance } from '../src/strategies/mixer.ts'
import { EXPONENT_STEP, adoMixer, fitPowerLaw } from '../src/strategies/mixers/ado.ts'
import { pyFloat } from '../src/strategies/mixers/common.ts'
import { BUILTIN_MIXERS, MixerError, doremiMixer, dynamicMoeMixer, odmMixer, randomMixer, staticMixer } from '../src/strategies/mixers/index.ts'
import { resolveComponent } from '../src/strategies/presets.ts'
import type { ModelOps, RouterLoads, Split } from '../src/strategies/types.ts'
import { expectAllClose, expectClose } from './close.ts'
import { MixRun, NO_MODEL, type StepInput } from './mix-support.ts'
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

const DOMAINS: Domain[] = [
  { name: 'code', size: 120 },
  { name: 'math', size: 60 },
  { name: 'chat', size: 20 },
]
const K = DOMAINS.length
const NAMES = DOMAINS.map((d) => d.name)
const INITIAL = Float64Array.from([0.5, 0.3, 0.2])
const ENV: MixerEnv = { domains: DOMAINS, initial: INITIAL, seed: 11, baseDir: '/nonexistent' }
const PROB = { rel: 1e-12, scale: 1 }

/**
 * `n` steps of per-domain sums: a few samples per domain (absent where `absent` says), ~20 tokens each, losses
 * around `base[d]` falling with the step, excess losses a fraction of them.
 */
function steps(seed: number, n: number, opts: { absent?: (step: number, d: number) => boolean; base?: number[] } = {}): StepInput[] {
  const r = lcg(seed)
  const base = opts.base ?? [2.0, 1.5, 3.0]
  return Array.from({ length: n }, (_, j) => {
    const samples = base.map((_, d) => (opts.absent?.(j, d) ? 0 : 1 + Math.floor(r() * 4)))
    const tokens = samples.map((s) => (s === 0 ? 0 : s * (15 + Math.floor(r() * 10))))
    const loss = base.map((b) => b * (1 + 0.2 * r()) / Math.sqrt(1 + j))
    return {
      samples,
      tokens,
      lossSum: tokens.map((t, d) => t * loss[d]!),
      excessSum: tokens.map((t, d) => t * loss[d]! * (0.1 + 0.3 * r())),
    }
  })
}

function normalized(v: ArrayLike<number>): number[] {
  let s = 0
  for (let i = 0; i < v.length; i++) s += v[i]!
  return Array.from(v, (x) => x / s)
}

function windowSums(win: readonly StepInput[], key: 'samples' | 'tokens' | 'lossSum' | 'excessSum'): number[] {
  const out = new Array<number>(K).fill(0)
  for (const s of win) for (let d = 0; d < K; d++) out[d] = out[d]! + s[key]![d]!
  return out
}

function create(def: MixerDefinition, params: Record<string, unknown> = {}, env: MixerEnv = ENV): MixerInstance {
  return def.create(def.params.parse(params), env)
}

/**
 * state() → JSON → restore() into a fresh instance after `before` windows, then both take the `after` windows
 * with equal contexts: the decisions must be identical.
 */
async function expectRestoreContinues(make: () => MixerInstance, run: () => MixRun, before: StepInput[][], after: StepInput[][]): Promise<void> {
  const r = run()
  const a = make()
  for (const w of before) await r.mix(a, w)
  const b = make()
  b.restore!(JSON.parse(JSON.stringify(a.state!())))
  for (const w of after) {
    const ctx = r.context(w)
    const outA = await a.mix(ctx)
    const outB = await b.mix({ ...ctx, rng: r.rngFor(ctx.step) })
    expect(Array.from(outB.proportions)).toEqual(Array.from(outA.proportions))
    expect(b.lossWeights?.()).toEqual(a.lossWeights?.())
    r.current = Float64Array.from(normalized(outA.proportions))
  }
}

// ───────────────────────────── static and random ─────────────────────────────

describe('static', () => {
  it('returns the normalised proportions at every update; null gives the initial ones', async () => {
    const run = new MixRun({ domains: DOMAINS, initial: INITIAL })
    const fixed = create(staticMixer, { proportions: [2, 1, 1] })
    const unset = create(staticMixer)
    for (const w of [steps(1, 2), steps(2, 3), steps(3, 1)]) {
      const ctx = run.context(w)
      expectAllClose((await fixed.mix(ctx)).proportions, [0.5, 0.25, 0.25], PROB)
      expect(Array.from((await unset.mix(ctx)).proportions)).toEqual(Array.from(INITIAL))
    }
  })

  it('refuses proportions of the wrong length, negative or all zero', () => {
    expect(() => create(staticMixer, { proportions: [1, 1] })).toThrow(MixerError)
    expect(() => create(staticMixer, { proportions: [1, 1] })).toThrow("static: 'proportions' has 2 values but the run has 3 domains")
    expect(staticMixer.params.safeParse({ proportions: [1, -1, 1] }).success).toBe(false)
    const zero = staticMixer.params.safeParse({ proportions: [0, 0, 0] })
    expect(zero.success).toBe(false)
    expect(zero.error?.issues[0]?.message).toContain('sum to 0')
  })
})

describe('random', () => {
  it('draws fresh proportions u/Σu at every update, the same ones for the same seed', async () => {
    const ref = (rng: Rng) => normalized(Array.from({ length: K }, () => 1 - rng.float()))
    const run = new MixRun({ domains: DOMAINS, initial: INITIAL, seed: 5 })
    const free = create(randomMixer)
    const seeded = create(randomMixer, { seed: 42 })
    const seen: number[][] = []
    for (let u = 0; u < 3; u++) {
      const ctx = run.context(steps(u, 2))
      const p = Array.from((await free.mix({ ...ctx, rng: run.rngFor(ctx.step) })).proportions)
      expectAllClose(p, ref(run.rngFor(ctx.step)), PROB)
      expectAllClose((await seeded.mix(ctx)).proportions, ref(Rng.derive(42, 'random_mixer', ctx.step)), PROB)
      expect(seen.some((q) => q.every((x, i) => x === p[i]))).toBe(false)
      seen.push(p)
    }
    // Same run seed → same proportions.
    const again = new MixRun({ domains: DOMAINS, initial: INITIAL, seed: 5 })
    const other = create(randomMixer)
    for (let u = 0; u < 3; u++) expect(Array.from((await again.mix(other, steps(u, 2))).proportions)).toEqual(seen[u])
  })
})

// ───────────────────────────── doremi ─────────────────────────────

/** DoReMi's update in plain loops: absent domains take the mean λ of the present ones. */
function doremiRef(alpha: number[], win: readonly StepInput[], key: 'excessSum' | 'lossSum', eta: number, c: number): { alpha: number[]; lambda: number[] } {
  const num = windowSums(win, key)
  const tok = windowSums(win, 'tokens')
  const present = tok.map((t) => t > 0)
  const lambda = num.map((s, d) => (present[d] ? s / tok[d]! : NaN))
  let fill = 0
  let n = 0
  for (let d = 0; d < K; d++) if (present[d]) (fill += lambda[d]!), n++
  for (let d = 0; d < K; d++) if (!present[d]) lambda[d] = fill / n
  const raw = alpha.map((a, d) => a * Math.exp(eta * lambda[d]!))
  const total = raw.reduce((x, y) => x + y, 0)
  return { alpha: raw.map((a) => ((1 - c) * a) / total + c / K), lambda }
}

describe('doremi', () => {
  const windows = [steps(10, 3), steps(11, 2, { absent: (_, d) => d === 2 }), steps(12, 4), steps(13, 1)]

  it('updates α from the window excess losses, samples uniformly, weights the loss by k·α; logs and finishes as DataFlex', async () => {
    const params = { reference_model_path: '/models/ref', reweight_eta: 0.7, reweight_eps: 0.05 }
    const mixer = create(doremiMixer, params)
    expect(mixer.referenceModel).toBe('/models/ref')
    expect(mixer.lossWeights!()).toBeUndefined()
    const run = new MixRun({ domains: DOMAINS, initial: INITIAL })
    let alpha = [1 / 3, 1 / 3, 1 / 3]
    const history: number[][] = []
    for (const w of windows) {
      const out = await run.mix(mixer, w)
      const ref = doremiRef(alpha, w, 'excessSum', 0.7, 0.05)
      alpha = ref.alpha
      history.push(alpha)
      expectAllClose(out.proportions, [1 / 3, 1 / 3, 1 / 3], PROB)
      expectAllClose(mixer.lossWeights!()!, alpha.map((a) => K * a), { rel: 1e-12, scale: K })
      const rec = out.records![0]!
      expect(rec.file).toBe('doremi_weights.jsonl')
      expect(Object.keys(rec.record)).toEqual(['step', 'timestamp', 'domain_names', 'domain_weights', 'perdomain_scores'])
      expect(rec.record['step']).toBe(run.step)
      expect(rec.record['timestamp']).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/)
      expect(rec.record['domain_names']).toEqual(NAMES)
      expectAllClose(rec.record['domain_weights'] as number[], alpha, PROB)
      expectAllClose(rec.record['perdomain_scores'] as number[], ref.lambda, { rel: 1e-12 })
    }
    // The absent domain of window 2 took the mean λ of the others.
    expect(windows[1]!.every((s) => s.tokens[2] === 0)).toBe(true)

    const avg = normalized(alpha.map((_, d) => history.reduce((s, a) => s + a[d]!, 0) / history.length))
    const files = mixer.finish!()
    expect(Object.keys(files).sort()).toEqual(['doremi_average_weights.json', 'doremi_step3_proportions.txt'])
    const json = JSON.parse(files['doremi_average_weights.json']!) as Record<string, unknown>
    expect(json['description']).toBe('DoReMi Step 2: average domain weights for Step 3')
    expect(json['update_times']).toBe(windows.length)
    expect(json['domain_names']).toEqual(NAMES)
    expectAllClose(json['average_weights'] as number[], avg, PROB)
    const got = (json['average_weights'] as number[])
    expect(files['doremi_step3_proportions.txt']).toBe(
      `# DoReMi Step 3 proportions\n# proportions: [${got.map(pyFloat).join(', ')}]\n` + NAMES.map((n, d) => `${n}: ${got[d]!.toFixed(6)}\n`).join(''),
    )
  })

  it('without a reference model λ is the token-mean training loss (logged); the defaults are the DataFlex code defaults', async () => {
    const mixer = create(doremiMixer)
    expect(mixer.referenceModel).toBeUndefined()
    const run = new MixRun({ domains: DOMAINS, initial: INITIAL })
    let alpha = [1 / 3, 1 / 3, 1 / 3]
    for (const w of windows.slice(0, 2)) {
      await run.mix(mixer, w)
      alpha = doremiRef(alpha, w, 'lossSum', 1.0, 1e-3).alpha
      expectAllClose(mixer.lossWeights!()!, alpha.map((a) => K * a), { rel: 1e-12, scale: K })
    }
    expect(run.logs).toEqual(['doremi: no reference model; λ is the plain token-mean training loss'])
    // A reference model whose excess losses did not arrive is an error, not a silent fallback.
    const withRef = create(doremiMixer, { reference_model_path: '/models/ref' })
    const bare = windows[0]!.map(({ excessSum: _, ...s }) => s)
    await expect(Promise.resolve().then(() => withRef.mix(new MixRun({ domains: DOMAINS, initial: INITIAL }).context(bare)))).rejects.toThrow(/no excess losses/)
  })

  it('finish() before any update writes the uniform weights', () => {
    const files = create(doremiMixer).finish!()
    expect(JSON.parse(files['doremi_average_weights.json']!)).toMatchObject({ update_times: 0, average_weights: [1 / 3, 1 / 3, 1 / 3] })
  })

  it('state() → restore() continues identically', async () => {
    const make = () => create(doremiMixer, { reference_model_path: '/models/ref', reweight_eta: 0.5 })
    await expectRestoreContinues(make, () => new MixRun({ domains: DOMAINS, initial: INITIAL }), windows.slice(0, 2), windows.slice(2))
    const b = make()
    expect(() => b.restore!({ alpha: [1, 2], history: [] })).toThrow('doremi: state.alpha must be a list of 3 numbers')
  })
})

// ───────────────────────────── odm ─────────────────────────────

describe('odm', () => {
  const windows = [steps(20, 2), steps(21, 2), steps(22, 3, { absent: (_, d) => d === 0 }), steps(23, 2), steps(24, 5)]

  /** ODM in plain loops, over the windows after the warm-up. */
  function odmRef(ws: StepInput[][], stepsBefore: number[], warmup: number, o: { alpha: number; scale: number; floor: number; iw: boolean; initial: number[] }) {
    let policy = [...o.initial]
    const rewards = new Array<number>(K).fill(0)
    let eps = 1 / K
    const out: { policy: number[]; rewards: number[]; eps: number }[] = []
    ws.forEach((w, u) => {
      const step = stepsBefore[u]!
      if (step <= warmup) {
        out.push({ policy: [...o.initial], rewards: [...rewards], eps })
        return
      }
      const ls = windowSums(w, 'lossSum')
      const tok = windowSums(w, 'tokens')
      for (let d = 0; d < K; d++) {
        if (tok[d] === 0) continue
        let r = (o.scale * ls[d]!) / tok[d]!
        if (o.iw) r /= Math.max(policy[d]!, 1e-8)
        rewards[d] = o.alpha * rewards[d]! + (1 - o.alpha) * r
      }
      const prev = eps
      const t = step - warmup
      eps = Math.max(o.floor, Math.min(1 / K, Math.sqrt(Math.log(K) / (K * t))))
      const e = rewards.map((r) => Math.exp(prev * r))
      const se = e.reduce((a, b) => a + b, 0)
      policy = normalized(e.map((x) => (1 - K * eps) * (x / se) + eps))
      out.push({ policy: [...policy], rewards: [...rewards], eps })
    })
    return out
  }

  for (const estimator of ['full_information', 'importance_weighted'] as const) {
    it(`keeps the initial proportions through the warm-up, then Exp3 with EMA rewards (${estimator})`, async () => {
      const mixer = create(odmMixer, { warmup_steps: 4, reward_estimator: estimator, initial_proportions: [1, 1, 2] })
      const fresh = JSON.stringify(mixer.state!())
      const run = new MixRun({ domains: DOMAINS, initial: INITIAL })
      const at: number[] = []
      let total = 0
      for (const w of windows) at.push((total += w.length))
      const ref = odmRef(windows, at, 4, { alpha: 0.9, scale: 15, floor: 0.03, iw: estimator === 'importance_weighted', initial: [0.25, 0.25, 0.5] })
      for (let u = 0; u < windows.length; u++) {
        const out = await run.mix(mixer, windows[u]!)
        expectAllClose(out.proportions, ref[u]!.policy, PROB, `update ${u + 1}`)
        const s = mixer.state!() as { rewards: number[]; epsilon: number }
        expectAllClose(s.rewards, ref[u]!.rewards, { rel: 1e-12, scale: 1 })
        expectClose(s.epsilon, ref[u]!.eps, { rel: 1e-12 })
        if (at[u]! <= 4) {
          expect(JSON.stringify(mixer.state!())).toBe(fresh)
          expect(out.records).toBeUndefined()
        } else {
          const rec = out.records![0]!
          expect(rec.file).toBe('odm_weights.jsonl')
          expect(Object.keys(rec.record)).toEqual(['step', 'timestamp', 'domain_names', 'domain_weights', 'estimated_rewards', 'exploration_rate', 'alpha'])
          expect(rec.record['alpha']).toBe(0.9)
        }
      }
      expect(at.filter((s) => s > 4).length).toBe(3)
    })
  }

  it('a non-finite policy resets to the initial proportions and clears the rewards', async () => {
    const mixer = create(odmMixer, { warmup_steps: 0 })
    const run = new MixRun({ domains: DOMAINS, initial: INITIAL })
    const bad = steps(30, 1)
    bad[0]!.lossSum[1] = Infinity
    const out = await run.mix(mixer, bad)
    expect(Array.from(out.proportions)).toEqual(Array.from(INITIAL))
    expect((mixer.state!() as { rewards: number[] }).rewards).toEqual([0, 0, 0])
    expect(run.logs[0]).toMatch(/^odm: non-finite policy at step 1/)
  })

  it('state() → restore() continues identically; bad initial_proportions are refused', async () => {
    const make = () => create(odmMixer, { warmup_steps: 3, reward_estimator: 'importance_weighted' })
    await expectRestoreContinues(make, () => new MixRun({ domains: DOMAINS, initial: INITIAL }), windows.slice(0, 3), windows.slice(3))
    expect(() => create(odmMixer, { initial_proportions: [1, 2, 3, 4] })).toThrow("odm: 'initial_proportions' has 4 values but the run has 3 domains")
  })
})

// ───────────────────────────── dynamic_moe ─────────────────────────────

const LAYERS = 2
const EXPERTS = 4

/** Router loads per row from the LCG (each domain's rows lean towards one expert); records what it was asked for. */
function fakeMoe(): ModelOps & { calls: { split: Split; rows: number[]; batchSize?: number }[]; table: (split: Split, row: number) => number[] } {
  const table = (split: Split, row: number): number[] => {
    const r = lcg(row * 7919 + split.length)
    const lean = split === 'eval:math' ? 1 : row % EXPERTS
    return Array.from({ length: LAYERS * EXPERTS }, (_, j) => Math.floor(r() * 6) + (j % EXPERTS === lean ? 9 : 0))
  }
  const calls: { split: Split; rows: number[]; batchSize?: number }[] = []
  return {
    ...NO_MODEL,
    calls,
    table,
    async routerLoads(split, indices, opts): Promise<RouterLoads> {
      calls.push({ split, rows: Array.from(indices), batchSize: opts?.batchSize })
      const data = new Float32Array(indices.length * LAYERS * EXPERTS)
      indices.forEach((row, i) => data.set(table(split, row), i * LAYERS * EXPERTS))
      return { loads: { data, rows: indices.length, cols: LAYERS * EXPERTS }, layers: LAYERS, experts: EXPERTS, topK: 2 }
    },
  }
}

describe('dynamic_moe', () => {
  const heldOut = [
    { split: 'train' as Split, indices: Int32Array.from({ length: 30 }, (_, i) => 100 + i) },
    { split: 'eval:math' as Split, indices: Int32Array.from({ length: 5 }, (_, i) => i) },
    { split: 'train' as Split, indices: Int32Array.from({ length: 12 }, (_, i) => 300 + 2 * i) },
  ]

  /** Ô per domain from the rows the mixer asked for: per layer Σ over rows, normalised, averaged over the used layers. */
  function loadsRef(model: ReturnType<typeof fakeMoe>, calls: { split: Split; rows: number[] }[], layers: 'all' | 'last'): number[][] {
    return calls.map((c) => {
      const used = layers === 'all' ? [0, 1] : [LAYERS - 1]
      const o = new Array<number>(EXPERTS).fill(0)
      for (const l of used) {
        const s = new Array<number>(EXPERTS).fill(0)
        for (const row of c.rows) {
          const t = model.table(c.split, row)
          for (let e = 0; e < EXPERTS; e++) s[e] = s[e]! + t[l * EXPERTS + e]!
        }
        const tot = s.reduce((a, b) => a + b, 0)
        for (let e = 0; e < EXPERTS; e++) o[e] = o[e]! + s[e]! / tot / used.length
      }
      return o
    })
  }

  for (const layers of ['all', 'last'] as const) {
    it(`weights domains by the divergence of their expert loads on fixed held-out rows (layers: ${layers})`, async () => {
      const model = fakeMoe()
      const mixer = create(dynamicMoeMixer, { eta: 3, c: 0.1, collect_steps: 2, eval_batch_size: 4, layers })
      expect(mixer.heldOut).toBe(1000)
      const run = new MixRun({ domains: DOMAINS, initial: INITIAL, model, heldOut })
      let w = Array.from(INITIAL)
      let firstRows: { split: Split; rows: number[] }[] | undefined
      for (let u = 0; u < 3; u++) {
        model.calls.length = 0
        const out = await run.mix(mixer, steps(40 + u, 2))
        // One call per split (train: domains 0 and 2 together), eval_batch_size rows per forward; each domain's rows
        // are min(held-out, collect_steps × eval_batch_size) distinct held-out rows, fixed for the run.
        expect(model.calls.map((c) => [c.split, c.batchSize])).toEqual([['train', 4], ['eval:math', 4]])
        const calls = heldOut.map((h) => ({ split: h.split, rows: model.calls.find((c) => c.split === h.split)!.rows.filter((r) => h.indices.includes(r)) }))
        expect(model.calls.reduce((n, c) => n + c.rows.length, 0)).toBe(calls.reduce((n, c) => n + c.rows.length, 0))
        calls.forEach((c, d) => {
          expect(c.rows.length).toBe(Math.min(heldOut[d]!.indices.length, 8))
          expect(new Set(c.rows).size).toBe(c.rows.length)
        })
        if (firstRows === undefined) firstRows = calls
        else expect(calls).toEqual(firstRows)

        const o = loadsRef(model, calls, layers)
        const delta = o.map((a) => o.reduce((s, b) => s + Math.sqrt(a.reduce((q, x, e) => q + (x - b[e]!) ** 2, 0)), 0) / K)
        const alpha = normalized(w.map((x, d) => Math.exp(Math.log(x + 1e-10) + 3 * delta[d]!)))
        w = normalized(alpha.map((a) => 0.9 * a + 0.1 / K))
        expectAllClose(out.proportions, w, PROB, `update ${u + 1}`)
        const rec = out.records![0]!
        expect(rec.file).toBe('dynamic_moe_weights.jsonl')
        const r = rec.record as { gate_loads: Record<string, number[]>; delta: Record<string, number>; alpha: Record<string, number>; new_weights: Record<string, number>; eta: number; c: number }
        NAMES.forEach((n, d) => {
          expectAllClose(r.gate_loads[n]!, o[d]!, PROB)
          expectClose(r.delta[n], delta[d]!, { rel: 1e-12, scale: 1 })
          expectClose(r.alpha[n], alpha[d]!, PROB)
          expectClose(r.new_weights[n], w[d]!, PROB)
        })
        expect([r.eta, r.c]).toEqual([3, 0.1])
      }
    })
  }

  it('state() → restore() continues identically (same rows, same weights); missing held-out rows and bad loads are errors', async () => {
    const make = () => create(dynamicMoeMixer, { collect_steps: 1, eval_batch_size: 3 })
    const model = fakeMoe()
    const run = () => new MixRun({ domains: DOMAINS, initial: INITIAL, model, heldOut })
    await expectRestoreContinues(make, run, [steps(50, 1)], [steps(51, 1), steps(52, 2)])

    const none = new MixRun({ domains: DOMAINS, initial: INITIAL, model, heldOut: [heldOut[0]!, { split: 'train', indices: new Int32Array(0) }, heldOut[2]!] })
    await expect(Promise.resolve().then(() => make().mix(none.context(steps(53, 1))))).rejects.toThrow("dynamic_moe: domain 'math' has no held-out rows")
    const wrong: ModelOps = { ...model, routerLoads: async (_s, idx) => ({ loads: { data: new Float32Array(idx.length * 3), rows: idx.length, cols: 3 }, layers: 2, experts: 4, topK: 1 }) }
    const badRun = new MixRun({ domains: DOMAINS, initial: INITIAL, model: wrong, heldOut })
    await expect(Promise.resolve().then(() => make().mix(badRun.context(steps(54, 1))))).rejects.toThrow(/router loads of domains code, chat: expected 6 rows/)
  })
})

// ───────────────────────────── ado ─────────────────────────────

/** (ε, β) ≥ 0 least squares for one α, in plain loops: the unconstrained solution, else the better edge. */
function nnlsRef(n: number[], y: number[], alpha: number): { eps: number; beta: number; sse: number } {
  const x = n.map((v) => Math.pow(v, -alpha))
  const m = y.length
  const mx = x.reduce((a, b) => a + b, 0) / m
  const my = y.reduce((a, b) => a + b, 0) / m
  let cov = 0
  let vx = 0
  for (let t = 0; t < m; t++) (cov += (x[t]! - mx) * (y[t]! - my)), (vx += (x[t]! - mx) ** 2)
  const err = (e: number, b: number) => y.reduce((s, v, t) => s + (v - e - b * x[t]!) ** 2, 0)
  const b0 = cov / vx
  const e0 = my - b0 * mx
  if (b0 >= 0 && e0 >= 0) return { eps: e0, beta: b0, sse: err(e0, b0) }
  const sxy = x.reduce((s, v, t) => s + v * y[t]!, 0)
  const sxx = x.reduce((s, v) => s + v * v, 0)
  const a = { eps: Math.max(my, 0), beta: 0 }
  const b = { eps: 0, beta: Math.max(sxy / sxx, 0) }
  const ea = err(a.eps, a.beta)
  const eb = err(b.eps, b.beta)
  return eb < ea ? { ...b, sse: eb } : { ...a, sse: ea }
}

function fitRef(n: number[], y: number[], maxExponent = 0.8): { eps: number; beta: number; alpha: number; sse: number } {
  let best = { eps: NaN, beta: NaN, alpha: NaN, sse: Infinity }
  for (let j = 1; j * 0.005 <= maxExponent + 1e-12; j++) {
    const f = nnlsRef(n, y, j * 0.005)
    if (f.sse < best.sse) best = { ...f, alpha: j * 0.005 }
  }
  return best
}

describe('ado', () => {
  it('fits an exact power law back, and a noisy one as the brute-force grid does', () => {
    expect(EXPONENT_STEP).toBe(0.005)
    const n = [3, 7, 12, 20, 31, 45, 60, 88]
    const exact = fitPowerLaw(n, n.map((v) => 1.2 + 2.5 * v ** -0.3), 0.8)
    expectClose(exact.alpha, 0.3, { rel: 1e-9 })
    expectClose(exact.epsilon, 1.2, { rel: 1e-9 })
    expectClose(exact.beta, 2.5, { rel: 1e-9 })
    const r = lcg(3)
    const noisy = n.map((v) => 0.8 + 1.7 * v ** -0.45 + 0.05 * (r() - 0.5))
    const got = fitPowerLaw(n, noisy, 0.8)
    const ref = fitRef(n, noisy)
    expectClose(got.alpha, ref.alpha, { rel: 1e-12 })
    expectClose(got.epsilon, ref.eps, { rel: 1e-9, scale: 1 })
    expectClose(got.beta, ref.beta, { rel: 1e-9, scale: 1 })
    // A rising loss clamps β at 0: no learning potential.
    expect(fitPowerLaw([1, 2, 3, 4], [1, 1.1, 1.2, 1.3], 0.8).beta).toBe(0)
  })

  /** ADO in plain loops over consecutive windows (params as in the test below). */
  function adoRef(ws: StepInput[][], p: { start: number; ignore: number; minPoints: number; prior: number[] }) {
    let h = [...p.prior]
    let avg = [...p.prior]
    let pi = [...p.prior]
    const pts = p.prior.map(() => ({ n: [] as number[], y: [] as number[] }))
    let fits: ({ eps: number; beta: number; alpha: number } | null)[] = p.prior.map(() => null)
    const seen = new Array<number>(K).fill(0)
    let step = 0
    return ws.map((w) => {
      const before = step
      for (const s of w) {
        step++
        const tot = s.samples.reduce((a, b) => a + b, 0)
        for (let d = 0; d < K; d++) seen[d] = seen[d]! + s.samples[d]!
        if (tot > 0) h = h.map((x, d) => 0.9 * x + (0.1 * s.samples[d]!) / tot)
        if (step <= p.ignore) continue
        for (let d = 0; d < K; d++) {
          if (s.samples[d]! > 0 && s.tokens[d]! > 0) pts[d]!.n.push(seen[d]!), pts[d]!.y.push(s.lossSum[d]! / s.tokens[d]!)
        }
      }
      let pref: number[] | undefined
      if (step >= p.start) {
        fits = fits.map((f, d) => (pts[d]!.y.length >= p.minPoints ? fitRef(pts[d]!.n, pts[d]!.y) : f))
        if (fits.every((f) => f !== null)) {
          const raw = fits.map((f, d) => p.prior[d]! * Math.sqrt(h[d]!) * (Math.max(f!.alpha, 0.05) * f!.beta * seen[d]! ** -f!.alpha) / seen[d]!)
          pref = normalized(normalized(raw).map((x) => Math.max(x, 0.01)))
        }
      }
      if (pref !== undefined) {
        const q = pref
        pi = avg.map((a, d) => 0.9 * a + 0.1 * q[d]!)
        avg = avg.map((a, d) => ((before + 1) * a + (step - before) * q[d]!) / (step + 1))
      }
      return { pi: [...pi], h: [...h], fits: fits.map((f) => (f === null ? null : { ...f })), pref }
    })
  }

  // Three domains whose losses fall at different rates; chat is absent from some steps.
  function adoWindows(): StepInput[][] {
    const r = lcg(77)
    const law = [
      [1.0, 2.0, 0.5],
      [0.6, 1.5, 0.2],
      [1.5, 3.0, 0.35],
    ]
    const counts = [0, 0, 0]
    const all: StepInput[] = []
    for (let j = 0; j < 24; j++) {
      const samples = [2 + Math.floor(r() * 3), 1 + Math.floor(r() * 3), j % 3 === 1 ? 0 : 1 + Math.floor(r() * 2)]
      const tokens = samples.map((s) => s * 16)
      const lossSum = samples.map((s, d) => {
        counts[d] = counts[d]! + s
        const [e, b, a] = law[d]!
        return tokens[d]! * (e! + b! * Math.max(counts[d]!, 1) ** -a! + 0.02 * (r() - 0.5))
      })
      all.push({ samples, tokens, lossSum })
    }
    return [all.slice(0, 4), all.slice(4, 8), all.slice(8, 13), all.slice(13, 18), all.slice(18, 24)]
  }

  it('keeps the prior until the fits exist, then π = γ1·π̄ + (1−γ1)·ρ from the fitted loss derivatives, over several updates', async () => {
    const ws = adoWindows()
    const mixer = create(adoMixer, { start_step: 8, ignore_steps: 2, min_fit_points: 4 })
    const prior = normalized(DOMAINS.map((d) => d.size))
    const ref = adoRef(ws, { start: 8, ignore: 2, minPoints: 4, prior })
    const run = new MixRun({ domains: DOMAINS, initial: INITIAL })
    for (let u = 0; u < ws.length; u++) {
      const out = await run.mix(mixer, ws[u]!)
      expectAllClose(out.proportions, ref[u]!.pi, { rel: 1e-9, scale: 1 }, `update ${u + 1}`)
      const s = mixer.state!() as { credit: number[]; fits: ({ epsilon: number; beta: number; alpha: number } | null)[] }
      expectAllClose(s.credit, ref[u]!.h, PROB)
      s.fits.forEach((f, d) => {
        const e = ref[u]!.fits[d]!
        if (e === null) return expect(f).toBeNull()
        expectClose(f!.alpha, e.alpha, { rel: 1e-12 })
        expectClose(f!.epsilon, e.eps, { rel: 1e-9, scale: 1 })
        expectClose(f!.beta, e.beta, { rel: 1e-9, scale: 1 })
      })
    }
    // Update 1 is before start_step; update 2 reaches it with the fits in place, and the policy moves.
    expect(ref[0]!.pref).toBeUndefined()
    expect(ref.slice(1).every((x) => x.pref !== undefined)).toBe(true)
    expect(run.logs[0]).toBe('ado: keeping the current policy at step 4: before start_step 8')
    expect(Math.max(...ref[4]!.pi.map((x, d) => Math.abs(x - prior[d]!)))).toBeGreaterThan(1e-3)
  })

  it('falls back to the current policy while a domain has too few points', async () => {
    const ws = adoWindows()
    const mixer = create(adoMixer, { start_step: 0, ignore_steps: 0, min_fit_points: 10, prior: 'initial' })
    const run = new MixRun({ domains: DOMAINS, initial: INITIAL })
    const out = await run.mix(mixer, ws[0]!)
    expect(Array.from(out.proportions)).toEqual(Array.from(INITIAL))
    expect(run.logs[0]).toContain('not every domain has 10 loss points after step 0 yet')
    expect(() => create(adoMixer, { min_probability: 0.5 })).toThrow('ado: min_probability 0.5 × 3 domains exceeds 1')
  })

  it('state() → restore() continues identically', async () => {
    const ws = adoWindows()
    const make = () => create(adoMixer, { start_step: 8, ignore_steps: 2, min_fit_points: 4 })
    await expectRestoreContinues(make, () => new MixRun({ domains: DOMAINS, initial: INITIAL }), ws.slice(0, 2), ws.slice(2))
  })
})

// ───────────────────────────── registry, presets, params ─────────────────────────────

describe('presets and params', () => {
  it('every shipped mixers preset resolves and creates', async () => {
    const keys = ['static', 'random', 'doremi', 'odm', 'dynamic_moe', 'ado']
    expect(BUILTIN_MIXERS.map((d) => d.name).sort()).toEqual([...keys].sort())
    for (const key of keys) {
      const cfg = fakeConfig(REPO_ROOT, { components_cfg_file: 'configs/components.yaml', component_name: key })
      const r = await resolveComponent(cfg, 'mixer', { cwd: REPO_ROOT })
      expect(r.algorithm).toBe(key)
      const mixer = r.definition.create(r.params, ENV)
      expect(typeof mixer.mix).toBe('function')
    }
    const doremi = await resolveComponent(fakeConfig(REPO_ROOT, { components_cfg_file: 'configs/components.yaml', component_name: 'doremi' }), 'mixer', { cwd: REPO_ROOT })
    expect(doremi.params).toEqual({ reference_model_path: null, reweight_eta: 0.1, reweight_eps: 0.01 })
  })

  it('bad params are refused with the key, the preset and the reason', async () => {
    const dir = tempDir('mixer-params')
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ name: 'odm', params: { alpha: 1.5 } }, 'mixers.m.params.alpha', /bad value for param 'alpha' of mixer 'm' \(algorithm odm\)/],
      [{ name: 'odm', params: { reward_estimator: 'bandit' } }, 'mixers.m.params.reward_estimator', /bad value for param 'reward_estimator'/],
      [{ name: 'dynamic_moe', params: { layers: 'first' } }, 'mixers.m.params.layers', /bad value for param 'layers'/],
      [{ name: 'doremi', params: { reweight_eta: -1 } }, 'mixers.m.params.reweight_eta', /bad value for param 'reweight_eta'/],
      [{ name: 'static', params: { proportions: [0, 0] } }, 'mixers.m.params.proportions', /sum to 0/],
      [{ name: 'ado', params: { min_fit_points: 2 } }, 'mixers.m.params.min_fit_points', /bad value for param 'min_fit_points'/],
    ]
    for (const [preset, key, message] of cases) {
      const err = await configError(resolveComponent(fakeConfig(dir, { components: { mixers: { m: preset } }, component_name: 'm' }), 'mixer', { cwd: dir }))
      expect(err.key).toBe(key)
      expect(err.message).toMatch(message)
    }
    const missing = await configError(
      resolveComponent(fakeConfig(dir, { components: { mixers: { m: { name: 'doremi', params: { reference_model_path: 'no/such/model' } } } }, component_name: 'm' }), 'mixer', { cwd: dir }),
    )
    expect(missing.key).toBe('mixers.m.params.reference_model_path')
  })
})
