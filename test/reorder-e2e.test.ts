/**
 * `dataflex train` with `train_type: dynamic_reorder` on the tiny model, as users run it: a static order read as a
 * stream (precomputed scores, a selection cache, a dynamic_select run's selections, the model's own loss, shuffle),
 * dynamic rescoring (slice serving; head serving in reorder-serve.test.ts), warmup_step 0, determinism, a bad preset, and scores of the raw rows
 * (apply_at: raw) with a row that preprocessing drops.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { parsePythonYaml } from '../src/config/index.ts'
import { writeNpy } from '../src/strategies/npy.ts'
import { expectAllClose, expectClose } from './close.ts'
import { expectOk, PYTHON, stable, tempDir, tinyConfig, trainCli, type TrainRun } from './support.ts'

const HAS_PYTHON = existsSync(PYTHON)
/** arith_clean + facts, 26 rows each (tinyConfig). */
const N = 52

interface ReorderDecision {
  step: number
  kind: string
  window: 'warmup' | 'select'
  flex_epoch: number
  steps: [number, number]
  rescored: boolean
  count: number
  indices: number[]
  score_tenths?: number[]
  [key: string]: unknown
}

/** B_g = 4 × GA 2 = 8; W=1, U=2, T=2: flex-epochs of 5 steps (8 warm-up rows, then 16 per interval); 10 steps. */
function reorderConfig(out: string, reorder: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return tinyConfig(out, {
    eval_strategy: 'no',
    eval_dataset: undefined,
    save_strategy: 'no',
    logging_steps: 1,
    train_type: 'dynamic_reorder',
    component_name: 'r',
    components: { reorders: { r: { params: reorder } } },
    warmup_step: 1,
    update_step: 2,
    update_times: 2,
    train_step: 10,
    ...extra,
  })
}

