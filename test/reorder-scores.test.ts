/**
 * The score sources of dynamic_reorder (src/strategies/reorders/scores.ts): precomputed files (.npy, .json list or
 * object, .jsonl), a selection cache densified to one score per training row, and model_loss over a fake ModelOps
 * that records its `losses` calls. Expected scores are written out here (densifying and the median fill in plain
 * loops), then every error a preset or a file can cause.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { writeNpy } from '../src/strategies/npy.ts'
import { ReorderError } from '../src/strategies/reorders/common.ts'
import { scoreSource, type RawRows, type ScoreSourceName } from '../src/strategies/reorders/scores.ts'
import { writeSelectionFile } from '../src/strategies/selection-file.ts'
import type { LossOptions, ModelOps, Split } from '../src/strategies/types.ts'
import { expectAllClose } from './close.ts'
import { NO_MODEL } from './mix-support.ts'
import { tempDir } from './support.ts'

// ───────────────────────────── fixtures ─────────────────────────────

const EXACT = { rel: 1e-12 }
const NAME = 'dynamic sorting'

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i)
}

function source(name: ScoreSourceName, params: unknown, numTrain: number, baseDir = '/nonexistent-base') {
  return scoreSource(NAME, name, params, { numTrain, baseDir })
}

/** All rows' scores from a static source, asked in a scrambled order (the answer follows the positions asked). */
async function scoresOf(name: ScoreSourceName, params: unknown, numTrain: number, baseDir?: string): Promise<number[]> {
  const src = source(name, params, numTrain, baseDir)
  const positions = range(numTrain).map((i) => (i * 5 + 2) % numTrain)
  const got = await src.scoresFor(Int32Array.from(positions), { step: 0, model: NO_MODEL })
  const out = new Array<number>(numTrain)
  positions.forEach((p, i) => (out[p] = got[i]!))
  return out
}

/** The ReorderError `f` throws or rejects with (anything else fails the test). */
async function reorderError(f: () => unknown): Promise<ReorderError> {
  try {
    await f()
  } catch (err) {
    if (err instanceof ReorderError) return err
    throw err
  }
  throw new Error('expected a ReorderError')
}

