/**
 * train_type: dynamic_select. Fast checks of the components config, the registry and the decision plumbing first;
 * then every selector end to end through the real CLI (`node bin/dataflex.mjs train cfg.yaml`) on the tiny model,
 * each run a few steps long.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { Rng } from '../src/math/rng.ts'
import { writeNpy } from '../src/strategies/npy.ts'
import { componentDocs } from '../src/cli/components.ts'
import { resolveComponent } from '../src/strategies/presets.ts'
import { defaultRegistry } from '../src/strategies/registry.ts'
import { defineSelector, type SelectResult } from '../src/strategies/types.ts'
import type { Bridge } from '../src/bridge/index.ts'
import { TrainDriver } from '../src/trainers/driver.ts'
import type { Executor, LoadInfo, PassPlan, StepFlags } from '../src/trainers/executor.ts'
import { RunLog } from '../src/trainers/runlog.ts'
import { runSelect, settleIndices } from '../src/trainers/select.ts'
import { cacheKey, splitInfo, summarizeScores } from '../src/trainers/strategy-runtime.ts'
import { configError, expectOk, fakeConfig, PYTHON, stable, tempDir, tinyConfig, trainCli, writeConfig, type TrainRun } from './support.ts'

const BIN = join(REPO_ROOT, 'bin', 'dataflex.mjs')
const EXAMPLE = join(REPO_ROOT, 'examples', 'strategies', 'fresh_hard.ts')
const HAS_PYTHON = existsSync(PYTHON)

/** The Python DataFlex 1.1.0's shipped src/dataflex/configs/components.yaml, params as shipped. */
const DATAFLEX_COMPONENTS_YAML = `selectors:
  nice:
    name: nice
    params:
      cache_dir: ../dataflex_saves/nice_output
      gradient_type: adam
      proj_dim: 4096
      seed: 123
      save_interval: 16
      reward_model_backend: local_vllm
      reward_backend_params:
        local_vllm:
          gpu_memory_utilization: 0.4
      mc_samples: 4
      max_new_tokens: 512
      generation_temperature: 0.7
      max_prompt_length: 4096
  less:
    name: less
    params:
      cache_dir: ../dataflex_saves/less_output
      gradient_type: adam
      proj_dim: 4096
      seed: 123
      save_interval: 16
  cluster_less:
    name: cluster_less
    params:
      cache_dir: ../dataflex_saves/cluster_less_output
      gradient_type: adam
      proj_dim: 4096
      seed: 42
      save_interval: 16
      cluster_size: 64
      samples_per_cluster: 4
      clustering_batch_size: 8
      clustering_max_iter: 10
      clustering_method: kmeans
      representative_strategy: random
      embedding_model_name_or_path: null
      embedding_model_dtype: auto
      embedding_layer: -1
  loss:
    name: loss
    params:
      cache_dir: ../dataflex_saves/loss_output
      focus: medium
  delta_loss:
    name: delta_loss
    params:
      cache_dir: ../dataflex_saves/delta_loss_output
      window_size: 0.2
  tsds:
    name: tsds
    params:
      probs_path: ./src/dataflex/offline_selector/tsds_probs.npy
      cache_dir: ../dataflex_saves/tsds_output
  near:
    name: near
    params:
      indices_path: ./src/dataflex/offline_selector/top_indices.npy
      cache_dir: ../dataflex_saves/near_output
  random:
    name: random
    params:
      cache_dir: ../dataflex_saves/random_output
      seed: 42
      replacement: false
  custom:
    name: custom
    params:
      cache_dir: ../dataflex_saves/custom_output

mixers:
  random:
    name: random
    params:
      seed: 42
  doremi:
    name: doremi
    params:
      reference_model_path: /path/to/reference_model
      reweight_eta: 0.1
      reweight_eps: 0.01
  static:
    name: static
    params:
      proportions: [0.5, 0.5]
  odm:
    name: odm
    params:
      alpha: 0.9
      warmup_steps: 2000
      reward_scale: 15.0
      min_exploration_rate: 0.03
      initial_proportions: [0.5, 0.5]
  dynamic_moe:
    name: dynamic_moe
    params:
      eta: 10.0
      c: 0.05
      collect_steps: 5
      eval_samples: 1000
      eval_batch_size: 32

weighters:
  loss:
    name: loss
    params:
      strategy: linupper
      delta: 1.0
  adapt:
    name: adapt
    params:
      tau: 1.0
      refresh_interval: 50
      anchor_batch_size: 8
      clip: null
  custom:
    name: custom
    params:
      strategy: uniform
`