const run = (dir: string, name: string, reorder: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<TrainRun<ReorderDecision>> =>
  trainCli<ReorderDecision>(dir, name, (out) => reorderConfig(out, reorder, extra))

function served(r: TrainRun<ReorderDecision>): number[] {
  return r.decisions.flatMap((d) => d.indices)
}

describe.skipIf(!HAS_PYTHON).concurrent('dataflex train with train_type: dynamic_reorder', () => {
  it('static sorting by a score file: the run reads one global order as a stream, warm-up first, wrapping', async () => {
    const dir = tempDir('reorder-static-npy')
    // Scores: row i scores (i * 7) % N, all distinct: ascending order is known in closed form.
    const scores = Float64Array.from({ length: N }, (_, i) => (i * 7) % N)
    writeNpy(join(dir, 'scores.npy'), scores, [N])
    const r = await run(dir, 'sorting', { kind: 'static', pattern: 'sorting', score_params: { score_path: 'scores.npy' } })
    expectOk(r)
    expect(r.metrics.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    expect(r.decisions.map((d) => [d.window, d.step, d.count])).toEqual([['warmup', 0, 8], ['select', 1, 16], ['select', 3, 16], ['warmup', 5, 8], ['select', 6, 16], ['select', 8, 16]])
    const order = Array.from({ length: N }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!)
    const stream = served(r)
    expect(stream).toEqual(Array.from({ length: stream.length }, (_, j) => order[j % N]))
    expect(r.decisions[0]!.rescored).toBe(true)
    expect(r.decisions.slice(1).every((d) => !d.rescored)).toBe(true)
    // Each window's score tenths rise (a sorted stream), until the wrap.
    const first = r.decisions[1]!.score_tenths!
    expect(first).toEqual([...first].sort((a, b) => a - b))
  }, 300_000)

  it("static folding by the model's own loss, at warmup_step 0 (DataFlex crashes there)", async () => {
    const dir = tempDir('reorder-static-loss')
    const r = await run(dir, 'loss', { kind: 'static', pattern: 'folding', pattern_params: { layers: 2 }, score_source: 'model_loss' }, { warmup_step: 0, update_times: 3, train_step: 6 })
    expectOk(r)
    expect(r.metrics.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6])
    expect(r.decisions.every((d) => d.window === 'select')).toBe(true)
    // Two folds: the first 26 served rows rise in loss, then it starts over from the low end.
    const t = r.decisions[0]!.score_tenths!
    expect(t.slice(0, 5)).toEqual([...t.slice(0, 5)].sort((a, b) => a - b))
  }, 300_000)

  // Head serving (the Python DataFlex's) runs end to end in the same walk; its rows are checked against the reference
  // in test/reorder-serve.test.ts, so CI trains it there only (time budget).
  for (const serve of ['slice'] as const) {
    it(`dynamic saw by the model's loss, ${serve} serving: rescored every interval, each row once per pass`, async () => {
      const dir = tempDir(`reorder-dyn-${serve}`)
      const r = await run(
        dir,
        serve,
        { kind: 'dynamic', pattern: 'saw', pattern_params: { num_sections: 2, folding_ratio: 0.1, layers: 2 }, score_source: 'model_loss', serve },
        { update_times: 4, train_step: 18 },
      )
      expectOk(r)
      expect(r.metrics).toHaveLength(18)
      const intervals = r.decisions.filter((d) => d.window === 'select')
      expect(intervals.every((d) => d.rescored)).toBe(true)
      // Flex-epoch 0: warm-up 8 + 4 × 16 = 72 rows: the first 52 are one pass (no row twice), then a new pass.
      const pass = served(r).slice(0, N)
      expect(new Set(pass).size).toBe(N)
    }, 300_000)
  }

  it('cached_selection: a DataFlex selector cache (step_N.json) densified with fill_value', async () => {
    const dir = tempDir('reorder-cache')
    const indices = [5, 9, 13, 40]
    writeFileSync(join(dir, 'step_10.json'), JSON.stringify({ indices, metric: { loss: [4, 3, 2, 1] } }))
    const r = await run(dir, 'cache', {
      kind: 'static',
      pattern: 'sorting',
      polarity: 'higher_earlier',
      score_source: 'cached_selection',
      score_params: { cache_path: 'step_10.json', fill_value: -1 },
    })
    expectOk(r)
    // Highest first: the four scored rows by loss, then every other row (fill −1) in index order.
    expect(served(r).slice(0, 8)).toEqual([5, 9, 13, 40, 0, 1, 2, 3])
  }, 300_000)

  it("cached_selection from our own dynamic_select run's output_dir: the last selection's losses, sorted", async () => {
    const dir = tempDir('reorder-from-select')
    // The loss selector on the same schedule: selections (16 rows each) at steps 1, 3, 6 and 8.
    const sel = await trainCli<ReorderDecision & { scores: { min: number; mean: number; max: number }; scores_file: string; returned: number }>(dir, 'select', (out) =>
      tinyConfig(out, {
        eval_strategy: 'no',
        eval_dataset: undefined,
        save_strategy: 'no',
        train_type: 'dynamic_select',
        component_name: 'loss',
        components: { selectors: { loss: { params: {} } } },
        warmup_step: 1,
        update_step: 2,
        update_times: 2,
        train_step: 10,
      }),
    )
    expectOk(sel)
    const selects = sel.decisions.filter((d) => d.kind === 'select')
    expect(selects.map((d) => d.step)).toEqual([1, 3, 6, 8])
    expect(readdirSync(join(sel.out, 'dataflex', 'selections')).sort()).toEqual(['step_1.json', 'step_3.json', 'step_6.json', 'step_8.json'])
    for (const d of selects) {
      expect(d.scores_file).toBe(join('dataflex', 'selections', `step_${d.step}.json`))
      const file = JSON.parse(readFileSync(join(sel.out, d.scores_file), 'utf8')) as { indices: number[]; metric: Record<string, number[]>; computed_at_step: number }
      // The selection as the decision line logged it (no top-up: 16 of 52 without replacement), its losses as summarised there.
      expect(d.returned).toBe(16)
      expect(file.indices).toEqual(d.indices)
      expect(Object.keys(file.metric)).toEqual(['loss'])
      expect(file.computed_at_step).toBe(d.step)
      const loss = file.metric['loss']!
      expectClose(Math.min(...loss), d.scores.min, { rel: 1e-12 }, 'min')
      expectClose(Math.max(...loss), d.scores.max, { rel: 1e-12 }, 'max')
      expectClose(loss.reduce((a, v) => a + v, 0) / loss.length, d.scores.mean, { rel: 1e-9 }, 'mean')
    }

    const fill = 1000
    const r = await run(dir, 'from-select', { kind: 'static', pattern: 'sorting', score_source: 'cached_selection', score_params: { cache_path: sel.out, fill_value: fill } })
    expectOk(r)
    // The last selection (step 8) densified: its rows by loss (ascending, ties by row), then the others (fill) by row.
    const last = JSON.parse(readFileSync(join(sel.out, 'dataflex', 'selections', 'step_8.json'), 'utf8')) as { indices: number[]; metric: { loss: number[] } }
    const dense = Array.from({ length: N }, () => fill)
    last.indices.forEach((row, i) => (dense[row] = last.metric.loss[i]!))
    const order = Array.from({ length: N }, (_, i) => i).sort((a, b) => dense[a]! - dense[b]! || a - b)
    expect(served(r).slice(0, N)).toEqual(order)
    // The score tenths of the first window are those rows' losses, in order.
    const first = r.decisions[0]!
    const firstScores = order.slice(0, first.count).map((row) => dense[row]!)
    expectAllClose(first.score_tenths!, Array.from({ length: 8 }, (_, p) => firstScores[p]!), { rel: 1e-9 }, 'tenths')
  }, 480_000)

  it('shuffle needs no scores; decisions are identical run after run', async () => {
    const dir = tempDir('reorder-shuffle')
    const [a, b] = await Promise.all([run(dir, 'a', { kind: 'static', pattern: 'shuffle', seed: 3 }), run(dir, 'b', { kind: 'static', pattern: 'shuffle', seed: 3 })])
    expectOk(a)
    expectOk(b)
    expect(a.decisions.map(stable)).toEqual(b.decisions.map(stable))
    expect(new Set(served(a).slice(0, N)).size).toBe(N)
  }, 300_000)

  it('every shipped reorder preset runs as written (score files filled in where the preset leaves them null)', async () => {
    const dir = tempDir('reorder-shipped')
    writeNpy(join(dir, 'scores.npy'), Float64Array.from({ length: N }, (_, i) => (i * 11) % N), [N])
    writeFileSync(join(dir, 'step_10.json'), JSON.stringify({ indices: [1, 2, 3], metric: { loss: [3, 1, 2] } }))
    const shipped = (parsePythonYaml(readFileSync(join(REPO_ROOT, 'configs', 'components.yaml'), 'utf8')).value as { reorders: Record<string, { params: Record<string, unknown> }> }).reorders
    const names = Object.keys(shipped)
    expect(names.length).toBeGreaterThanOrEqual(10)
    const runs = await Promise.all(
      names.map((name) => {
        const params = structuredClone(shipped[name]!.params)
        const sp = (params['score_params'] ?? {}) as Record<string, unknown>
        if (sp['score_path'] === null) sp['score_path'] = 'scores.npy'
        if (typeof sp['cache_path'] === 'string') sp['cache_path'] = 'step_10.json'
        return run(dir, name, params, { train_step: 6, update_times: 2 })
      }),
    )
    runs.forEach((r, i) => {
      expectOk(r)
      expect(r.metrics.length, names[i]).toBe(6)
      expect(r.decisions.every((d) => d.count === (d.window === 'warmup' ? 8 : 16)), names[i]).toBe(true)
    })
  }, 400_000)

  it('a static preset without a score file is a config error (exit 2) naming the preset', async () => {
    const dir = tempDir('reorder-bad')
    const r = await run(dir, 'bad', { kind: 'static', pattern: 'saw', pattern_params: { num_sections: 3, folding_ratio: 0.075, layers: 2 } })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/reorder 'r' .*score_source precomputed needs score_params\.score_path/)
  }, 300_000)
})

