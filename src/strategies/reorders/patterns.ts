/**
 * The seven ordering patterns of `train_type: dynamic_reorder` (docs/algorithms.md#reordering-patterns): pure
 * functions from a list of positions and a score per position to the same positions in training order, after the
 * Data Efficacy paper (Dai et al. 2025), microsoft/data-efficacy's `data_ordering/` and the Python DataFlex's
 * `train/reorder/patterns.py`.
 *
 * Everything here is a function of its inputs: `sorting`, `folding`, `zigzag`, `stair` and `saw` (with
 * `window_size` ≤ 1) give DataFlex's orders exactly. `shuffle`, `segment` and the window shuffle draw from our own
 * seeded streams (Rng.derive(seed, …)), so they are deterministic per seed but not Python's draws bit for bit.
 *
 * Deliberate differences from the Python DataFlex:
 * - Equal scores keep their input order in both directions (data-efficacy's rule); DataFlex reverses them when
 *   descending. NaN scores go to the end of the stream in both directions.
 * - Params are checked up front: unknown pattern params, non-integer L or S, and percentages outside [0, 100] are
 *   errors (DataFlex checks no key and truncates with int()), as are overlapping stair/saw windows even for
 *   an empty list.
 */
import { z } from 'zod'
import { didYouMean } from '../../config/suggest.ts'
import { Rng } from '../../math/rng.ts'
import { argsortAsc, argsortDesc } from '../../math/topk.ts'
import type { Scores } from '../types.ts'
import { ReorderError } from './common.ts'

export const PATTERN_NAMES = ['shuffle', 'sorting', 'folding', 'zigzag', 'segment', 'stair', 'saw'] as const
export type PatternName = (typeof PATTERN_NAMES)[number]

export function isPatternName(name: string): name is PatternName {
  return (PATTERN_NAMES as readonly string[]).includes(name)
}

// ───────────────────────────── direction ─────────────────────────────

/** DataFlex's polarity names and their older spellings. */
const POLARITY_ALIASES = {
  higher_later: 'higher_later',
  higher_earlier: 'higher_earlier',
  higher_is_better: 'higher_later',
  lower_is_better: 'higher_earlier',
} as const
type PolarityName = keyof typeof POLARITY_ALIASES
export type Polarity = (typeof POLARITY_ALIASES)[PolarityName]
const POLARITY_NAMES = Object.keys(POLARITY_ALIASES) as [PolarityName, ...PolarityName[]]

/** The reorder-level keys every pattern shares (DataFlex's top-level reorder params, next to `pattern_params`). */
export const OrderingParams = z.strictObject({
  polarity: z
    .enum(POLARITY_NAMES)
    .transform((p) => POLARITY_ALIASES[p])
    // prefault: the default is an input, run through the aliases, and listed by `dataflex components`.
    .prefault('higher_later')
    .describe('higher_later (alias higher_is_better): high scores late in the stream; higher_earlier (alias lower_is_better): high scores early'),
  ascending: z.boolean().default(true).describe('false reverses the direction the polarity gives'),
  window_size: z
    .int()
    .min(0)
    .default(0)
    .describe('JIT: shuffle the ordered stream within consecutive windows of this many positions; 0 or 1: off'),
  seed: z.int().default(42).describe('seed of the shuffle and segment patterns and of the window shuffle'),
})
export type OrderingParams = z.output<typeof OrderingParams>

/** True when the stream starts with the lowest raw scores. */
export function effectiveAscending(polarity: Polarity, ascending: boolean): boolean {
  return ascending !== (polarity === 'higher_earlier')
}

// ───────────────────────────── pattern params ─────────────────────────────

const layerCount = z.int().min(1)

/** L under its DataFlex name and data-efficacy's two spellings. */
function layerFields(fallback: number) {
  return {
    layers: layerCount.nullish().describe(`L: cycles of the fold (default ${fallback}); wins over the two aliases`),
    folding_layer: layerCount.nullish().describe("alias of layers (data-efficacy's name for folding, stair and saw)"),
    zigzag_layer: layerCount.nullish().describe("alias of layers (data-efficacy's name for zigzag)"),
  }
}

interface LayerKeys {
  layers?: number | null | undefined
  folding_layer?: number | null | undefined
  zigzag_layer?: number | null | undefined
}

/** The first of layers, folding_layer, zigzag_layer that is set (DataFlex's order), else the pattern's default. */
function resolveLayers(fallback: number) {
  return <T extends LayerKeys>({ layers, folding_layer, zigzag_layer, ...rest }: T) => ({
    ...rest,
    layers: layers ?? folding_layer ?? zigzag_layer ?? fallback,
  })
}

const NoParams = z.strictObject({})

const FoldParams = z.strictObject(layerFields(5)).transform(resolveLayers(5))

