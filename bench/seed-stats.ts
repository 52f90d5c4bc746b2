/** Summaries over seeds for the quality studies (mix-quality.ts, weight-quality.ts): mean ± sample sd. */
export const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
export const sd = (xs: number[]): number => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)) * (xs.length / Math.max(1, xs.length - 1)))
export const meanSd = (xs: number[]): string => `${mean(xs).toFixed(4)} ± ${sd(xs).toFixed(4)}`

/** Held-out loss per eval set, from the eval_results.json of a run with `eval_on_each_dataset`. */
export function heldOutLosses(results: Record<string, number>, evalSets: readonly string[], where: string): number[] {
  return evalSets.map((name) => {
    const v = results[`eval_${name}_loss`]
    if (v === undefined) throw new Error(`${where} has no eval_${name}_loss`)
    return v
  })
}
