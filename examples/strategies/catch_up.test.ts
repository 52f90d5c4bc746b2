/**
 * Unit tests of the catch_up mixer against a fake model: fixed held-out losses per domain, no sidecar. The expected
 * proportions are worked out here from p_d = (1 − floor) · p0_d e^{L_d/T} / Σ_j p0_j e^{L_j/T} + floor / k.
 */
import { fakeModelOps, Rng, type HeldOut, type MixContext, type ModelOps } from 'dataflex-ts'
import { describe, expect, it } from 'vitest'
import catchUp from './catch_up.ts'

const domains = [
  { name: 'arith', size: 40 },
  { name: 'facts', size: 40 },
  { name: 'strings', size: 40 },
]
const initial = Float64Array.of(0.5, 0.25, 0.25)

function context(model: ModelOps, heldOut: HeldOut[]): MixContext {
  const zeros = (): Float64Array => new Float64Array(domains.length)
  return {
    step: 10,
    update: 1,
    updateTimes: 3,
    domains,
    current: initial,
    steps: [],
    window: { lossSum: zeros(), tokens: zeros(), samples: zeros() },
    seen: zeros(),
    domainLosses: zeros(),
    heldOut,
    rng: Rng.derive(42, 'mix', 10),
    model,
    cacheDir: '/unused',
    log: () => {},
  }
}

describe('catch_up', () => {
  // Held-out rows: two training rows of each of the first two domains, and a domain eval set for the third.
  const heldOut: HeldOut[] = [
    { split: 'train', indices: Int32Array.of(0, 1) },
    { split: 'train', indices: Int32Array.of(40, 41) },
    { split: 'eval:strings_eval', indices: Int32Array.of(0, 1) },
  ]
  // A row's loss: its domain's base (1, 2, 3) plus 0.5 on odd rows, so each held-out mean is base + 0.25.
  const losses = (split: string, index: number): number => (split === 'train' ? 1 + Math.floor(index / 40) : 3) + (index % 2) * 0.5
  const meanLoss = [1.25, 2.25, 3.25]

  it('tilts the initial proportions toward the domains with the highest held-out loss', async () => {
    const model = fakeModelOps({ numTrain: 120, losses })
    const params = catchUp.params.parse({ temperature: 0.5, floor: 0.1 })
    const mixer = catchUp.create(params, { domains, initial, seed: 42, baseDir: '/unused' })
    expect(mixer.heldOut).toBe(8)

    const out = await mixer.mix(context(model, heldOut))
    let total = 0
    const tilt = meanLoss.map((l, d) => initial[d]! * Math.exp(l / 0.5))
    for (const w of tilt) total += w
    const expected = tilt.map((w) => 0.9 * (w / total) + 0.1 / 3)
    expected.forEach((p, d) => expect(out.proportions[d]).toBeCloseTo(p, 12))
    expect(out.info).toEqual({ held_out_loss: meanLoss })
    // Exactly the held-out rows were scored, each set on its own split.
    expect(model.calls.map((c) => [c.split, c.indices])).toEqual(heldOut.map((h) => [h.split, Array.from(h.indices)]))
  })

  it('floor 1 is the uniform mixture whatever the losses', async () => {
    const mixer = catchUp.create(catchUp.params.parse({ floor: 1 }), { domains, initial, seed: 42, baseDir: '/unused' })
    const out = await mixer.mix(context(fakeModelOps({ numTrain: 120, losses }), heldOut))
    for (const p of out.proportions) expect(p).toBeCloseTo(1 / 3, 12)
  })
})