const percent = z.number().min(0).max(100)

const SegmentParams = z.strictObject({
  x_pct: percent.default(10).describe('front segment: ⌊n·x_pct/100⌋ positions'),
  y_pct: percent.default(10).describe('back segment: ⌊n·y_pct/100⌋ positions (both scaled down to fill n when they exceed it)'),
  front_is_high: z.boolean().default(false).describe('the front segment comes from the end of the sorted stream (true) or its start (false)'),
  back_is_high: z.boolean().default(true).describe('the back segment comes from the end of the sorted stream (true) or its start (false)'),
})

/** Transition windows overlap once their width 2ρ reaches the section length 1/S. */
function windowsOverlap(sections: number, ratio: number): boolean {
  return sections > 1 && ratio > 0 && 2 * ratio >= 1 / sections
}

const CrossParams = z
  .strictObject({
    num_sections: z.int().min(1).default(2).describe('S: the sorted stream is cut at S − 1 evenly spaced points, each inside a transition window'),
    folding_ratio: z
      .number()
      .min(0)
      .default(0)
      .describe('ρ: each window reaches round(n·ρ) positions to either side of its cut; 0: no windows (plain sorting); 2ρ < 1/S'),
    ...layerFields(2),
  })
  .superRefine((p, ctx) => {
    if (windowsOverlap(p.num_sections, p.folding_ratio)) {
      ctx.addIssue({
        code: 'custom',
        path: ['folding_ratio'],
        message: `the transition windows overlap: 2·folding_ratio = ${2 * p.folding_ratio} must be below 1/num_sections = ${1 / p.num_sections}`,
      })
    }
  })
  .transform(resolveLayers(2))

/** Each pattern's own params (a reorder's `pattern_params`), with DataFlex's defaults. */
export const PATTERN_PARAMS = {
  shuffle: NoParams,
  sorting: NoParams,
  folding: FoldParams,
  zigzag: FoldParams,
  segment: SegmentParams,
  stair: CrossParams,
  saw: CrossParams,
} as const satisfies Record<PatternName, z.ZodType>

/** The effective direction: true starts the stream with the lowest raw scores (see effectiveAscending). */
export interface Direction {
  readonly ascending: boolean
}
export interface Seeded {
  readonly seed: number
}
export type FoldArgs = Direction & z.output<typeof FoldParams>
export type SegmentArgs = Direction & Seeded & z.output<typeof SegmentParams>
export type CrossArgs = Direction & z.output<typeof CrossParams>

// ───────────────────────────── helpers ─────────────────────────────

// One stream per kind of draw, so the window shuffle never replays the draws of the pattern before it.
const SHUFFLE_STREAM = ['reorder', 'shuffle'] as const
const SEGMENT_STREAM = ['reorder', 'segment'] as const
const WINDOW_STREAM = ['reorder', 'window_shuffle'] as const

function checkLength(pattern: string, positions: Int32Array, scores: Scores): void {
  if (scores.length !== positions.length) {
    throw new ReorderError(pattern, 'bad_input', `${scores.length} scores for ${positions.length} positions; give one score per position`)
  }
}

/** Positions by score along the effective direction; equal scores keep their input order, NaN goes last. */
function sortedPositions(pattern: PatternName, positions: Int32Array, scores: Scores | undefined, ascending: boolean): Int32Array {
  if (scores === undefined) {
    const why = 'this pattern orders by score and needs one score per position; got none (only shuffle runs without scores)'
    throw new ReorderError(pattern, 'bad_input', why)
  }
  checkLength(pattern, positions, scores)
  const idx = ascending ? argsortAsc(scores) : argsortDesc(scores)
  const out = new Int32Array(idx.length)
  for (let i = 0; i < idx.length; i++) out[i] = positions[idx[i]!]!
  return out
}

/** A uniformly shuffled copy. */
function shuffled(values: Int32Array, rng: Rng): Int32Array {
  const perm = rng.permutation(values.length)
  const out = new Int32Array(values.length)
  for (let i = 0; i < values.length; i++) out[i] = values[perm[i]!]!
  return out
}

/** Python's `a // 100` for a ≥ 0: exact, where Math.floor(a / 100) can round up at a multiple of 100. */
function floorDiv100(a: number): number {
  return (a - (a % 100)) / 100
}

/** Python's round(): halves go to the even neighbour (round(4.5) = 4). */
function roundHalfEven(x: number): number {
  const f = Math.floor(x)
  const d = x - f
  if (d !== 0.5) return d < 0.5 ? f : f + 1
  return f % 2 === 0 ? f : f + 1
}

/**
 * The L cycles of a fold: cycle ℓ is sorted[ℓ], sorted[ℓ + L], sorted[ℓ + 2L], …; with `zig`, every odd cycle
 * runs backwards.
 */
