/**
 * Seeded, portable RNG (xoshiro128** seeded through splitmix32). Same seed → same stream on every platform, so
 * every decision is reproducible from the run seed and the step it follows.
 */
export class Rng {
  private s0: number
  private s1: number
  private s2: number
  private s3: number

  constructor(seed: number) {
    let x = seed >>> 0
    const next = (): number => {
      // splitmix32
      x = (x + 0x9e3779b9) >>> 0
      let z = x
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
      return (z ^ (z >>> 16)) >>> 0
    }
    this.s0 = next()
    this.s1 = next()
    this.s2 = next()
    this.s3 = next()
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1
  }

  /** An independent stream for (seed, key...): e.g. Rng.derive(runSeed, 'select', step). */
  static derive(seed: number, ...keys: (string | number)[]): Rng {
    let h = (seed >>> 0) ^ 0x811c9dc5
    for (const k of keys) {
      const s = String(k)
      for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0
      h = Math.imul(h ^ 0x2f, 0x01000193) >>> 0 // separator, so ('ab','c') ≠ ('a','bc')
    }
    return new Rng(h)
  }

  /** Uniform uint32. */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0
    const t = (this.s1 << 9) >>> 0
    this.s2 ^= this.s0
    this.s3 ^= this.s1
    this.s1 ^= this.s2
    this.s0 ^= this.s3
    this.s2 ^= t
    this.s3 = rotl(this.s3, 11)
    this.s0 >>>= 0
    this.s1 >>>= 0
    this.s2 >>>= 0
    this.s3 >>>= 0
    return result
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  float(): number {
    const a = this.u32() >>> 5
    const b = this.u32() >>> 6
    return (a * 67108864 + b) / 9007199254740992
  }

  /** Uniform integer in [0, n), unbiased. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) throw new RangeError(`int(n): n must be in [1, 2^32], got ${n}`)
    const limit = 0x100000000 - (0x100000000 % n)
    for (;;) {
      const r = this.u32()
      if (r < limit) return r % n
    }
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    let u = 0
    while (u === 0) u = this.float()
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.float())
  }

  /** A uniformly random permutation of 0..n-1 (Fisher–Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n)
    for (let i = 0; i < n; i++) p[i] = i
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1)
      const t = p[i]!
      p[i] = p[j]!
      p[j] = t
    }
    return p
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0
}
