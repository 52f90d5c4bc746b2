/**
 * Float comparisons whose tolerance scales with the values: |actual − expected| ≤ rel · max(|actual|, |expected|,
 * scale). Rounding error grows with the magnitude of what is summed, and a BLAS kernel (Intel vs AMD) may sum in
 * another order, so a fixed number of digits is too strict for large values and too loose for small ones.
 *
 * Tolerances used in this suite:
 * - float32 through the model in the sidecar, other batch shapes or reductions: rel 1e-5 (~100 float32 ulps);
 * - float32 values rounded once on the way: rel 1e-6;
 * - float64 arithmetic against a reference formula (another summation order): rel 1e-12.
 * Checks of a computation against itself (decision hashes, the parity test's bytes) stay exact.
 */
import { expect } from 'vitest'

export interface Tolerance {
  /** Relative tolerance. */
  readonly rel: number
  /**
   * The magnitude the error scales with when the values themselves can be smaller: 1 for probabilities (the total
   * mass) and cosines, or the size of the terms of a sum that may cancel to near zero. Default 0.
   */
  readonly scale?: number
}

export function expectClose(actual: number | undefined, expected: number, tol: Tolerance, what = 'value'): void {
  const a = actual ?? NaN
  const bound = tol.rel * Math.max(Math.abs(a), Math.abs(expected), tol.scale ?? 0)
  expect(Math.abs(a - expected), `${what}: ${a} vs ${expected} (rel ${tol.rel})`).toBeLessThanOrEqual(bound)
}

/** Element-wise expectClose over two equally long arrays. */
export function expectAllClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, what = 'value'): void {
  expect(actual.length, `${what}: length`).toBe(expected.length)
  for (let i = 0; i < expected.length; i++) expectClose(actual[i], expected[i]!, tol, `${what}[${i}]`)
}