function foldCycles(sorted: Int32Array, layers: number, zig: boolean): Int32Array {
  const n = sorted.length
  const out = new Int32Array(n)
  let k = 0
  for (let l = 0; l < Math.min(layers, n); l++) {
    if (zig && l % 2 === 1) {
      for (let i = l + Math.floor((n - 1 - l) / layers) * layers; i >= l; i -= layers) out[k++] = sorted[i]!
    } else {
      for (let i = l; i < n; i += layers) out[k++] = sorted[i]!
    }
  }
  return out
}

/** Sorting with a fold (FO for stair, ZIG for saw) in a window around each of the S − 1 section cuts. */
function crossGuidance(pattern: 'stair' | 'saw', positions: Int32Array, scores: Scores | undefined, params: CrossArgs): Int32Array {
  const sorted = sortedPositions(pattern, positions, scores, params.ascending)
  const n = sorted.length
  const { num_sections: sections, folding_ratio: ratio, layers } = params
  if (n === 0 || sections === 1 || ratio === 0) return sorted
  const radius = roundHalfEven(n * ratio)
  const out = new Int32Array(n)
  let k = 0
  let cursor = 0
  for (let j = 1; j < sections; j++) {
    const cut = roundHalfEven((n * j) / sections)
    // Rounding can bring neighbouring windows together on short lists: a window never reaches back past the last.
    const start = Math.max(cursor, cut - radius)
    const end = Math.min(n, cut + radius)
    out.set(sorted.subarray(cursor, start), k)
    k += start - cursor
    out.set(foldCycles(sorted.subarray(start, end), layers, pattern === 'saw'), k)
    k += end - start
    cursor = end
  }
  out.set(sorted.subarray(cursor), k)
  return out
}

// ───────────────────────────── the patterns ─────────────────────────────

/** A uniformly random order; scores are ignored. */
export function shuffle(positions: Int32Array, _scores: Scores | undefined, params: Seeded): Int32Array {
  return shuffled(positions, Rng.derive(params.seed, ...SHUFFLE_STREAM))
}

/** CL: sorted by score along the direction. */
export function sorting(positions: Int32Array, scores: Scores | undefined, params: Direction): Int32Array {
  return sortedPositions('sorting', positions, scores, params.ascending)
}

/** FO: the sorted stream dealt into L cycles, each sweeping the whole score range in the same direction. */
export function folding(positions: Int32Array, scores: Scores | undefined, params: FoldArgs): Int32Array {
  return foldCycles(sortedPositions('folding', positions, scores, params.ascending), params.layers, false)
}

/** ZIG: folding's cycles with every second one (ℓ = 1, 3, …) reversed, so consecutive cycles meet end to end. */
export function zigzag(positions: Int32Array, scores: Scores | undefined, params: FoldArgs): Int32Array {
  return foldCycles(sortedPositions('zigzag', positions, scores, params.ascending), params.layers, true)
}

/**
 * SEG: a front and a back segment taken from the ends of the sorted stream, the rest in between; each segment
 * shuffled, so only which positions sit at the two boundaries follows the score.
 */
export function segment(positions: Int32Array, scores: Scores | undefined, params: SegmentArgs): Int32Array {
  const sorted = sortedPositions('segment', positions, scores, params.ascending)
  const n = sorted.length
  let front = floorDiv100(n * params.x_pct)
  let back = floorDiv100(n * params.y_pct)
  if (front + back > n) {
    front = Math.trunc(front * (n / (front + back)))
    back = n - front
  }
  const rng = Rng.derive(params.seed, ...SEGMENT_STREAM)
  let f: Int32Array
  let m: Int32Array
  let b: Int32Array
  if (params.front_is_high === params.back_is_high) {
    // Both from the same end: take front + back there and split them at random.
    const k = front + back
    const taken = shuffled(params.front_is_high ? sorted.subarray(n - k) : sorted.subarray(0, k), rng)
    f = taken.subarray(0, front)
    b = taken.subarray(front)
    m = params.front_is_high ? sorted.subarray(0, n - k) : sorted.subarray(k)
  } else if (params.front_is_high) {
    f = sorted.subarray(n - front)
    b = sorted.subarray(0, back)
    m = sorted.subarray(back, n - front)
  } else {
    f = sorted.subarray(0, front)
    b = sorted.subarray(n - back)
    m = sorted.subarray(front, n - back)
  }
  const out = new Int32Array(n)
  out.set(shuffled(f, rng), 0)
  out.set(shuffled(m, rng), f.length)
  out.set(shuffled(b, rng), f.length + m.length)
  return out
}

/** STR: sorting, with FO inside a window around each section cut. */
export function stair(positions: Int32Array, scores: Scores | undefined, params: CrossArgs): Int32Array {
  return crossGuidance('stair', positions, scores, params)
}

