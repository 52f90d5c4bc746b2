/**
 * The op catalog against the real sidecar and the tiny model: the sidecar answers exactly the catalog's ops; each
 * op's example args, sent in a valid order, get a result that parses with the catalog's (strict) result schema;
 * and args that break the schema are answered `bad_args` naming the op and the arg, before any handler runs.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RemoteError, startBridge, type Bridge } from '../src/bridge/index.ts'
import { OP_NAMES, OPS, OpClient, type OpArgs, type SidecarOpName } from '../src/bridge/ops.ts'
import { TINY_MODEL, TINY_MOE_MODEL, runPython, tempDir, tinyConfig } from './support.ts'

const BUILT_IN = ['cancel', 'echo', 'hello', 'ping', 'shutdown', 'sleep']

let bridge: Bridge
// A second sidecar (one run each) with a LoRA run on the mixture-of-experts model, for router_loads.
let moeBridge: Bridge
let dir = ''
let rewardModel = ''

beforeAll(async () => {
  dir = tempDir('ops-contract')
  rewardModel = join(dir, 'reward')
  const built = runPython(['-m', 'dataflex_bridge.tools.make_tiny_model', '--out', rewardModel, '--data', 'data/demo', '--head', 'seqcls'])
  const options = { readyTimeoutMs: 120_000, helloTimeoutMs: 120_000 }
  ;[bridge, moeBridge] = await Promise.all([startBridge(options), startBridge(options)])
  await built
}, 240_000)

afterAll(async () => {
  await Promise.all([bridge?.close(), moeBridge?.close()])
})

async function remoteError(op: string, args: Record<string, unknown>): Promise<RemoteError> {
  const err = await bridge.request(op, args).catch((e: unknown) => e)
  expect(err).toBeInstanceOf(RemoteError)
  return err as RemoteError
}

describe('op catalog contract', () => {
  it('the sidecar answers exactly the catalog ops', () => {
    expect(bridge.info.executor).toEqual({ status: 'loaded', error: null })
    const executorOps = bridge.info.ops.filter((op) => !BUILT_IN.includes(op)).sort()
    const catalogOps = OP_NAMES.filter((name) => OPS[name].direction === 'to_sidecar').sort()
    expect(executorOps).toEqual(catalogOps)
  })

  it('answers args that break the schema with bad_args naming the op and the arg', async () => {
    const indices = new Int32Array(2)
    // Every case would fail in its handler too (no run is loaded yet): validation comes first.
    const cases: [op: string, args: Record<string, unknown>, arg: string, says: string][] = [
      ['gradients', { ...OPS.gradients.args.parse(OPS.gradients.example), proj_dim: 'many' }, 'proj_dim', 'expected integer'],
      ['losses', { split: 'train' }, 'indices', 'required but missing'],
      ['embeddings', { split: 'train', indices, layer: -1, pooling: 'mask_mean', normalize: false, rows: 3 }, 'rows', 'unknown key'],
      ['losses', { split: 'train', indices: new Float64Array(2) }, 'indices', 'expected a 1-D int32 array'],
      ['end_pass', { log: 1, evaluate: false, save: false }, 'log', 'expected boolean'],
      ['load', { config: ['model_name_or_path'], freeze_gate: false, dataset_rows: false }, 'config', 'expected object'],
    ]
    for (const [op, args, arg, says] of cases) {
      const err = await remoteError(op, args)
      expect(err.code).toBe('bad_args')
      expect(err.message).toContain(`invalid args for '${op}': ${arg}: ${says}`)
    }
    // The same checks let valid-but-early requests through to the handler.
    expect((await remoteError('finish', {})).code).toBe('bad_state')
  })

  it("every op's example, in a valid order, gets a result the catalog parses", async () => {
    const ops = new OpClient(bridge)
    const moeOps = new OpClient(moeBridge)
    const moeConfig = tinyConfig(join(dir, 'moe'), { model_name_or_path: TINY_MOE_MODEL, eval_strategy: 'no' })
    const moeLoad = await moeOps.call('load', { config: moeConfig, freeze_gate: true })
    expect(moeLoad.frozen_params).toBeGreaterThan(0) // the routers' LoRA matrices
    // Paths the catalog cannot know: a run folder of this test, the reward model built above, a reference model.
    const overrides: Partial<{ [N in SidecarOpName]: Partial<OpArgs<N>> }> = {
      // A mix run, so load's per-domain report and a named eval split cross the wire too.
      load: { config: tinyConfig(join(dir, 'out'), { save_steps: 1000 }), domains: { eval_sets: ['facts_eval'] } },
      losses: { split: 'eval:facts_eval' },
      begin_pass: { reference_model: TINY_MODEL },
      reward: { model: rewardModel },
    }
    const order: SidecarOpName[] = [
      'load', 'sample_order', 'begin', 'begin_pass', 'train_steps', 'end_pass', 'losses', 'gradients', 'embeddings',
      'router_loads', 'evaluate', 'save_checkpoint', 'generate', 'reward', 'policy_gradients', 'request_stop', 'finish',
    ]
    expect([...order].sort()).toEqual(OP_NAMES.filter((n) => OPS[n].direction === 'to_sidecar').sort())
    const results: Record<string, unknown> = {}
    for (const name of order) {
      // OpClient parses the result with the catalog's strict schema: a missing, extra or mistyped field rejects.
      const client = name === 'router_loads' ? moeOps : ops
      results[name] = await client.call(name, { ...OPS[name].example, ...overrides[name] } as never)
    }
    const load = results.load as {
      num_train: number
      trainable_params: number
      domains: { names: string[]; domain_of_row: Int32Array } | null
      eval_splits: unknown[]
    }
    expect(load.num_train).toBeGreaterThan(0)
    expect(load.trainable_params).toBeGreaterThan(0)
    expect(load.domains?.names).toEqual(['arith_clean', 'facts'])
    expect(load.domains?.domain_of_row).toBeInstanceOf(Int32Array)
    expect(load.domains?.domain_of_row.length).toBe(load.num_train)
    expect(load.eval_splits).toEqual([{ name: 'facts_eval', rows: 24 }])
    const trained = results.train_steps as { done: number; global_step: number; sample_excess_sum?: Float32Array }
    expect(trained).toMatchObject({ done: 1, global_step: 1 })
    expect(trained.sample_excess_sum?.length).toBe(4)
    const routed = results.router_loads as { loads: { shape: number[] }; layers: number; experts: number; top_k: number }
    expect(routed).toMatchObject({ layers: 2, experts: 4, top_k: 2 })
    expect(routed.loads.shape).toEqual([2, 8])
    expect((results.gradients as { grads: { shape: number[] } }).grads.shape).toEqual([3, 32])
    expect((results.policy_gradients as { grads: { shape: number[] } }).grads.shape).toEqual([1, 32])
    expect((results.reward as { rewards: Float32Array }).rewards.length).toBe(2)
    expect((results.finish as { global_step: number }).global_step).toBe(1)
  }, 300_000)
})