describe('components config and registry', () => {
  it('accepts the Python DataFlex components.yaml unchanged: every implemented selector preset validates', async () => {
    const dir = tempDir('components')
    mkdirSync(join(dir, 'configs'))
    writeFileSync(join(dir, 'configs', 'components.yaml'), DATAFLEX_COMPONENTS_YAML)
    // near and tsds read prepared files at the shipped paths, relative to the working directory as in DataFlex.
    mkdirSync(join(dir, 'src', 'dataflex', 'offline_selector'), { recursive: true })
    writeNpy(join(dir, 'src', 'dataflex', 'offline_selector', 'top_indices.npy'), Int32Array.from([0, 1, 2, 3]), [2, 2])
    writeNpy(join(dir, 'src', 'dataflex', 'offline_selector', 'tsds_probs.npy'), Float64Array.from([0.5, 0.5]), [2])
    const registry = defaultRegistry()
    for (const key of ['less', 'cluster_less', 'loss', 'delta_loss', 'tsds', 'near', 'random']) {
      const cfg = fakeConfig(dir, { components_cfg_file: 'configs/components.yaml', component_name: key })
      const r = await resolveComponent(cfg, 'selector', { cwd: dir, registry })
      expect(r.strategy).toBe(key)
      // cache_dir is the preset's cache root, relative to the components file.
      expect(r.cacheRoot).toBe(join(dir, 'dataflex_saves', `${key}_output`))
      expect(r.rawParams).not.toHaveProperty('cache_dir')
    }
    const less = await resolveComponent(fakeConfig(dir, { components_cfg_file: 'configs/components.yaml', component_name: 'less' }), 'selector', { cwd: dir })
    expect(less.params).toMatchObject({ proj_dim: 4096, seed: 123, gradient_type: 'adam' })
    // DataFlex's `custom` is a template to edit; ours loads a file, so the shipped preset asks for one.
    const custom = await configError(resolveComponent(fakeConfig(dir, { components_cfg_file: 'configs/components.yaml', component_name: 'custom' }), 'selector', { cwd: dir }))
    expect(custom.key).toBe('selectors.custom.params.path')
    expect(custom.hint).toContain('docs/authoring.md')
  })

  it('two presets of one algorithm under different keys (less_small, less_big)', async () => {
    const dir = tempDir('presets')
    const components = {
      selectors: {
        less_small: { name: 'less', params: { proj_dim: 256, seed: 1 } },
        less_big: { name: 'less', params: { proj_dim: 8192 } },
      },
    }
    const small = await resolveComponent(fakeConfig(dir, { components, component_name: 'less_small' }), 'selector', { cwd: dir })
    const big = await resolveComponent(fakeConfig(dir, { components, component_name: 'less_big' }), 'selector', { cwd: dir })
    expect([small.key, small.algorithm, small.strategy]).toEqual(['less_small', 'less', 'less'])
    expect(small.params).toMatchObject({ proj_dim: 256, seed: 1 })
    expect(big.params).toMatchObject({ proj_dim: 8192, seed: 42 })
  })

  it('an entry without name: uses its key as the algorithm; inline presets win over the file', async () => {
    const dir = tempDir('inline')
    writeFileSync(join(dir, 'components.yaml'), 'selectors:\n  random:\n    params: {seed: 7}\n')
    const fromFile = await resolveComponent(fakeConfig(dir, { components_cfg_file: 'components.yaml', component_name: 'random' }), 'selector', { cwd: '/' })
    expect(fromFile.params).toEqual({ seed: 7, replacement: false })
    const inline = await resolveComponent(
      fakeConfig(dir, { components_cfg_file: 'components.yaml', component_name: 'random', components: { selectors: { random: { params: { seed: 9 } } } } }),
      'selector',
      { cwd: '/' },
    )
    expect(inline.params).toEqual({ seed: 9, replacement: false })
  })

  it('an unknown param is an error naming the key, with a hint', async () => {
    const dir = tempDir('badparam')
    const components = { selectors: { less_small: { name: 'less', params: { proj_dimm: 256 } } } }
    const err = await configError(resolveComponent(fakeConfig(dir, { components, component_name: 'less_small' }), 'selector', { cwd: dir }))
    expect(err.code).toBe('unknown_key')
    expect(err.key).toBe('selectors.less_small.params.proj_dimm')
    expect(err.hint).toBe("did you mean 'proj_dim'?")
  })

  it('a bad param value is an error naming the key', async () => {
    const dir = tempDir('badvalue')
    const components = { selectors: { l: { name: 'loss', params: { focus: 'meduim' } } } }
    const err = await configError(resolveComponent(fakeConfig(dir, { components, component_name: 'l' }), 'selector', { cwd: dir }))
    expect(err.code).toBe('bad_value')
    expect(err.key).toBe('selectors.l.params.focus')
    expect(err.hint).toBe("did you mean 'medium'?")
  })

  it('an unknown component_name lists the available presets', async () => {
    const dir = tempDir('badname')
    const components = { selectors: { less_small: { name: 'less' }, rand: { name: 'random' } } }
    const err = await configError(resolveComponent(fakeConfig(dir, { components, component_name: 'less_smal' }), 'selector', { cwd: dir }))
    expect(err.key).toBe('component_name')
    expect(err.hint).toContain("did you mean 'less_small'?")
    expect(err.hint).toContain('available selectors: less_small, rand')
  })

  it('an unknown algorithm name lists the registered ones', async () => {
    const dir = tempDir('badalgo')
    const components = { selectors: { x: { name: 'lesss' } } }
    const err = await configError(resolveComponent(fakeConfig(dir, { components, component_name: 'x' }), 'selector', { cwd: dir }))
    expect(err.key).toBe('selectors.x.name')
    expect(err.hint).toBe("did you mean 'less'?")
  })

  it('a missing components file says where it looked', async () => {
    const dir = tempDir('nofile')
    const err = await configError(resolveComponent(fakeConfig(dir, { components_cfg_file: 'nope.yaml', component_name: 'random' }), 'selector', { cwd: dir }))
    expect(err.code).toBe('file_not_found')
    expect(err.key).toBe('components_cfg_file')
  })

  it('an unknown section in a components file is an error with a hint', async () => {
    const dir = tempDir('badsection')
    writeFileSync(join(dir, 'components.yaml'), 'selector:\n  random: {name: random}\n')
    const err = await configError(resolveComponent(fakeConfig(dir, { components_cfg_file: 'components.yaml', component_name: 'random' }), 'selector', { cwd: dir }))
    expect(err.code).toBe('unknown_key')
    expect(err.hint).toBe("did you mean 'selectors'?")
  })

  it('custom loads a TypeScript strategy by path (here found next to the components file) and validates its params', async () => {
    const dir = tempDir('custom')
    mkdirSync(join(dir, 'configs'))
    const path = relative(join(dir, 'configs'), EXAMPLE)
    writeFileSync(join(dir, 'configs', 'components.yaml'), `selectors:\n  fresh:\n    name: custom\n    params: {path: ${path}, pool_factor: 2}\n`)
    const cfg = fakeConfig(dir, { components_cfg_file: 'configs/components.yaml', component_name: 'fresh' })
    const r = await resolveComponent(cfg, 'selector', { cwd: dir })
    expect([r.key, r.algorithm, r.strategy, r.file]).toEqual(['fresh', 'custom', 'fresh_hard', EXAMPLE])
    expect(r.params).toEqual({ pool_factor: 2, novelty: 1 })

    writeFileSync(join(dir, 'configs', 'components.yaml'), `selectors:\n  fresh:\n    name: custom\n    params: {path: ${path}, pool_facter: 2}\n`)
    const err = await configError(resolveComponent(cfg, 'selector', { cwd: dir }))
    expect(err.key).toBe('selectors.fresh.params.pool_facter')
    expect(err.hint).toBe("did you mean 'pool_factor'?")
  })

  it('a custom file that exports no selector is a config error', async () => {
    const dir = tempDir('custombad')
    writeFileSync(join(dir, 'mine.ts'), 'export default { hello: 1 }\n')
    const components = { selectors: { mine: { name: 'custom', params: { path: 'mine.ts' } } } }
    const err = await configError(resolveComponent(fakeConfig(dir, { components, component_name: 'mine' }), 'selector', { cwd: dir }))
    expect(err.message).toContain('must export a selector')
  })

  it('`dataflex components` prints the registry (table and --json)', async () => {
    const run = (args: string[]) => promisify(execFile)(process.execPath, [BIN, 'components', ...args], { cwd: tempDir('components-cli') })
    const table = await run([])
    expect(table.stdout).toContain('selectors (train_type: dynamic_select):')
    expect(table.stdout).toMatch(/^\s+replacement\s+boolean, default false/m)
    const docs = JSON.parse((await run(['--json'])).stdout) as { name: string }[]
    expect(docs.map((d) => d.name)).toContain('custom')
  }, 120_000)

  it('`dataflex components` lists every registered selector with its params', () => {
    const selectors = componentDocs().filter((d) => d.kind === 'selector')
    expect(selectors.map((d) => d.name)).toEqual(expect.arrayContaining(['random', 'loss', 'delta_loss', 'less', 'cluster_less', 'near', 'tsds', 'custom']))
    const random = selectors.find((d) => d.name === 'random')!
    expect(random.params.map((p) => p.name)).toEqual(['seed', 'replacement'])
  })
})