/** SAW: sorting, with ZIG inside a window around each section cut. */
export function saw(positions: Int32Array, scores: Scores | undefined, params: CrossArgs): Int32Array {
  return crossGuidance('saw', positions, scores, params)
}

// ───────────────────────────── JIT and the pipeline ─────────────────────────────

/**
 * JIT: a copy with each consecutive window [0, w), [w, 2w), … (the last one possibly shorter) shuffled on its own,
 * from one stream in window order. w ≤ 1 leaves the order as it is.
 */
export function windowShuffle(positions: Int32Array, windowSize: number, seed: number): Int32Array {
  const out = positions.slice()
  if (windowSize <= 1) return out
  const rng = Rng.derive(seed, ...WINDOW_STREAM)
  for (let start = 0; start < out.length; start += windowSize) {
    out.set(shuffled(out.subarray(start, Math.min(start + windowSize, out.length)), rng), start)
  }
  return out
}

/** Throws unless `output` holds exactly the entries of `input`, each as often (positions may repeat). */
export function assertPermutation(reorder: string, input: Int32Array, output: Int32Array): void {
  if (input.length !== output.length) {
    throw new ReorderError(reorder, 'not_a_permutation', `the order has ${output.length} entries for ${input.length} positions`)
  }
  const a = input.slice().sort()
  const b = output.slice().sort()
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      const at = `first difference at sorted entry ${i}: ${b[i]} vs ${a[i]}`
      throw new ReorderError(reorder, 'not_a_permutation', `the order is not a permutation of the positions (${at})`)
    }
  }
}

/** What applyPattern takes: the reorder-level keys and the pattern's own params, as a preset writes them. */
export type ApplyPatternParams = z.input<typeof OrderingParams> & {
  readonly pattern_params?: Readonly<Record<string, unknown>> | null
}

function parse<S extends z.ZodType>(pattern: string, schema: S, value: unknown, prefix: readonly string[]): z.output<S> {
  const parsed = schema.safeParse(value)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]!
  const at = [...prefix, ...issue.path.map(String)].join('.') || 'params'
  throw new ReorderError(pattern, 'bad_params', `bad ${at}: ${issue.message}`, { cause: parsed.error })
}

type Ordering = (positions: Int32Array, scores: Scores | undefined) => Int32Array

/** The pattern with its params checked and the effective direction and seed bound. */
function prepare(name: PatternName, raw: unknown, ascending: boolean, seed: number): Ordering {
  const at = ['pattern_params']
  switch (name) {
    case 'shuffle':
      parse(name, PATTERN_PARAMS.shuffle, raw, at)
      return (p, s) => shuffle(p, s, { seed })
    case 'sorting':
      parse(name, PATTERN_PARAMS.sorting, raw, at)
      return (p, s) => sorting(p, s, { ascending })
    case 'folding':
    case 'zigzag': {
      const params = { ...parse(name, PATTERN_PARAMS[name], raw, at), ascending }
      const fold = name === 'folding' ? folding : zigzag
      return (p, s) => fold(p, s, params)
    }
    case 'segment': {
      const params = { ...parse(name, PATTERN_PARAMS.segment, raw, at), ascending, seed }
      return (p, s) => segment(p, s, params)
    }
    case 'stair':
    case 'saw': {
      const params = { ...parse(name, PATTERN_PARAMS[name], raw, at), ascending }
      return (p, s) => crossGuidance(name, p, s, params)
    }
  }
}

/**
 * One ordering as a reorder makes it: check the params, resolve the direction from `polarity` and `ascending`,
 * run the pattern, shuffle within windows of `window_size`, and check the result is a permutation of `positions`.
 * `scores` may be omitted for `shuffle` only; an empty list comes back empty.
 */
export function applyPattern(name: string, positions: Int32Array, scores: Scores | undefined, params: ApplyPatternParams = {}): Int32Array {
  if (!isPatternName(name)) {
    const hint = didYouMean(name, PATTERN_NAMES)
    const also = hint === undefined ? '' : ` (${hint})`
    throw new ReorderError(name, 'unknown_pattern', `unknown ordering pattern${also}; the patterns are ${PATTERN_NAMES.join(', ')}`)
  }
  const { pattern_params: patternParams, ...rest } = params
  const ordering = parse(name, OrderingParams, rest, [])
  const pattern = prepare(name, patternParams ?? {}, effectiveAscending(ordering.polarity, ordering.ascending), ordering.seed)
  if (scores !== undefined) checkLength(name, positions, scores)
  if (positions.length === 0) return new Int32Array(0)
  const out = windowShuffle(pattern(positions, scores), ordering.window_size, ordering.seed)
  assertPermutation(name, positions, out)
  return out
}
