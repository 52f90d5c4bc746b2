/**
 * A trained order read back from the run equals the decided one. The readback comes from what the sidecar trained,
 * not from what TypeScript decided: every row of a small dataset has its own label length, each optimizer step
 * trains exactly one row (per_device_train_batch_size 1, gradient_accumulation_steps 1), and each step's `tokens`
 * in `dataflex/metrics.jsonl` is the label-token count of the batch the trainer saw (num_items_in_batch: labels
 * other than -100, counted in the sidecar's step loop). A row's label tokens are its response's k tokens ("a" then
 * k−1 × " a", one token each for Qwen2's tokenizer) plus the template's end-of-turn tokens, a constant c learned
 * from the run itself. Token count → row, step by step, must give the `indices` of the `reorder` decision lines.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { writeNpy } from '../src/strategies/npy.ts'
import { expectOk, PYTHON, tempDir, tinyConfig, trainCli, type TrainRun } from './support.ts'

const HAS_PYTHON = existsSync(PYTHON)
const N = 12
/** Row i's response length in tokens: distinct, and not in row order (so index order and length order differ). */
const K = Array.from({ length: N }, (_, i) => 2 + ((i * 5) % N))

interface ReorderLine {
  kind: string
  step: number
  steps: [number, number]
  indices: number[]
}

/** The dataset folder: `lengths`, row i answering K[i] × "a". */
function writeDataset(dir: string): string {
  const data = join(dir, 'data')
  mkdirSync(data, { recursive: true })
  const rows = K.map((k) => ({ instruction: 'Repeat the letter.', input: '', output: Array.from({ length: k }, () => 'a').join(' ') }))
  writeFileSync(join(data, 'lengths.json'), JSON.stringify(rows))
  const columns = { prompt: 'instruction', query: 'input', response: 'output' }
  writeFileSync(join(data, 'dataset_info.json'), JSON.stringify({ lengths: { file_name: 'lengths.json', formatting: 'alpaca', columns } }))
  return data
}

/** One row per step; W=2, U=2, T=5: flex-epochs of 12 steps (one pass over the 12 rows); 18 steps. */
function run(dir: string, name: string, reorder: Record<string, unknown>): Promise<TrainRun<ReorderLine>> {
  const data = writeDataset(dir)
  return trainCli<ReorderLine>(dir, name, (out) =>
    tinyConfig(out, {
      dataset_dir: data,
      dataset: 'lengths',
      max_samples: undefined,
      eval_strategy: 'no',
      eval_dataset: undefined,
      save_strategy: 'no',
      logging_steps: 1,
      per_device_train_batch_size: 1,
      gradient_accumulation_steps: 1,
      train_type: 'dynamic_reorder',
      component_name: 'r',
      components: { reorders: { r: { params: reorder } } },
      warmup_step: 2,
      update_step: 2,
      update_times: 5,
      train_step: 18,
    }),
  )
}

/** The rows the sidecar trained, step by step, read from each step's label-token count. */
function trainedRows(r: TrainRun<ReorderLine>): number[] {
  const tokens = (r.metrics as unknown as { step: number; tokens: number }[]).map((m) => m.tokens)
  expect(tokens).toHaveLength(18)
  // Every row was trained (the first flex-epoch is one pass): the distinct counts are K shifted by one constant.
  const seen = [...new Set(tokens)].sort((a, b) => a - b)
  const k = [...K].sort((a, b) => a - b)
  expect(seen).toHaveLength(N)
  const c = seen[0]! - k[0]!
  expect(c).toBeGreaterThan(0)
  expect(seen.map((t) => t - c)).toEqual(k)
  return tokens.map((t) => K.indexOf(t - c))
}

/** The decided rows, step by step: the reorder lines' indices in window order (one row per step). */
function decidedRows(r: TrainRun<ReorderLine>): number[] {
  const lines = r.decisions.filter((d) => d.kind === 'reorder')
  let next = 1
  for (const d of lines) {
    expect(d.steps[0]).toBe(next)
    expect(d.indices).toHaveLength(d.steps[1] - d.steps[0] + 1)
    next = d.steps[1] + 1
  }
  return lines.flatMap((d) => d.indices)
}

describe.skipIf(!HAS_PYTHON).concurrent('the trained order, read back from the label-token count of each step', () => {
  it('static sorting by a score file', async () => {
    const dir = tempDir('reorder-readback-static')
    const scores = Float64Array.from({ length: N }, (_, i) => (i * 7) % N)
    writeNpy(join(dir, 'scores.npy'), scores, [N])
    const r = await run(dir, 'static', { kind: 'static', pattern: 'sorting', score_params: { score_path: 'scores.npy' } })
    expectOk(r)
    const trained = trainedRows(r)
    expect(trained).toEqual(decidedRows(r))
    // And the decided order is the sort, read as a stream that wraps after one pass.
    const order = Array.from({ length: N }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!)
    expect(trained).toEqual(Array.from({ length: 18 }, (_, s) => order[s % N]))
  }, 300_000)

  it("dynamic sorting by the model's loss, rescored every interval", async () => {
    const dir = tempDir('reorder-readback-dynamic')
    const r = await run(dir, 'dynamic', { kind: 'dynamic', pattern: 'sorting', score_source: 'model_loss' })
    expectOk(r)
    const trained = trainedRows(r)
    expect(trained).toEqual(decidedRows(r))
    // One pass per flex-epoch: the first 12 steps train every row once.
    expect(new Set(trained.slice(0, N)).size).toBe(N)
  }, 300_000)
})