describe('decision plumbing', () => {
  it('settleIndices: exact selections pass through; short ones are topped up deterministically by cycling', () => {
    const exact = settleIndices({ indices: Int32Array.from([3, 1, 2]) }, 3, 10, new Rng(1), 's')
    expect(Array.from(exact.indices)).toEqual([3, 1, 2])
    const a = settleIndices({ indices: Int32Array.from([5, 6, 7]) }, 8, 10, Rng.derive(1, 'topup', 4), 's')
    const b = settleIndices({ indices: Int32Array.from([5, 6, 7]) }, 8, 10, Rng.derive(1, 'topup', 4), 's')
    expect(Array.from(a.indices)).toEqual(Array.from(b.indices))
    expect(a.toppedUp).toBe(5)
    expect(Array.from(a.indices.slice(0, 3))).toEqual([5, 6, 7])
    // Each cycle uses every returned index once before any repeats again.
    expect(Array.from(a.indices.slice(3, 6)).sort()).toEqual([5, 6, 7])
  })

  it('settleIndices: empty, too many, out-of-range, mismatched scores and a bad metric name are errors', () => {
    const rng = new Rng(1)
    expect(() => settleIndices({ indices: new Int32Array(0) }, 4, 10, rng, 's')).toThrow(/no indices/)
    expect(() => settleIndices({ indices: new Int32Array(5) }, 4, 10, rng, 's')).toThrow(/5 indices, 4 requested/)
    expect(() => settleIndices({ indices: Int32Array.from([1, 10]) }, 4, 10, rng, 's')).toThrow(/outside the training set/)
    expect(() => settleIndices({ indices: Int32Array.from([1, 2]), scores: new Float32Array(3) }, 4, 10, rng, 's')).toThrow(/3 scores/)
    for (const metric of ['', 3]) {
      const bad = { indices: Int32Array.from([1, 2]), scores: new Float32Array(2), metric } as unknown as SelectResult
      expect(() => settleIndices(bad, 4, 10, rng, 's')).toThrow(/metric must be a non-empty string/)
    }
  })

  it('score summaries skip non-finite values; timing entries of info are split off', () => {
    expect(summarizeScores(Float64Array.from([1, 2, NaN, 6]))).toEqual({ min: 1, mean: 3, max: 6, non_finite: 1 })
    expect(splitInfo({ method: 'less', timing_ms: { a: 1 }, load_seconds: 2, counts: new Int32Array([1, 2]) })).toEqual({
      info: { method: 'less', counts: [1, 2] },
      timings: { timing_ms: { a: 1 }, load_seconds: 2 },
    })
  })

  it('cache keys change with the model, the data sizes, the strategy params and the seed, and nothing else', () => {
    const dir = tempDir('cachekey')
    const cfg = { ...fakeConfig(dir, { component_name: 'random' }), lf: { model_name_or_path: '/m', dataset: 'a,b', output_dir: '/o1', logging_steps: 1 } }
    const selector = { key: 'random', algorithm: 'random', strategy: 'random', rawParams: { seed: 1 }, file: undefined }
    const key = (over: Partial<Parameters<typeof cacheKey>[0]> = {}): string =>
      cacheKey({ cfg, component: selector, numTrain: 10, numEval: 2, seed: 42, ...over })
    expect(key()).toBe(key())
    expect(key({ cfg: { ...cfg, lf: { ...cfg.lf, output_dir: '/o2', logging_steps: 5 } } })).toBe(key())
    expect(key({ cfg: { ...cfg, lf: { ...cfg.lf, model_name_or_path: '/m2' } } })).not.toBe(key())
    expect(key({ cfg: { ...cfg, lf: { ...cfg.lf, dataset: 'a' } } })).not.toBe(key())
    expect(key({ numTrain: 11 })).not.toBe(key())
    expect(key({ component: { ...selector, rawParams: { seed: 2 } } })).not.toBe(key())
    expect(key({ seed: 43 })).not.toBe(key())
  })
})

