/**
 * Drives a mixer as the trainer would, from fixed per-step per-domain statistics: numbers the steps, sums each
 * window, keeps the cumulative sample counts and the proportions last drawn with, and builds the MixContext.
 */
import { Rng } from '../src/math/rng.ts'
import type { Domain, DomainStats, HeldOut, MixContext, MixerInstance, MixResult, StepStats } from '../src/strategies/mixer.ts'
import type { ModelOps } from '../src/strategies/types.ts'

/** One step's per-domain sums, as plain lists. */
export interface StepInput {
  readonly samples: number[]
  readonly tokens: number[]
  readonly lossSum: number[]
  readonly excessSum?: number[]
}

export interface MixRunOptions {
  readonly domains: readonly Domain[]
  readonly initial: Float64Array
  readonly seed?: number
  readonly model?: ModelOps
  readonly heldOut?: readonly HeldOut[]
}

/** A model with no ops: mixers that need none must not call any. */
export const NO_MODEL: ModelOps = {
  numTrain: 0,
  numEval: 0,
  losses: () => Promise.reject(new Error('losses: not expected')),
  gradients: () => Promise.reject(new Error('gradients: not expected')),
  embeddings: () => Promise.reject(new Error('embeddings: not expected')),
  routerLoads: () => Promise.reject(new Error('routerLoads: not expected')),
}

function sum(steps: readonly StepStats[], k: number, key: 'samples' | 'tokens' | 'lossSum' | 'excessSum'): Float64Array {
  const out = new Float64Array(k)
  for (const s of steps) for (let d = 0; d < k; d++) out[d] = out[d]! + s[key]![d]!
  return out
}

/** The trainer's side of the mixer contract, for tests. */
export class MixRun {
  step = 0
  update = 0
  current: Float64Array
  readonly seen: Float64Array
  readonly logs: string[] = []

  constructor(readonly opts: MixRunOptions) {
    this.current = Float64Array.from(opts.initial)
    this.seen = new Float64Array(opts.domains.length)
  }

  /** The decision stream of a step (a fresh one per call, so two instances can be given equal contexts). */
  rngFor(step: number): Rng {
    return Rng.derive(this.opts.seed ?? 7, 'mix', step)
  }

  /** The context after `inputs` more steps (the run's state advances: step, seen). */
  context(inputs: readonly StepInput[]): MixContext {
    const k = this.opts.domains.length
    const steps: StepStats[] = inputs.map((s) => ({
      step: ++this.step,
      samples: Float64Array.from(s.samples),
      tokens: Float64Array.from(s.tokens),
      lossSum: Float64Array.from(s.lossSum),
      ...(s.excessSum === undefined ? {} : { excessSum: Float64Array.from(s.excessSum) }),
    }))
    for (const s of steps) for (let d = 0; d < k; d++) this.seen[d] = this.seen[d]! + s.samples[d]!
    const window: DomainStats = {
      samples: sum(steps, k, 'samples'),
      tokens: sum(steps, k, 'tokens'),
      lossSum: sum(steps, k, 'lossSum'),
      ...(inputs.every((s) => s.excessSum !== undefined) && inputs.length > 0 ? { excessSum: sum(steps, k, 'excessSum') } : {}),
    }
    return {
      rng: this.rngFor(this.step),
      model: this.opts.model ?? NO_MODEL,
      cacheDir: '/nonexistent',
      log: (m) => this.logs.push(m),
      step: this.step,
      update: ++this.update,
      updateTimes: -1,
      domains: this.opts.domains,
      current: Float64Array.from(this.current),
      steps,
      window,
      seen: Float64Array.from(this.seen),
      domainLosses: Float64Array.from(window.lossSum, (l, d) => (window.tokens[d]! > 0 ? l / window.tokens[d]! : NaN)),
      heldOut: this.opts.heldOut ?? [],
    }
  }

  /** One update: the window's steps, then the mixer's decision; the next window is drawn with its proportions. */
  async mix(mixer: MixerInstance, inputs: readonly StepInput[]): Promise<MixResult> {
    const out = await mixer.mix(this.context(inputs))
    let total = 0
    for (const p of out.proportions) total += p
    this.current = Float64Array.from(out.proportions, (p) => p / total)
    return out
  }
}