/**
 * Two datasets with a `score` column (ra: 20 rows, its row 5 malformed: a null output, which LLaMA-Factory's
 * preprocessing drops; rb: 16 rows); max_samples 18 keeps ra's first 18 rows and all of rb: 34 raw rows, 33 training
 * rows. Raw row k (over ra then rb) scores (13k mod 37) + 0.25: all distinct.
 */
const RAW_SIZES = [20, 16]
const MAX_SAMPLES = 18
const DROPPED = 5

function writeScoredData(dir: string, omitScoreIn?: string): void {
  const info: Record<string, unknown> = {}
  let k = 0
  RAW_SIZES.forEach((size, d) => {
    const name = d === 0 ? 'ra' : 'rb'
    const rows = Array.from({ length: size }, (_, i) => {
      const kept = i < MAX_SAMPLES
      const row: Record<string, unknown> = { instruction: `What is ${d * 100 + i} + 1?`, input: '', output: d === 0 && i === DROPPED ? null : String(d * 100 + i + 1) }
      // Rows beyond max_samples are not raw rows: they take no global number.
      if (name !== omitScoreIn) row['score'] = kept ? ((13 * k) % 37) + 0.25 : 1000
      if (kept) k++
      return row
    })
    writeFileSync(join(dir, `${name}.json`), JSON.stringify(rows))
    info[name] = { file_name: `${name}.json`, formatting: 'alpaca' }
  })
  writeFileSync(join(dir, 'dataset_info.json'), JSON.stringify(info))
}