// ---------------------------------------------------------------------------------------------------------------
// The select trainer against a fake executor: what it sends, pass by pass.

const LOAD_INFO: LoadInfo = {
  load_seconds: 0,
  stage: 'sft',
  num_train: 40,
  num_eval: 0,
  world_size: 1,
  per_device_train_batch_size: 2,
  gradient_accumulation_steps: 2,
  num_train_epochs: 1.5,
  max_steps: -1,
  dataloader_drop_last: false,
  seed: 42,
  output_dir: '/unused',
  logging_strategy: 'steps',
  logging_steps: 1,
  logging_first_step: false,
  eval_strategy: 'epoch',
  eval_steps: null,
  eval_delay: 0,
  save_strategy: 'no',
  save_steps: 500,
  do_eval: true,
  disable_shuffling: false,
  trainable_params: 1,
  domains: null,
  eval_splits: [],
  frozen_params: 0,
  raw_rows: null,
  dataset_rows: null,
  resume_from_checkpoint: null,
}

interface Sent {
  plans: PassPlan[]
  flags: StepFlags[]
  ends: { log: boolean; evaluate: boolean; save: boolean }[]
  total: number
}

/** Stands in for the sidecar: records what it is sent, and makes the checkpoint folder of each save as it would. */
function fakeExecutor(sent: Sent, outputDir: string): Executor {
  let step = 0
  const checkpoint = (s: number): void => void mkdirSync(join(outputDir, `checkpoint-${s}`), { recursive: true })
  const fake = {
    begin: async (total: number) => ({ total_steps: (sent.total = total), global_step: 0 }),
    beginPass: async (plan: PassPlan) => void sent.plans.push(plan),
    trainSteps: async (n: number, flags: StepFlags) => {
      sent.flags.push(flags)
      for (let k = 0; k < n; k++) if (flags.save[k]) checkpoint(step + k + 1)
      step += n
      const f64 = (v: number) => new Float64Array(n).fill(v)
      return {
        done: n, global_step: step, epoch: 0, loss: f64(1), grad_norm: f64(1), lr: f64(0.1), tokens: new BigInt64Array(n),
        eval_loss: f64(NaN), seconds: f64(0), op_seconds: 0, should_training_stop: false,
      }
    },
    endPass: async (flags: { log: boolean; evaluate: boolean; save: boolean }) => {
      sent.ends.push(flags)
      if (flags.save) checkpoint(step)
      return { eval_loss: null }
    },
    losses: async (_split: string, idx: Int32Array) => Float32Array.from(idx, (i) => i % 7),
    finish: async () => ({ train_loss: 1, global_step: step, eval_loss: null, step_seconds_median: null }),
  }
  return fake as unknown as Executor
}