function write(dir: string, name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

// ───────────────────────────── precomputed ─────────────────────────────

describe('precomputed scores', () => {
  const dir = tempDir('reorder-scores')
  // 7 rows, with an odd count so the scrambled asking order (5i + 2 mod 7) visits every row.
  const values = [0.5, -1.25, 3, 2.75, 0, 10, -4]

  it('reads .npy (float64 and float32), answering in the order of the positions asked', async () => {
    const f8 = join(dir, 's8.npy')
    writeNpy(f8, Float64Array.from(values), [values.length])
    expectAllClose(await scoresOf('precomputed', { score_path: f8 }, 7), values, EXACT, 'f8')
    const f4 = join(dir, 's4.npy')
    writeNpy(f4, Float32Array.from(values), [values.length])
    expectAllClose(await scoresOf('precomputed', { score_path: f4 }, 7), values, EXACT, 'f4')
    const src = source('precomputed', { score_path: f8 }, 7)
    expect(src.dynamic).toBe(false)
    expect(Array.from(await src.scoresFor(Int32Array.from([6, 6, 1]), { step: 3, model: NO_MODEL }))).toEqual([-4, -4, -1.25])
  })

  it('reads a .json list, a .json object by score_field or metric.<field>, and .jsonl by score_field', async () => {
    const list = write(dir, 'list.json', JSON.stringify(values.map((v, i) => (i === 2 ? String(v) : v))))
    expectAllClose(await scoresOf('precomputed', { score_path: list }, 7), values, EXACT, 'list (a numeric string too)')
    const byField = write(dir, 'obj.json', JSON.stringify({ difficulty: values, other: range(7) }))
    expectAllClose(await scoresOf('precomputed', { score_path: byField, score_field: 'difficulty' }, 7), values, EXACT, 'object field')
    const byMetric = write(dir, 'metric.json', JSON.stringify({ indices: range(7), metric: { difficulty: values } }))
    expectAllClose(await scoresOf('precomputed', { score_path: byMetric, score_field: 'difficulty' }, 7), values, EXACT, 'metric.field')
    // The default field is 'score'; a top-level field wins over metric.<field>.
    const both = write(dir, 'both.json', JSON.stringify({ score: values, metric: { score: range(7) } }))
    expectAllClose(await scoresOf('precomputed', { score_path: both }, 7), values, EXACT, 'top level first')
    const lines = values.map((v, i) => JSON.stringify({ id: i, ppl: v, score: -v }))
    // Blank lines and CRLF endings are fine.
    const jsonl = write(dir, 's.jsonl', [lines[0], '', ...lines.slice(1)].join('\r\n') + '\n')
    expectAllClose(await scoresOf('precomputed', { score_path: jsonl, score_field: 'ppl' }, 7), values, EXACT, 'jsonl ppl')
    expectAllClose(await scoresOf('precomputed', { score_path: jsonl }, 7), values.map((v) => -v), EXACT, 'jsonl score')
  })

  it('resolves a relative path against the working directory, then the preset folder; reads the file once', async () => {
    const path = write(dir, 'rel-only-here.json', JSON.stringify(values))
    expectAllClose(await scoresOf('precomputed', { score_path: 'rel-only-here.json' }, 7, dir), values, EXACT, 'from baseDir')
    expectAllClose(await scoresOf('precomputed', { score_path: relative(process.cwd(), path) }, 7), values, EXACT, 'from cwd')
    const src = source('precomputed', { score_path: path }, 7)
    const all = Int32Array.from(range(7))
    await src.scoresFor(all, { step: 0, model: NO_MODEL })
    write(dir, 'rel-only-here.json', JSON.stringify(range(7)))
    expectAllClose(await src.scoresFor(all, { step: 5, model: NO_MODEL }), values, EXACT, 'cached')
  })

  it('rejects bad files with the file, the line or the entry', async () => {
    const ctx = { step: 0, model: NO_MODEL }
    const all = Int32Array.from(range(4))
    const scored = (name: string, text: string, params: Record<string, unknown> = {}) =>
      reorderError(() => source('precomputed', { score_path: write(dir, name, text), ...params }, 4).scoresFor(all, ctx))

    const missing = await scored('missing.jsonl', '{"score": 1}\n\n{"loss": 2}\n{"score": 3}\n{"score": 4}\n')
    expect(missing.code).toBe('bad_input')
    expect(missing.message).toMatch(/^dynamic sorting: .*missing\.jsonl line 3 has no 'score'$/)
    expect((await scored('bare.jsonl', '{"score": 1}\n2\n')).message).toMatch(/bare\.jsonl line 2 has no 'score'/)
    expect((await scored('null.jsonl', '{"score": 1}\nnull\n')).message).toMatch(/null\.jsonl line 2 has no 'score'/)
    expect((await scored('nan.jsonl', '{"score": 1}\n{"score": null}\n')).message).toMatch(/nan\.jsonl line 2 'score' is not a number \(null\)/)
    expect((await scored('word.json', '[1, 2, "three", 4]')).message).toMatch(/word\.json \[2\] is not a number \("three"\)/)

    const short = await scored('short.json', '[1, 2, 3]')
    expect(short.code).toBe('bad_input')
    expect(short.message).toMatch(/short\.json has 3 scores for 4 training rows/)
    const nanNpy = join(dir, 'nan.npy')
    writeNpy(nanNpy, Float64Array.from([1, Number.NaN, 3, 4]), [4])
    const nan = await reorderError(() => source('precomputed', { score_path: nanNpy }, 4).scoresFor(all, ctx))
    expect(nan.message).toMatch(/nan\.npy: score 1 is NaN \(scores must be finite\)/)
    expect((await scored('inf.json', '[1, 2, "-Infinity", 4]')).message).toMatch(/inf\.json: score 2 is -Infinity/)

    expect((await scored('obj.json', '{"loss": [1, 2, 3, 4]}')).message).toMatch(/obj\.json is neither a list of scores nor an object with 'score' \(or metric\.score\)/)
    expect((await scored('num.json', '4')).message).toMatch(/num\.json is neither a list/)
    const csv = await scored('s.csv', '1\n2\n3\n4\n')
    expect(csv.code).toBe('bad_input')
    expect(csv.message).toMatch(/s\.csv: score files are \.npy, \.json or \.jsonl/)
  })

  it('rejects bad params and a missing file when the source is made', async () => {
    const notFound = await reorderError(() => source('precomputed', { score_path: 'no-such-scores.npy' }, 4, dir))
    expect(notFound.code).toBe('bad_params')
    expect(notFound.message).toMatch(/score_params\.score_path 'no-such-scores\.npy' not found \(looked in the working directory and /)
    const absent = await reorderError(() => source('precomputed', { score_path: join(dir, 'absent.npy') }, 4))
    expect(absent.message).toMatch(/absent\.npy' not found/)
    for (const params of [{}, { score_path: null }, undefined]) {
      const e = await reorderError(() => source('precomputed', params, 4))
      expect(e.code).toBe('bad_params')
      expect(e.message).toMatch(/score_source precomputed needs score_params\.score_path/)
    }
    const unknown = await reorderError(() => source('precomputed', { score_path: 'x.npy', scores_field: 'a' }, 4))
    expect(unknown.code).toBe('bad_params')
    expect(unknown.message).toMatch(/score_params\.\S* for score_source precomputed: .*scores_field/)
    expect((await reorderError(() => source('precomputed', { score_path: 'x.npy', score_field: '' }, 4))).message).toMatch(/score_params\.score_field for score_source precomputed/)
    expect((await reorderError(() => source('precomputed', { score_path: 3 }, 4))).message).toMatch(/score_params\.score_path for score_source precomputed/)
  })
})

// ───────────────────────────── precomputed, apply_at: raw ─────────────────────────────

describe('precomputed scores of raw rows (apply_at: raw)', () => {
  const dir = tempDir('reorder-raw-scores')
  // Two datasets of 4 and 3 raw rows; preprocessing dropped raw rows 1 and 5: 5 training rows.
  const column = [0.5, 99, -2, 7, 1.5, Number.NaN, 3]
  const raw: RawRows = { names: ['a', 'b'], rows: [4, 3], index_of_row: Int32Array.of(0, 2, 3, 4, 6), scores: Float64Array.from(column) }
  const rawSource = (params: unknown, rows: RawRows = raw) => scoreSource(NAME, 'precomputed', params, { numTrain: 5, baseDir: dir, raw: rows })
  /** Training row j takes the score of raw row index_of_row[j]. */
  const mapped = (perRaw: number[]): number[] => Array.from(raw.index_of_row, (k) => perRaw[k]!)

  it("maps the column to the training rows; a non-finite score on a dropped row does not matter", async () => {
    const got = await rawSource({}).scoresFor(Int32Array.of(4, 0, 2), { step: 0, model: NO_MODEL })
    const all = mapped(column)
    expectAllClose(got, [all[4]!, all[0]!, all[2]!], EXACT, 'column')
  })

  it('maps a score file of one score per raw row; a file of another length names both counts', async () => {
    const perRaw = column.map((_, k) => 10 - k)
    writeFileSync(join(dir, 'raw.json'), JSON.stringify(perRaw))
    const got = await rawSource({ score_path: 'raw.json' }).scoresFor(Int32Array.from(range(5)), { step: 0, model: NO_MODEL })
    expectAllClose(got, mapped(perRaw), EXACT, 'file')
    writeFileSync(join(dir, 'short.json'), JSON.stringify([1, 2, 3, 4, 5]))
    const short = rawSource({ score_path: 'short.json' })
    await expect(short.scoresFor(Int32Array.of(0), { step: 0, model: NO_MODEL })).rejects.toThrow(/has 5 scores for 7 raw rows/)
  })

  it('rejects a non-finite score of a training row, and a column the sidecar did not read', async () => {
    const bad = rawSource({}, { ...raw, index_of_row: Int32Array.of(0, 2, 3, 5, 6) })
    await expect(bad.scoresFor(Int32Array.of(0), { step: 0, model: NO_MODEL })).rejects.toThrow(/score 3 is NaN/)
    expect((await reorderError(() => rawSource({}, { ...raw, scores: null }))).message).toMatch(/'score' column was not read at load/)
  })
})

// ───────────────────────────── cached_selection ─────────────────────────────

describe('cached_selection scores', () => {
  const dir = tempDir('reorder-cache')
  const cache = (name: string, obj: unknown) => write(dir, name, JSON.stringify(obj))

  /** The densified scores from their definition: fill everywhere, then each in-range entry in cache order. */
  function densify(indices: number[], values: number[], fill: number, n: number): number[] {
    const out = range(n).map(() => fill)
    for (let i = 0; i < indices.length; i++) {
      const r = indices[i]!
      if (r >= 0 && r < n) out[r] = values[i]!
    }
    return out
  }

  it('densifies: unscored rows get fill_value, later duplicates overwrite, out-of-range rows are ignored', async () => {
    const indices = [4, 1, 9, 1, -1, 2, 6]
    const loss = [0.4, 0.1, 9, 0.7, 5, 0.2, 8]
    const ppl = [1, 2, 3, 4, 5, 6, 7]
    const path = cache('step_3.json', { indices, metric: { loss, ppl } })
    const n = 6
    expectAllClose(await scoresOf('cached_selection', { cache_path: path, fill_value: -1 }, n), densify(indices, loss, -1, n), EXACT, 'loss')
    expectAllClose(await scoresOf('cached_selection', { cache_path: path }, n), densify(indices, loss, 0, n), EXACT, 'default fill 0')
    expectAllClose(await scoresOf('cached_selection', { cache_path: path, metric_key: 'ppl', fill_value: 2.5 }, n), densify(indices, ppl, 2.5, n), EXACT, 'ppl')
    // Spelled out: row 1 has the later 0.7, rows 0, 3, 5 the fill.
    expect(densify(indices, loss, -1, n)).toEqual([-1, 0.7, 0.2, -1, 0.4, -1])
    expect(source('cached_selection', { cache_path: path }, n).dynamic).toBe(false)
  })

  it('rejects a cache without the metric (listing those it has), without indices, or with lists of other lengths', async () => {
    const all = Int32Array.from(range(3))
    const ctx = { step: 0, model: NO_MODEL }
    const fails = (name: string, obj: unknown, params: Record<string, unknown> = {}) =>
      reorderError(() => source('cached_selection', { cache_path: cache(name, obj), ...params }, 3).scoresFor(all, ctx))

    const noMetric = await fails('a.json', { indices: [0, 1], metric: { loss: [1, 2], ppl: [3, 4] } }, { metric_key: 'grad_norm' })
    expect(noMetric.code).toBe('bad_input')
    expect(noMetric.message).toMatch(/a\.json has no metric 'grad_norm' \(it has: loss, ppl\)/)
    expect((await fails('b.json', { indices: [0, 1] })).message).toMatch(/b\.json has no metric 'loss' \(it has: none\)/)
    expect((await fails('c.json', { metric: { loss: [1] } })).message).toMatch(/c\.json has no 'indices' list/)
    const mismatch = await fails('d.json', { indices: [0, 1, 2], metric: { loss: [1, 2] } })
    expect(mismatch.message).toMatch(/d\.json: 3 indices but 2 values of 'loss'/)
    expect((await fails('e.json', { indices: [0, 'x'], metric: { loss: [1, 2] } })).message).toMatch(/e\.json indices\[1\] is not a number/)
    expect((await fails('f.json', { indices: [0, 1], metric: { loss: [1, 'Infinity'] } })).message).toMatch(/f\.json: score 1 is Infinity/)
  })

  it("reads our runs' selection files: a run's output_dir (the last selection, or score_params.step), its selections folder, a file", async () => {
    const n = 8
    const out = join(dir, 'run-out')
    const selections = join(out, 'dataflex', 'selections')
    const picks: Record<number, { indices: number[]; loss: number[] }> = {
      2: { indices: [3, 0, 5], loss: [0.5, 1.5, 2.5] },
      12: { indices: [7, 1], loss: [4.25, 0.125] },
      5: { indices: [6, 2, 6], loss: [9, 8, 7] },
    }
    for (const [step, p] of Object.entries(picks)) {
      writeSelectionFile(selections, { step: Number(step), indices: p.indices, scores: p.loss, metric: 'loss', strategy: 'loss', component: 'loss' })
    }
    // DataFlex's layout, plus the step it was computed at.
    expect(JSON.parse(readFileSync(join(selections, 'step_5.json'), 'utf8'))).toMatchObject({ indices: [6, 2, 6], metric: { loss: [9, 8, 7] }, computed_at_step: 5 })
    const at = (step: number, fill: number) => densify(picks[step]!.indices, picks[step]!.loss, fill, n)
    // The last selection is the highest step (12), not the last written or the last by name.
    expectAllClose(await scoresOf('cached_selection', { cache_path: out, fill_value: -1 }, n), at(12, -1), EXACT, 'output_dir → last')
    expectAllClose(await scoresOf('cached_selection', { cache_path: out, step: 5 }, n), at(5, 0), EXACT, 'output_dir, step 5')
    expectAllClose(await scoresOf('cached_selection', { cache_path: selections, step: 2 }, n), at(2, 0), EXACT, 'selections folder, step 2')
    expectAllClose(await scoresOf('cached_selection', { cache_path: join(selections, 'step_2.json') }, n), at(2, 0), EXACT, 'the file')
    // Relative to the preset folder, as score files are.
    expectAllClose(await scoresOf('cached_selection', { cache_path: 'run-out', step: 12 }, n, dir), at(12, 0), EXACT, 'relative output_dir')
    // A DataFlex cache_dir: other files beside the selections; a zero-padded name is its step too.
    const dataflexCache = join(dir, 'dataflex-cache')
    mkdirSync(dataflexCache, { recursive: true })
    cache(join('dataflex-cache', 'step_007.json'), { indices: [1, 4], metric: { loss: [3, 2] } })
    cache(join('dataflex-cache', 'cluster_ids.json'), [0, 1])
    expectAllClose(await scoresOf('cached_selection', { cache_path: dataflexCache, step: 7 }, n), densify([1, 4], [3, 2], 0, n), EXACT, 'padded step')
  })

  it('a folder without selections, a missing step, step with a file and a non-finite score are errors naming the path', async () => {
    const empty = join(dir, 'empty-run')
    mkdirSync(empty, { recursive: true })
    const none = await reorderError(() => source('cached_selection', { cache_path: empty }, 3))
    expect(none.code).toBe('bad_input')
    expect(none.message).toContain(`no selection file (step_<N>.json) in ${empty} (nor a ${join('dataflex', 'selections')} folder in it)`)
    const selections = join(dir, 'run-b', 'dataflex', 'selections')
    mkdirSync(selections, { recursive: true })
    expect((await reorderError(() => source('cached_selection', { cache_path: join(dir, 'run-b') }, 3))).message).toContain(`no selection file (step_<N>.json) in ${selections};`)
    writeSelectionFile(selections, { step: 4, indices: [0, 1], scores: [1, Number.NaN], metric: 'loss', strategy: 's', component: 'c' })
    writeSelectionFile(selections, { step: 9, indices: [2], scores: [1], metric: 'loss', strategy: 's', component: 'c' })
    const missing = await reorderError(() => source('cached_selection', { cache_path: join(dir, 'run-b'), step: 6 }, 3))
    expect(missing.message).toContain(`no selection at step 6 in ${selections} (it has steps 4, 9)`)
    const onFile = await reorderError(() => source('cached_selection', { cache_path: join(selections, 'step_4.json'), step: 4 }, 3))
    expect(onFile.code).toBe('bad_params')
    expect(onFile.message).toContain(`score_params.step picks a file in a folder; cache_path ${join(selections, 'step_4.json')} is a file`)
    // NaN was written as null: refused by position when read.
    const nan = await reorderError(() => source('cached_selection', { cache_path: join(dir, 'run-b'), step: 4 }, 3).scoresFor(Int32Array.from([0]), { step: 0, model: NO_MODEL }))
    expect(nan.message).toMatch(/step_4\.json metric\.loss\[1\] is not a number \(null\)/)
  })

  it('rejects bad params', async () => {
    const path = cache('ok.json', { indices: [0], metric: { loss: [1] } })
    const e1 = await reorderError(() => source('cached_selection', {}, 3))
    expect(e1.code).toBe('bad_params')
    expect(e1.message).toMatch(/score_params\.cache_path for score_source cached_selection/)
    expect((await reorderError(() => source('cached_selection', { cache_path: path, fill_value: 'low' }, 3))).message).toMatch(/score_params\.fill_value/)
    expect((await reorderError(() => source('cached_selection', { cache_path: path, step: -1 }, 3))).message).toMatch(/score_params\.step/)
    expect((await reorderError(() => source('cached_selection', { cache_path: path, metric: 'loss' }, 3))).message).toMatch(/for score_source cached_selection: .*metric/)
    expect((await reorderError(() => source('cached_selection', { cache_path: 'no-such-cache.json' }, 3, dir))).message).toMatch(/score_params\.cache_path 'no-such-cache\.json' not found/)
  })
})

// ───────────────────────────── model_loss ─────────────────────────────

interface LossCall {
  split: Split
  rows: number[]
  opts: LossOptions | undefined
}

/** A model whose per-row loss is a fixed table (float32, as the sidecar returns it), recording each losses call. */
function lossModel(table: number[]): { model: ModelOps; calls: LossCall[] } {
  const calls: LossCall[] = []
  const model: ModelOps = {
    ...NO_MODEL,
    numTrain: table.length,
    losses: async (split, indices, opts) => {
      calls.push({ split, rows: Array.from(indices), opts })
      return Float32Array.from(indices, (r) => table[r]!)
    },
  }
  return { model, calls }
}

/** The median of the finite values (mean of the two middle ones for an even count; 0 when there are none). */
function medianOfFinite(values: number[]): number {
  const s = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (s.length === 0) return 0
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

describe('model_loss scores', () => {
  // Losses in eighths (exact in float32); rows 3 and 8 give no finite loss.
  const table = [2.5, 0.125, 1.75, Number.NaN, 3, 0.5, 4.25, 1, Number.POSITIVE_INFINITY, 2, 0.875, 6]
  const n = table.length

  it('without max_samples scores every row asked, in the order asked; non-finite losses get the median', async () => {
    const { model, calls } = lossModel(table)
    const src = source('model_loss', {}, n)
    expect(src.dynamic).toBe(true)
    const positions = [9, 3, 0, 11, 8, 5, 2]
    const got = await src.scoresFor(Int32Array.from(positions), { step: 4, model })
    expect(calls).toEqual([{ split: 'train', rows: positions, opts: {} }])
    const asked = positions.map((r) => table[r]!)
    // Finite: 2, 2.5, 6, 0.5, 1.75 → median 2 (odd count).
    const fill = medianOfFinite(asked)
    expect(fill).toBe(2)
    expectAllClose(got, asked.map((v) => (Number.isFinite(v) ? Math.fround(v) : fill)), EXACT, 'scores')
  })

  it('the median of an even count is the mean of the two middle losses; no finite loss fills 0', async () => {
    const { model } = lossModel(table)
    const src = source('model_loss', {}, n)
    const positions = [1, 3, 4, 6, 8, 10]
    const fill = medianOfFinite(positions.map((r) => table[r]!))
    expect(fill).toBe((0.875 + 3) / 2)
    expectAllClose(await src.scoresFor(Int32Array.from(positions), { step: 0, model }), [0.125, fill, 3, 4.25, fill, 0.875], EXACT, 'even')
    expectAllClose(await src.scoresFor(Int32Array.from([3, 8]), { step: 0, model }), [0, 0], EXACT, 'none finite')
  })

  it('max_samples scores a seeded subsample in pool order; the others get the median of the scored losses', async () => {
    const { model, calls } = lossModel(table)
    const src = source('model_loss', { max_samples: 5, seed: 7 }, n)
    // A pool that is not sorted: the subsample must keep its order.
    const pool = [11, 0, 7, 3, 9, 1, 8, 4, 10, 2]
    for (let step = 0; step < 6; step++) {
      const got = await src.scoresFor(Int32Array.from(pool), { step, model })
      const call = calls.at(-1)!
      expect(call.rows.length).toBe(5)
      expect(call.split).toBe('train')
      // The scored rows are a subsequence of the pool: distinct, in pool order.
      const at = call.rows.map((r) => pool.indexOf(r))
      expect(at.every((p, i) => p >= 0 && (i === 0 || p > at[i - 1]!))).toBe(true)
      const fill = medianOfFinite(call.rows.map((r) => table[r]!))
      const want = pool.map((r) => (call.rows.includes(r) && Number.isFinite(table[r]!) ? Math.fround(table[r]!) : fill))
      expectAllClose(got, want, EXACT, `step ${step}`)
    }
    // Deterministic per (seed, step): the same step again draws the same rows; other steps and seeds draw others.
    const bySeedStep = async (seed: number, step: number): Promise<number[]> => {
      const rec = lossModel(table)
      await source('model_loss', { max_samples: 5, seed }, n).scoresFor(Int32Array.from(pool), { step, model: rec.model })
      return rec.calls[0]!.rows
    }
    expect(await bySeedStep(7, 3)).toEqual(calls[3]!.rows)
    const steps = new Set(calls.map((c) => c.rows.join(',')))
    expect(steps.size).toBeGreaterThan(1)
    const seeds = await Promise.all(range(6).map((step) => bySeedStep(8, step)))
    expect(seeds.map((r) => r.join(','))).not.toEqual(calls.map((c) => c.rows.join(',')))
    // A pool no larger than max_samples is scored whole.
    await src.scoresFor(Int32Array.from([5, 2, 9, 0, 4]), { step: 1, model })
    expect(calls.at(-1)!.rows).toEqual([5, 2, 9, 0, 4])
  })

  it('batch_size reaches the losses op as maxBatchRows; an empty pool asks nothing', async () => {
    const { model, calls } = lossModel(table)
    await source('model_loss', { batch_size: 4, num_workers: 2 }, n).scoresFor(Int32Array.from([0, 1, 2]), { step: 0, model })
    expect(calls.at(-1)!.opts).toEqual({ maxBatchRows: 4 })
    await source('model_loss', { batch_size: null }, n).scoresFor(Int32Array.from([0, 1, 2]), { step: 0, model })
    expect(calls.at(-1)!.opts).toEqual({})
    expect((await source('model_loss', {}, n).scoresFor(new Int32Array(0), { step: 0, model })).length).toBe(0)
    expect(calls.length).toBe(2)
  })

  it('rejects bad params', async () => {
    for (const [params, key] of [
      [{ max_samples: 0 }, 'max_samples'],
      [{ batch_size: 0 }, 'batch_size'],
      [{ batch_size: 2.5 }, 'batch_size'],
      [{ seed: 1.5 }, 'seed'],
      [{ num_workers: -1 }, 'num_workers'],
    ] as const) {
      const e = await reorderError(() => source('model_loss', params, n))
      expect(e.code).toBe('bad_params')
      expect(e.message).toMatch(new RegExp(`score_params\\.${key} for score_source model_loss`))
    }
    expect((await reorderError(() => source('model_loss', { max_sample: 10 }, n))).message).toMatch(/for score_source model_loss: .*max_sample/)
  })
})
