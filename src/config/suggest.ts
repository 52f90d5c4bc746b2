/**
 * Optimal-string-alignment distance: Levenshtein plus adjacent transpositions, so the common typo
 * `update_stpe` is one edit from `update_step`.
 */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0
  const n = a.length
  const m = b.length
  if (n === 0) return m
  if (m === 0) return n
  // Three rolling rows: the transposition rule looks two rows back.
  let prev2 = new Int32Array(m + 1)
  let prev = new Int32Array(m + 1)
  let cur = new Int32Array(m + 1)
  for (let j = 0; j <= m; j++) prev[j] = j
  for (let i = 1; i <= n; i++) {
    cur[0] = i
    for (let j = 1; j <= m; j++) {
      const cost = a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1
      let d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, prev2[j - 2]! + 1)
      }
      cur[j] = d
    }
    const t = prev2
    prev2 = prev
    prev = cur
    cur = t
  }
  return prev[m]!
}

/**
 * The closest candidate, or undefined when nothing is close enough to be a plausible typo
 * (at most a third of the input's length, and never more than 3 edits).
 */
export function closest(input: string, candidates: Iterable<string>): string | undefined {
  const needle = input.toLowerCase()
  const limit = Math.min(3, Math.max(1, Math.floor(needle.length / 3)))
  let best: string | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const candidate of candidates) {
    const d = editDistance(needle, candidate.toLowerCase())
    if (d < bestDistance || (d === bestDistance && best !== undefined && candidate < best)) {
      best = candidate
      bestDistance = d
    }
  }
  return best !== undefined && bestDistance <= limit ? best : undefined
}

export function didYouMean(input: string, candidates: Iterable<string>): string | undefined {
  const match = closest(input, candidates)
  return match === undefined ? undefined : `did you mean '${match}'?`
}