async function runFake(
  dataflex: Record<string, unknown>,
  selectFn: (ctx: { numSamples: number; step: number }) => Int32Array | SelectResult,
  info: Partial<LoadInfo> = {},
  state?: () => unknown,
): Promise<{ sent: Sent; decisions: Decision[]; dir: string }> {
  const dir = tempDir('select-fake')
  const sent: Sent = { plans: [], flags: [], ends: [], total: 0 }
  const bridge = { on: () => () => {} } as unknown as Bridge
  const runlog = new RunLog(join(dir, 'out'))
  runlog.open()
  const fullInfo = { ...LOAD_INFO, output_dir: join(dir, 'out'), ...info }
  const driver = new TrainDriver(fakeExecutor(sent, fullInfo.output_dir), bridge, fullInfo, runlog, () => {})
  const definition = defineSelector({
    name: 'fake',
    description: 'test',
    params: z.strictObject({}),
    create: () => ({
      select: async (ctx) => {
        const got = selectFn(ctx)
        return got instanceof Int32Array ? { indices: got } : got
      },
      ...(state ? { state } : {}),
    }),
  })
  const cfg = { ...fakeConfig(dir, { warmup_step: 2, update_step: 3, update_times: 2, component_name: 'fake', ...dataflex }), lf: { model_name_or_path: '/m' } }
  const preset = { section: 'selectors' as const, key: 'fake', name: 'fake', params: {}, source: 'test', baseDir: dir, inline: true, warnings: [] }
  const selector = { kind: 'selector' as const, key: 'fake', algorithm: 'fake', strategy: 'fake', definition, params: {}, rawParams: {}, cacheRoot: undefined, file: undefined, preset, inputs: [], warnings: [] }
  await runSelect(driver, cfg, selector, { log: () => {} })
  const decisions = readFileSync(join(dir, 'out', 'dataflex', 'decisions.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Decision)
  return { sent, decisions, dir }
}

const firstN = (ctx: { numSamples: number }) => Int32Array.from({ length: ctx.numSamples }, (_, i) => i)

describe('select trainer (fake executor)', () => {
  it("saves the strategy's state() beside each checkpoint, at its exact step, and at the end", async () => {
    let calls = 0
    const { dir, sent } = await runFake({}, firstN, { save_strategy: 'steps', save_steps: 5 }, () => ({ calls: ++calls }))
    // Windows W 1-2 | S 3-5 | S 6-8 || W 9-10 | S 11-12: checkpoints at steps 5, 10 and 12 (the flow callback saves
    // at the last step too); a run of steps ends at each save, so the state is the one of that very step.
    expect(sent.flags.map((f) => Array.from(f.save))).toEqual([[0, 0], [0, 0, 1], [0, 0, 0], [0, 1], [0, 1]])
    const beside = (s: number) => JSON.parse(readFileSync(join(dir, 'out', `checkpoint-${s}`, 'dataflex_state.json'), 'utf8'))
    expect([5, 10, 12].map((s) => [beside(s).step, beside(s).trainer])).toEqual([
      [5, { selections: 1, instance: { calls: 1 } }],
      [10, { selections: 2, instance: { calls: 2 } }],
      [12, { selections: 3, instance: { calls: 3 } }],
    ])
    // The window each fell in and its plan: what a resume trains the rest of.
    expect(beside(5)).toMatchObject({ window: 1, plan_first_step: 3, plan: { step_sizes: [2, 2, 2] } })
    const written = JSON.parse(readFileSync(join(dir, 'out', 'dataflex', 'state', 'fake.json'), 'utf8'))
    expect(written).toEqual({ step: 12, kind: 'selector', strategy: 'fake', state: { calls: 4 } })
  })

  it('one pass per window: micro-batches of b, steps of GA, the flex-epoch position, epoch-end events', async () => {
    const { sent, decisions } = await runFake({}, firstN)
    // W=2, U=3, T=2 → E=8; 1.5 epochs → 12 steps: W 1-2 | S 3-5 | S 6-8 || W 9-10 | S 11-12
    expect(sent.total).toBe(12)
    expect(sent.plans.map((p) => p.stepSizes.length)).toEqual([2, 3, 3, 2, 2])
    expect(sent.plans.map((p) => p.epoch)).toEqual([0, 0, 0, 1, 1])
    expect(sent.plans.map((p) => p.microDone ?? 0)).toEqual([0, 4, 10, 0, 4])
    for (const p of sent.plans) {
      expect(p.microInEpoch).toBe(16)
      expect(Array.from(p.stepSizes).every((s) => s === 2)).toBe(true)
      expect(Array.from(p.microSizes).every((s) => s === 2)).toBe(true)
    }
    // eval_strategy epoch: evaluate when a flex-epoch (or the run) ends.
    expect(sent.ends.map((e) => e.evaluate)).toEqual([false, false, true, false, true])
    expect(decisions.map((d) => `${d.kind}@${d.step}`)).toEqual(['plan@0', 'select@2', 'select@5', 'plan@8', 'select@10'])
    // The window trains a shuffle of exactly the selected indices.
    const selected = decisions[1]!.indices!
    expect(Array.from(sent.plans[1]!.indices).sort((a, b) => a - b)).toEqual([...selected].sort((a, b) => a - b))
    expect(Array.from(sent.plans[1]!.indices)).not.toEqual(selected)
  })

  it('disable_shuffling keeps the selector order', async () => {
    const { sent, decisions } = await runFake({}, firstN, { disable_shuffling: true })
    expect(Array.from(sent.plans[1]!.indices)).toEqual(decisions[1]!.indices)
  })

  it('a short selection is topped up and logged; a bad index fails the run', async () => {
    const { sent, decisions } = await runFake({ warmup_step: 0 }, () => Int32Array.from([5, 6, 7]))
    expect(decisions[0]).toMatchObject({ step: 0, kind: 'select', count: 12, returned: 3, topped_up: 9 })
    expect(new Set(sent.plans[0]!.indices)).toEqual(new Set([5, 6, 7]))
    await expect(runFake({}, () => Int32Array.from([99]))).rejects.toThrow(/outside the training set/)
  })

  it("a selection with scores is saved as step_<N>.json (its own indices, metric.<selector's metric>), named by the decision line", async () => {
    // Three rows per selection (then topped up), scores 10·row + step; metric 'loss' except at step 10 (unnamed).
    const pick = (ctx: { step: number }) => Int32Array.from([ctx.step, ctx.step + 1, ctx.step + 7])
    const { decisions, dir } = await runFake({}, (ctx) => {
      const indices = pick(ctx)
      return { indices, scores: Float64Array.from(indices, (r) => 10 * r + ctx.step), ...(ctx.step === 10 ? {} : { metric: 'loss' }) }
    })
    const selections = join(dir, 'out', 'dataflex', 'selections')
    expect(readdirSync(selections).sort()).toEqual(['step_10.json', 'step_2.json', 'step_5.json'])
    for (const d of decisions.filter((x) => x.kind === 'select')) {
      const indices = Array.from(pick(d))
      const metric = d.step === 10 ? 'score' : 'loss'
      expect(d['scores_file']).toBe(join('dataflex', 'selections', `step_${d.step}.json`))
      expect(d['returned']).toBe(3)
      const file = JSON.parse(readFileSync(join(dir, 'out', d['scores_file'] as string), 'utf8'))
      expect(file).toEqual({ indices, metric: { [metric]: indices.map((r) => 10 * r + d.step) }, computed_at_step: d.step, strategy: 'fake', component: 'fake' })
    }
    expect(decisions.filter((x) => x.kind === 'plan').every((d) => !('scores_file' in d))).toBe(true)
  })

  it('a selection without scores writes no file; a fresh run clears the selections of the last one', async () => {
    const { decisions, dir } = await runFake({}, firstN)
    expect(decisions.every((d) => !('scores_file' in d))).toBe(true)
    expect(existsSync(join(dir, 'out', 'dataflex', 'selections'))).toBe(false)
    const stale = join(dir, 'again', 'dataflex', 'selections')
    mkdirSync(stale, { recursive: true })
    writeFileSync(join(stale, 'step_99.json'), '{}')
    new RunLog(join(dir, 'again')).open()
    expect(existsSync(stale)).toBe(false)
  })

  it('the same seed gives the same plans; another seed other warm-up draws', async () => {
    const a = await runFake({}, firstN)
    const b = await runFake({}, firstN)
    const c = await runFake({}, firstN, { seed: 7 })
    expect(a.sent.plans.map((p) => Array.from(p.indices))).toEqual(b.sent.plans.map((p) => Array.from(p.indices)))
    expect(a.decisions.map(stable)).toEqual(b.decisions.map(stable))
    expect(a.decisions[0]!.hash).not.toBe(c.decisions[0]!.hash)
  })
})

// ---------------------------------------------------------------------------------------------------------------
// End to end through the CLI on the tiny model.

interface Decision {
  step: number
  kind: string
  strategy: string
  flex_epoch?: number
  update?: number
  steps: [number, number]
  count: number
  hash: string
  indices?: number[]
  scores?: { min: number; mean: number; max: number }
  [key: string]: unknown
}

type CliRun = TrainRun<Decision>

const SMALL = { eval_strategy: 'no', save_steps: 1000, logging_steps: 1 }

async function train(dir: string, name: string, extra: Record<string, unknown>, components?: string): Promise<CliRun> {
  if (components !== undefined) writeFileSync(join(dir, `${name}-components.yaml`), components)
  return trainCli<Decision>(dir, name, (out) =>
    tinyConfig(out, {
      ...SMALL,
      train_type: 'dynamic_select',
      ...(components !== undefined ? { components_cfg_file: join(dir, `${name}-components.yaml`) } : {}),
      ...extra,
    }),
  )
}

/** Selections are B_g × steps long, in range, logged in full (small runs). */
function checkSelections(r: CliRun, strategy: string, numTrain = 52): Decision[] {
  const selects = r.decisions.filter((d) => d.kind === 'select')
  expect(selects.length).toBeGreaterThan(0)
  for (const d of selects) {
    expect(d.strategy).toBe(strategy)
    expect(d.count).toBe(8 * (d.steps[1] - d.steps[0] + 1))
    expect(d.indices!.length).toBe(d.count)
    for (const i of d.indices!) expect(i >= 0 && i < numTrain).toBe(true)
    expect(d.hash).toMatch(/^[0-9a-f]{16}$/)
  }
  return selects
}

describe.skipIf(!HAS_PYTHON).concurrent('dataflex train with train_type: dynamic_select', () => {
  it('random from a Python DataFlex components.yaml: flex-epochs, fresh warm-up sets, the preset cache root', async () => {
    const dir = tempDir('sel-random')
    mkdirSync(join(dir, 'configs'))
    writeFileSync(join(dir, 'configs', 'components.yaml'), DATAFLEX_COMPONENTS_YAML)
    const r = await train(dir, 'random', {
      components_cfg_file: 'configs/components.yaml',
      component_name: 'random',
      warmup_step: 1,
      update_step: 1,
      update_times: 2,
      num_train_epochs: 2,
    })
    expectOk(r)
    expect(r.decisions.map((d) => `${d.kind === 'plan' ? 'W' : 'S'}@${d.step}:${d.steps.join('-')}`)).toEqual([
      'W@0:1-1',
      'S@1:2-2',
      'S@2:3-3',
      'W@3:4-4',
      'S@4:5-5',
      'S@5:6-6',
    ])
    const warm = r.decisions.filter((d) => d.kind === 'plan')
    expect(warm[0]!.hash).not.toBe(warm[1]!.hash)
    checkSelections(r, 'random')
    expect(r.metrics.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6])
    // state.epoch counts flex-epochs.
    expect(r.metrics.map((m) => m.epoch)).toEqual([1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2].map((e) => expect.closeTo(e, 9)))
    const root = join(dir, 'dataflex_saves', 'random_output', 'random')
    expect(readdirSync(root)).toHaveLength(1)
    expect(r.stdout).toContain('done: 6 steps')
  }, 240_000)

  it('custom strategy file, warmup_step 0, same seed → identical decisions', async () => {
    const dir = tempDir('sel-custom')
    const components = `selectors:\n  fresh:\n    name: custom\n    params:\n      path: ${EXAMPLE}\n      pool_factor: 2\n`
    const extra = { component_name: 'fresh', warmup_step: 0, update_step: 1, update_times: 3, train_step: 3 }
    const [a, b] = await Promise.all([train(dir, 'a', extra, components), train(dir, 'b', extra, components)])
    expectOk(a)
    expectOk(b)
    // The first selection happens before step 1, on the initial model.
    expect(a.decisions[0]).toMatchObject({ step: 0, kind: 'select', strategy: 'fresh_hard', steps: [1, 1] })
    const selects = checkSelections(a, 'fresh_hard')
    expect(selects).toHaveLength(3)
    for (const d of selects) expect(d.scores!.max).toBeGreaterThanOrEqual(d.scores!.min)
    expect(a.decisions.map(stable)).toEqual(b.decisions.map(stable))
    expect(a.metrics.map((m) => m.loss)).toEqual(b.metrics.map((m) => m.loss))
  }, 240_000)

  it('an unknown param exits 2 with a hint, before any model is loaded', async () => {
    const dir = tempDir('sel-badparam')
    const r = await train(dir, 'bad', {
      component_name: 'random',
      update_step: 1,
      components: { selectors: { random: { params: { replacment: true } } } },
    })
    expect(r.code).toBe(2)
    expect(r.stderr).toContain("unknown param 'replacment'")
    expect(r.stderr).toContain("did you mean 'replacement'?")
    expect(existsSync(r.out)).toBe(false)
  }, 180_000)

  // One small run per built-in selector (fed through the components file or inline, as users write them).
  const N = 52
  const builtin: [string, (dir: string) => Record<string, unknown>][] = [
    ['loss', () => ({ focus: 'high' })],
    ['delta_loss', () => ({ window_size: 0.3 })],
    ['less', () => ({ proj_dim: 64 })],
    ['cluster_less', () => ({ proj_dim: 64, cluster_size: 8, samples_per_cluster: 2, clustering_max_iter: 5 })],
    [
      'near',
      (dir) => {
        // 4 queries × 12 neighbours, nearest first.
        const rng = new Rng(5)
        writeNpy(join(dir, 'top_indices.npy'), Int32Array.from({ length: 48 }, () => rng.int(N)), [4, 12])
        return { indices_path: 'top_indices.npy' }
      },
    ],
    [
      'tsds',
      (dir) => {
        writeNpy(join(dir, 'tsds_probs.npy'), Float64Array.from({ length: N }, (_, i) => (i % 3 === 0 ? 0 : 1 + (i % 5))), [N])
        return { probs_path: 'tsds_probs.npy' }
      },
    ],
  ]
  for (const [name, params] of builtin) {
    it(`${name} end to end`, async () => {
      const dir = tempDir(`sel-${name}`)
      const components = { selectors: { [`${name}_preset`]: { name, params: params(dir) } } }
      const r = await train(dir, name, { component_name: `${name}_preset`, components, warmup_step: 1, update_step: 1, update_times: 2, train_step: 3 })
      expectOk(r)
      const selects = checkSelections(r, name, N)
      expect(selects.map((d) => d.step)).toEqual([1, 2])
      expect(r.metrics).toHaveLength(3)
      if (name === 'tsds') for (const d of selects) for (const i of d.indices!) expect(i % 3).not.toBe(0)
      if (name === 'near') {
        // The run log says where the input file was found (the run's working directory is the config's folder).
        const select = JSON.parse(readFileSync(join(r.out, 'dataflex', 'select.json'), 'utf8')) as { inputs: unknown[] }
        expect(select.inputs).toEqual([{ param: 'indices_path', written: 'top_indices.npy', path: join(dir, 'top_indices.npy'), from: 'working directory' }])
        expect(r.stderr).toContain(`[near_preset] indices_path 'top_indices.npy' → ${join(dir, 'top_indices.npy')} (found from the working directory)`)
      }
    }, 240_000)
  }
})
