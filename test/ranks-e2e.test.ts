/**
 * `dataflex train` on two CPU ranks (NPROC_PER_NODE=2: torchrun with gloo), as users launch it: every trainer family
 * completes and both ranks' op journals are identical (every decision is made once, in TypeScript, and every rank
 * applies the same one). For static, select and weight runs, a run on 2 ranks × 2 rows also trains as a run on
 * 1 rank × 4 rows (the same global batch): same plan, same decisions, losses and grad norms within float tolerance.
 * (Mix, reorder and lego runs matched too when checked the same way; CI keeps one-rank twins for three families only,
 * to stay within its time budget.)
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { masterPort } from '../src/bridge/launch.ts'
import { expectAllClose, expectClose } from './close.ts'
import { DEMO_DATA, expectOk, PYTHON, stable, tempDir, tinyConfig, trainCli, type TrainRun } from './support.ts'

const HAS_PYTHON = existsSync(PYTHON)
const LIMIT = 300_000
const TWO = { NPROC_PER_NODE: '2' }
const COMPONENTS = join(DEMO_DATA, '..', '..', 'configs', 'components.yaml')

/** No dropout (each rank draws its own masks), no eval, no checkpoints; GA 2. */
function base(out: string, perDevice: number, extra: Record<string, unknown>): Record<string, unknown> {
  return tinyConfig(out, {
    lora_dropout: 0,
    eval_strategy: 'no',
    eval_dataset: undefined,
    save_strategy: 'no',
    per_device_train_batch_size: perDevice,
    components_cfg_file: COMPONENTS,
    ...extra,
  })
}

/** The run on 2 ranks × 2 rows. */
function onTwo(name: string, extra: Record<string, unknown>): Promise<TrainRun> {
  return trainCli(tempDir(`ranks-${name}`), `${name}-2`, (out) => base(out, 2, extra), LIMIT, [], TWO)
}

/** The same run twice: 2 ranks × 2 rows, and 1 rank × 4 rows. */
async function pair(name: string, extra: Record<string, unknown>): Promise<[TrainRun, TrainRun]> {
  const dir = tempDir(`ranks-${name}`)
  const two = await trainCli(dir, `${name}-2`, (out) => base(out, 2, extra), LIMIT, [], TWO)
  const one = await trainCli(dir, `${name}-1`, (out) => base(out, 4, extra), LIMIT)
  return [two, one]
}

function journals(out: string): string[] {
  return [0, 1].map((rank) => readFileSync(join(out, 'dataflex', 'ranks', `rank-${rank}.jsonl`), 'utf8'))
}

/**
 * Decisions equal as values: rows, counts and hashes exactly; the floats they log (scores, weights, losses measured
 * by the model) within float32 tolerance, since two ranks sum each batch in another order.
 */
function expectSameDecisions(a: unknown, b: unknown, path: string): void {
  if (typeof b === 'number' && typeof a === 'number' && !(Number.isInteger(a) && Number.isInteger(b))) {
    expectClose(a, b, { rel: 1e-4, scale: 1e-6 }, path)
  } else if (Array.isArray(b)) {
    expect(Array.isArray(a) && a.length, `${path}: length`).toBe(b.length)
    b.forEach((v, i) => expectSameDecisions((a as unknown[])[i], v, `${path}[${i}]`))
  } else if (typeof b === 'object' && b !== null) {
    expect(Object.keys(a as object).sort(), `${path}: keys`).toEqual(Object.keys(b).sort())
    for (const [k, v] of Object.entries(b)) expectSameDecisions((a as Record<string, unknown>)[k], v, `${path}.${k}`)
  } else {
    expect(a, path).toEqual(b)
  }
}

/** A 2-rank run that completed on 2 ranks, both of which ran the same ops on the same args. */
function expectRanksAgree(two: TrainRun): void {
  expectOk(two)
  expect(readFileSync(join(two.out, 'dataflex', 'sidecar.log'), 'utf8')).toContain('world size: 2')
  const [r0, r1] = journals(two.out)
  expect(r0).toBe(r1)
  const ops = r0!.trim().split('\n').map((l) => (JSON.parse(l) as { op: string }).op)
  expect(ops).toContain('train_steps')
  expect(ops.at(-1)).toBe('finish')
}

