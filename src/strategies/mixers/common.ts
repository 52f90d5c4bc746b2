/** Pieces shared by the built-in mixers: a typed error, proportion params and checks, state and output-file helpers. */
import { ComponentError } from '../component-error.ts'
import { z } from 'zod'

export type MixerErrorCode = 'bad_params' | 'bad_model_output' | 'no_held_out' | 'bad_state'

/** A mixing decision that cannot be made, or params that only the run's domains can judge (their count). */
export class MixerError extends ComponentError<MixerErrorCode> {
  override readonly name = 'MixerError'
}

/** A proportions param: one non-negative weight per domain, not all zero, or null for the run's initial ones. */
export const proportionsParam = z
  .array(z.number().nonnegative().finite())
  .min(1)
  .refine((p) => p.reduce((a, b) => a + b, 0) > 0, { message: 'the proportions sum to 0; give at least one positive weight' })
  .nullable()
  .default(null)

/** `values` normalised to sum to 1 (the caller guarantees a positive finite sum). */
export function normalize(values: ArrayLike<number>): Float64Array {
  let sum = 0
  for (let i = 0; i < values.length; i++) sum += values[i]!
  return Float64Array.from(values as ArrayLike<number>, (v) => v / sum)
}

/** A proportions param checked against the run's domains and normalised; null → the run's initial proportions. */
export function domainProportions(mixer: string, param: string, values: readonly number[] | null, initial: Float64Array): Float64Array {
  if (values === null) return Float64Array.from(initial)
  if (values.length !== initial.length) {
    throw new MixerError(mixer, 'bad_params', `'${param}' has ${values.length} values but the run has ${initial.length} domains (one per dataset, in dataset order)`)
  }
  return normalize(values)
}

/** The local time as the Python DataFlex stamps its jsonl lines (`time.strftime("%Y-%m-%d %H:%M:%S")`). */
export function timestamp(now = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0')
  return `${now.getFullYear()}-${p(now.getMonth() + 1)}-${p(now.getDate())} ${p(now.getHours())}:${p(now.getMinutes())}:${p(now.getSeconds())}`
}

/** Python's repr of a float (shortest round-trip digits, `1.0`, `1e-05`), for files Python scripts read back. */
export function pyFloat(x: number): string {
  if (Number.isNaN(x)) return 'nan'
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf'
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0'
  const exp = Math.floor(Math.log10(Math.abs(x)))
  // Python switches to exponent form below 1e-4 and from 1e16; JavaScript at other bounds.
  if (exp < -4 || exp >= 16) {
    const [mantissa, e] = x.toExponential().split('e') as [string, string]
    const n = Number(e)
    return `${mantissa}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`
  }
  const s = String(x)
  return s.includes('.') || s.includes('e') ? s : `${s}.0`
}

/** A per-domain object keyed by domain name (the layout of DataFlex's dynamic_moe log). */
export function byName(names: readonly string[], values: ArrayLike<number>): Record<string, number> {
  return Object.fromEntries(names.map((n, i) => [n, values[i]!]))
}

/** A state value that must be a list of `length` numbers (`what` names it in the error). */
export function vectorOf(mixer: string, v: unknown, what: string, length: number): Float64Array {
  if (!Array.isArray(v) || v.length !== length || !v.every((x) => typeof x === 'number')) {
    throw new MixerError(mixer, 'bad_state', `${what} must be a list of ${length} numbers`)
  }
  return Float64Array.from(v as number[])
}

/** A state field that must be a list of `length` numbers. */
export function stateVector(mixer: string, state: Record<string, unknown>, key: string, length: number): Float64Array {
  return vectorOf(mixer, state[key], `state.${key}`, length)
}

/** A state field that must be a list of lists of `length` numbers. */
export function stateVectors(mixer: string, state: Record<string, unknown>, key: string, length: number): Float64Array[] {
  const v = state[key]
  if (!Array.isArray(v)) throw new MixerError(mixer, 'bad_state', `state.${key} must be a list`)
  return v.map((x, j) => vectorOf(mixer, x, `state.${key}[${j}]`, length))
}

/** The state object a restore() receives, checked to be an object. */
export function stateObject(mixer: string, state: unknown): Record<string, unknown> {
  if (typeof state !== 'object' || state === null || Array.isArray(state)) throw new MixerError(mixer, 'bad_state', 'state must be an object')
  return state as Record<string, unknown>
}

/** A state field that must be a non-negative integer. */
export function stateCount(mixer: string, state: Record<string, unknown>, key: string): number {
  const v = state[key]
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new MixerError(mixer, 'bad_state', `state.${key} must be a non-negative integer`)
  return v
}
