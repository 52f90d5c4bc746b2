/**
 * Drawing a mix window's samples from domain proportions (docs/algorithms.md#drawing-by-proportions): the
 * per-domain counts by largest remainder, then each domain's rows from its own seeded stream, visited without
 * replacement (a fresh permutation each time a domain's rows are used up), and the window shuffled as one.
 *
 * The Python DataFlex gives the last domain the remainder of ⌊n·p_i⌋ and draws every row with replacement; the
 * counts here are the closest integers to n·p that sum to n, and a row repeats only after its whole domain was seen.
 */
import type { MixtureSampleRule } from '../config/index.ts'
import { Rng } from '../math/rng.ts'

/** `p` normalised to sum to 1; null when it has a negative or non-finite entry or sums to 0. */
export function normalized(p: ArrayLike<number>): Float64Array | null {
  let sum = 0
  for (let i = 0; i < p.length; i++) {
    const v = p[i]!
    if (!Number.isFinite(v) || v < 0) return null
    sum += v
  }
  if (!(sum > 0)) return null
  return Float64Array.from(p, (v) => v / sum)
}

/** The proportions a window is drawn with, by `mixture_sample_rule`: the mixer's, the domains' sizes, or uniform. */
export function ruleProportions(rule: MixtureSampleRule, mixed: Float64Array, sizes: readonly number[]): Float64Array {
  if (rule === 'mixture') return mixed
  if (rule === 'uniform') return new Float64Array(sizes.length).fill(1 / sizes.length)
  return normalized(sizes)!
}

/**
 * Integer counts summing to n, closest to n·p: ⌊n·p_i⌋ each, then one more to the largest remainders (ties: the lower
 * domain). Domains with p_i = 0 get 0.
 */
export function apportion(n: number, p: Float64Array): Int32Array {
  const counts = new Int32Array(p.length)
  const rest: { i: number; r: number }[] = []
  let given = 0
  for (let i = 0; i < p.length; i++) {
    const exact = n * p[i]!
    counts[i] = Math.floor(exact)
    given += counts[i]!
    if (p[i]! > 0) rest.push({ i, r: exact - counts[i]! })
  }
  rest.sort((a, b) => b.r - a.r || a.i - b.i)
  for (let k = 0; given < n; k++, given++) counts[rest[k % rest.length]!.i]! += 1
  return counts
}

/** Where each domain's stream stands: the round (permutation number) and the position in it. */
export interface StreamState {
  round: number
  cursor: number
}

/** Per-domain seeded streams over each domain's drawable rows (global training indices). */
export class DomainStreams {
  private readonly perms: Int32Array[]
  private readonly at: StreamState[]

  constructor(
    private readonly rows: readonly Int32Array[],
    private readonly seed: number,
  ) {
    this.at = rows.map(() => ({ round: 0, cursor: 0 }))
    this.perms = rows.map((r, d) => this.permutation(d, 0, r.length))
  }

  private permutation(domain: number, round: number, n: number): Int32Array {
    return Rng.derive(this.seed, 'mix-rows', domain, round).permutation(n)
  }

  /** `counts[d]` rows of each domain, domain by domain (the caller shuffles the window). */
  draw(counts: Int32Array): Int32Array {
    const out = new Int32Array(counts.reduce((a, b) => a + b, 0))
    let k = 0
    counts.forEach((want, d) => {
      const rows = this.rows[d]!
      if (want > 0 && rows.length === 0) throw new Error(`domain ${d} has no rows to draw ${want} from`)
      const at = this.at[d]!
      for (let j = 0; j < want; j++) {
        if (at.cursor === rows.length) {
          at.round++
          at.cursor = 0
          this.perms[d] = this.permutation(d, at.round, rows.length)
        }
        out[k++] = rows[this.perms[d]![at.cursor++]!]!
      }
    })
    return out
  }

  state(): StreamState[] {
    return this.at.map((s) => ({ ...s }))
  }

  /** Back to where `state()` was: each domain's round (its permutation, made again from the seed) and cursor. */
  restore(state: readonly StreamState[]): void {
    if (state.length !== this.rows.length) throw new Error(`stream state for ${state.length} domains, the run has ${this.rows.length}`)
    state.forEach((s, d) => {
      this.at[d] = { ...s }
      this.perms[d] = this.permutation(d, s.round, this.rows[d]!.length)
    })
  }
}