/** The raw rows' scores read back from the dataset files (after max_samples, ra then rb) and whether each trains. */
function rawRowsOf(dir: string): { score: number; trains: boolean }[] {
  return ['ra', 'rb'].flatMap((name) =>
    (JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as { output: string | null; score: number }[])
      .slice(0, MAX_SAMPLES)
      .map((row) => ({ score: row.score, trains: row.output !== null })),
  )
}

describe.skipIf(!HAS_PYTHON).concurrent('dynamic_reorder with apply_at: raw', () => {
  const rawRun = (dir: string, name: string, reorder: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    run(dir, name, { kind: 'static', pattern: 'sorting', apply_at: 'raw', ...reorder }, { dataset_dir: dir, dataset: 'ra,rb', max_samples: MAX_SAMPLES, ...extra })

  it('orders the training rows by the score column of the raw rows they came from (a dropped row is absent)', async () => {
    const dir = tempDir('reorder-raw')
    writeScoredData(dir)
    const raw = rawRowsOf(dir)
    // The score file variant: one score per raw row, the column negated, so its ascending order is the reverse.
    writeFileSync(join(dir, 'raw-scores.json'), JSON.stringify(raw.map((r) => -r.score)))
    const [column, file] = await Promise.all([rawRun(dir, 'column', {}), rawRun(dir, 'file', { score_params: { score_path: 'raw-scores.json' } })])
    expectOk(column)
    expectOk(file)
    // Training row j is the j-th raw row that survives preprocessing.
    const trainScores = raw.filter((r) => r.trains).map((r) => r.score)
    const n = trainScores.length
    expect(n).toBe(MAX_SAMPLES + RAW_SIZES[1]! - 1)
    const ascending = Array.from({ length: n }, (_, j) => j).sort((a, b) => trainScores[a]! - trainScores[b]!)
    const descending = [...ascending].reverse()
    for (const [r, order] of [[column, ascending], [file, descending]] as const) {
      const stream = served(r)
      expect(stream).toEqual(Array.from({ length: stream.length }, (_, j) => order[j % n]))
    }
    const facts = JSON.parse(readFileSync(join(column.out, 'dataflex', 'reorder.json'), 'utf8')) as { num_train: number; raw_rows: Record<string, unknown> }
    expect(facts.num_train).toBe(n)
    expect(facts.raw_rows).toEqual({ datasets: ['ra', 'rb'], rows: [MAX_SAMPLES, RAW_SIZES[1]], total: raw.length, dropped: 1 })
  }, 300_000)

  it('a dataset without the score field, and num_samples, are config errors (exit 2) naming them', async () => {
    const dir = tempDir('reorder-raw-bad')
    writeScoredData(dir, 'rb')
    const sampled = tempDir('reorder-raw-sampled')
    writeScoredData(sampled)
    const info = JSON.parse(readFileSync(join(sampled, 'dataset_info.json'), 'utf8')) as Record<string, Record<string, unknown>>
    info['rb']!['num_samples'] = 8
    writeFileSync(join(sampled, 'dataset_info.json'), JSON.stringify(info))
    const [missing, numSamples] = await Promise.all([rawRun(dir, 'missing', {}), rawRun(sampled, 'sampled', {})])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/dataset 'rb' has no field 'score'/)
    expect(numSamples.code).toBe(2)
    expect(numSamples.stderr).toMatch(/num_samples: dataset 'rb' sets num_samples/)
  }, 300_000)
})