function expectSameRun(two: TrainRun, one: TrainRun): void {
  expectRanksAgree(two)
  expectOk(one)
  expectSameDecisions(two.decisions.map(stable), one.decisions.map(stable), 'decisions')
  expect(two.metrics.map((m) => m.step)).toEqual(one.metrics.map((m) => m.step))
  expectAllClose(two.metrics.map((m) => m.loss), one.metrics.map((m) => m.loss), { rel: 1e-5 }, 'loss')
  expectAllClose(two.metrics.map((m) => m.grad_norm ?? 0), one.metrics.map((m) => m.grad_norm ?? 0), { rel: 1e-4 }, 'grad_norm')
}

describe.skipIf(!HAS_PYTHON)('dataflex train on two ranks (torchrun, gloo)', () => {
  it('static: the plan, losses and grad norms of one rank with the same global batch', async () => {
    const [two, one] = await pair('static', { max_steps: 6 })
    expectSameRun(two, one)
    expect(two.metrics).toHaveLength(6)
  }, LIMIT)

  it('dynamic_select (loss selector)', async () => {
    const [two, one] = await pair('select', {
      train_type: 'dynamic_select', component_name: 'loss', warmup_step: 1, update_step: 2, update_times: 2,
    })
    expectSameRun(two, one)
    expect(two.decisions.some((d) => d['kind'] === 'select')).toBe(true)
  }, LIMIT)

  it('dynamic_mix (odm), with per-domain losses from the training forward', async () => {
    const two = await onTwo('mix', {
      dataset: 'arith_clean,arith_noisy,string_ops,facts', max_samples: 16, train_type: 'dynamic_mix',
      component_name: 'odm', warmup_step: 1, update_step: 2, update_times: 2,
    })
    expectRanksAgree(two)
    expect(two.decisions.filter((d) => d['kind'] === 'mix')).toHaveLength(2)
  }, LIMIT)

  it('dynamic_weight (loss weighter: weights asked once per global micro-batch, from rank 0)', async () => {
    const [two, one] = await pair('weight', { train_type: 'dynamic_weight', component_name: 'loss', warmup_step: 2, max_steps: 5 })
    expectSameRun(two, one)
    expect(two.decisions.filter((d) => d['kind'] === 'weight').length).toBeGreaterThan(0)
  }, LIMIT)

  it('dynamic_reorder (dynamic folding, rescored by model loss)', async () => {
    const two = await onTwo('reorder', {
      train_type: 'dynamic_reorder', component_name: 'dynamic_folding', warmup_step: 1, update_step: 2, update_times: 2, train_step: 5,
    })
    expectRanksAgree(two)
  }, LIMIT)

  it('dynamic_lego (select, reorder and weight stages)', async () => {
    const stages = [
      { family: 'selector', component: 'loss', mode: 'filter', keep_ratio: 0.5, warmup_step: 1, every: 2 },
      { family: 'reorder', component: 'dynamic_saw', every: 2 },
      { family: 'weighter', component: 'loss', warmup_step: 2 },
    ]
    const two = await onTwo('lego', {
      train_type: 'dynamic_lego', component_name: 'p', components: { pipelines: { p: { params: { stages, score_batch_size: 8 } } } },
      warmup_step: 1, update_step: 2, update_times: 2,
    })
    expectRanksAgree(two)
  }, LIMIT)

  it('two nodes of one rank each (NNODES=2, NODE_RANK 0 and 1): node 1 follows node 0 and both end cleanly', async () => {
    const dir = tempDir('ranks-nodes')
    const out = join(dir, 'shared-out') // one output_dir, as on a shared file system
    const port = await masterPort({ nprocPerNode: 1, nnodes: 1, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: undefined })
    // DATAFLEX_DEBUG: a failing node's error then carries its sidecar's last lines.
    const env = (rank: number) => ({ NNODES: '2', NODE_RANK: String(rank), NPROC_PER_NODE: '1', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), DATAFLEX_DEBUG: '1' })
    const [node0, node1] = await Promise.all(
      [0, 1].map((rank) => trainCli(dir, `node${rank}`, () => base(out, 2, { max_steps: 3 }), LIMIT, [], env(rank))),
    )
    expectOk(node0!)
    expectOk(node1!)
    expect(node1!.stderr).toContain('node 1 of 2')
    const [r0, r1] = journals(out)
    expect(r0).toBe(r1)
    expect(readFileSync(join(out, 'dataflex', 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(3)
  }, LIMIT)
})
