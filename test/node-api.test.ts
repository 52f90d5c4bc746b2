/**
 * The Node API (src/index.ts, docs/node-api.md) on real tiny runs: train()'s events in order and as the run's files
 * hold them, the async iterator, stop() (between calls and mid-call, through the sidecar), a config error; the
 * example script as a subprocess; and a separate project that imports the built library (dist/lib) by its package
 * name and type-checks against its declarations.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { beforeAll, describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { CONFIG_OBJECT, loadConfig, loadConfigObject } from '../src/config/index.ts'
import { ConfigError, train, type TrainEvent, type TrainEventType } from '../src/index.ts'
import { lastCompleteCheckpoint, STATE_FILE } from '../src/trainers/resume.ts'
import { DEMO_DATA, tempDir, tinyConfig, writeConfig } from './support.ts'

const run = promisify(execFile)

function jsonl<T = Record<string, unknown>>(file: string): T[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as T)
}

/** Every event of `handle` through `on` (in call order), and separately through `for await`. */
function record(handle: ReturnType<typeof train>): { heard: TrainEvent[]; iterated: Promise<TrainEvent[]> } {
  const heard: TrainEvent[] = []
  const types: TrainEventType[] = ['progress', 'step', 'log', 'decision', 'eval', 'checkpoint', 'error', 'done']
  for (const t of types) handle.on(t, (e) => void heard.push(e))
  const iterated = (async () => {
    const seen: TrainEvent[] = []
    for await (const e of handle) seen.push(e)
    return seen
  })()
  return { heard, iterated }
}

const of = <K extends TrainEventType>(events: TrainEvent[], type: K) => events.filter((e): e is Extract<TrainEvent, { type: K }> => e.type === type)

beforeAll(async () => {
  // What `import 'dataflex-ts'` loads (skipped while its inputs are unchanged).
  await run(process.execPath, [join(REPO_ROOT, 'scripts', 'build-lib.mjs'), '--quiet'], { cwd: REPO_ROOT, timeout: 120_000 })
}, 150_000)

describe('a config object', () => {
  const opts = { python: false as const, cwd: DEMO_DATA, onWarning: () => undefined }
  const base = (): Record<string, unknown> => ({
    ...tinyConfig('out'),
    train_type: 'dynamic_select',
    component_name: 'mine',
    update_step: 2,
    components: { selectors: { mine: { name: 'loss', params: {} } } },
  })

  it('loads as the YAML file with the same keys does; object overrides set dotted keys and merge mappings', async () => {
    const dir = tempDir('api-object')
    const overrides = { learning_rate: 1e-4, 'components.selectors.mine.params': { batch_size: 4 }, warmup_step: 3 }
    const fromFile = await loadConfig(writeConfig(dir, 'cfg.yaml', base()), ['learning_rate=1e-4', 'components.selectors.mine.params={batch_size: 4}', 'warmup_step=3'], opts)
    const given = base()
    const frozen = JSON.stringify(given)
    const fromObject = await loadConfigObject(given, overrides, opts)
    expect(fromObject).toEqual({ ...fromFile, path: join(DEMO_DATA, CONFIG_OBJECT) })
    expect(fromObject.lf['learning_rate']).toBe(1e-4)
    expect(fromObject.dataflex.warmup_step).toBe(3)
    expect(JSON.stringify(given)).toBe(frozen) // the caller's object is copied, not changed
    // `undefined` members are left out, as JSON leaves them.
    expect((await loadConfigObject({ ...base(), eval_dataset: undefined }, [], opts)).lf).not.toHaveProperty('eval_dataset')
  })

  it('names the object or the override in its messages', async () => {
    await expect(loadConfigObject({ ...base(), warmup_step: -1 }, [], opts)).rejects.toThrow(`bad value for 'warmup_step' (${CONFIG_OBJECT}): -1`)
    await expect(loadConfigObject(base(), { update_step: 0 }, opts)).rejects.toThrow("(override 'update_step=0')")
    await expect(loadConfigObject(base(), { 'a..b': 1 }, opts)).rejects.toThrow("override 'a..b=1' has an empty key segment")
    await expect(loadConfigObject({ ...base(), lora_target: [new Date(0)] }, [], opts)).rejects.toThrow("bad value for 'lora_target[0]' (<config object>): a Date")
  })
})

describe('train()', () => {
  it("reports a run's steps, decisions, evaluations and checkpoints in order, as its files hold them, and ends with done", async () => {
    const out = join(tempDir('api-events'), 'out')
    // 52 samples, 8 per step: 7 steps; evaluations and checkpoints every 2.
    const handle = train(tinyConfig(out), { num_train_epochs: 1, eval_steps: 2, save_steps: 2 })
    const { heard, iterated } = record(handle)
    const summary = await handle.result
    const events = await iterated

    expect(events).toEqual(heard) // the iterator started with the run: it saw every event, in the same order
    expect(events.at(-1)).toEqual({ type: 'done', status: 'completed', summary })
    expect(of(events, 'done')).toHaveLength(1)
    expect(summary).toMatchObject({ status: 'completed', steps: 7, outputDir: out })

    const steps = of(events, 'step')
    expect(steps.map((e) => e.step)).toEqual([1, 2, 3, 4, 5, 6, 7])
    expect(steps.every((e) => e.totalSteps === 7)).toBe(true)
    const metrics = jsonl<{ step: number; epoch: number; loss: number; grad_norm: number | null; lr: number; tokens: number; eval_loss?: number }>(join(out, 'dataflex', 'metrics.jsonl'))
    expect(steps).toEqual(
      metrics.map((m) => ({ type: 'step', step: m.step, totalSteps: 7, epoch: m.epoch, loss: m.loss, gradNorm: m.grad_norm, lr: m.lr, tokens: m.tokens, ...(m.eval_loss === undefined ? {} : { evalLoss: m.eval_loss }) })),
    )
    expect(of(events, 'decision').map((e) => e.decision)).toEqual(jsonl(join(out, 'dataflex', 'decisions.jsonl')))

    const evals = of(events, 'eval')
    expect(evals.filter((e) => e.at === 'step')).toEqual(metrics.filter((m) => m.eval_loss !== undefined).map((m) => ({ type: 'eval', step: m.step, evalLoss: m.eval_loss, at: 'step' })))
    expect(evals.filter((e) => e.at === 'step').map((e) => e.step)).toEqual([2, 4, 6])
    expect(evals.at(-1)).toMatchObject({ at: 'final', step: 7, evalLoss: summary.evalLoss })

    const checkpoints = of(events, 'checkpoint')
    // save_steps, and the last step (Hugging Face's flow saves at max_steps).
    expect(checkpoints).toEqual([2, 4, 6, 7].map((step) => ({ type: 'checkpoint', step, path: join(out, `checkpoint-${step}`) })))
    for (const c of checkpoints) expect(existsSync(join(c.path, STATE_FILE))).toBe(true)
    // Each checkpoint is told after its step and before the next step.
    const order = events.filter((e) => e.type === 'step' || e.type === 'checkpoint').map((e) => `${e.type}:${(e as { step: number }).step}`)
    expect(order.slice(0, 4)).toEqual(['step:1', 'step:2', 'checkpoint:2', 'step:3'])

    // An iterator started after the end gets the done event alone.
    const late: TrainEvent[] = []
    for await (const e of handle) late.push(e)
    expect(late).toEqual([events.at(-1)])
  }, 240_000)

  it('stop() ends training after the step in progress, also mid-call; the run finishes and its output dir stays whole', async () => {
    const out = join(tempDir('api-stop'), 'out')
    // 3 epochs of 7 steps, no evaluation: the train_steps calls run steps 1-6 (a checkpoint), 7 (the epoch's end),
    // 8-12 (a checkpoint), ...
    const handle = train(tinyConfig(out, { eval_strategy: 'no' }), ['num_train_epochs=3', 'save_steps=6'])
    const { heard, iterated } = record(handle)
    let stoppedAt = 0
    // A live progress event (the sidecar's, sent as a step ends) comes while the call of steps 8-12 trains.
    handle.on('progress', (e) => {
      if (stoppedAt === 0 && e.phase === 'training' && e.step >= 8) {
        stoppedAt = e.step
        handle.stop()
      }
    })
    const summary = await handle.result
    await iterated
    expect(stoppedAt).toBeGreaterThanOrEqual(8)
    expect(summary.status).toBe('stopped')
    expect(summary.steps).toBeGreaterThanOrEqual(stoppedAt)
    // The sidecar ended the call early: without it, training would have gone on to the call's end (step 12).
    expect(summary.steps).toBeLessThan(12)
    expect(heard.at(-1)).toEqual({ type: 'done', status: 'stopped', summary })

    // Every trained step is logged once, the last checkpoint is complete, and the run finished as usual.
    const steps = of(heard, 'step').map((e) => e.step)
    expect(steps).toEqual(Array.from({ length: summary.steps }, (_, i) => i + 1))
    expect(jsonl<{ step: number }>(join(out, 'dataflex', 'metrics.jsonl')).map((m) => m.step)).toEqual(steps)
    const state = JSON.parse(readFileSync(join(out, 'trainer_state.json'), 'utf8')) as { global_step: number }
    expect(state.global_step).toBe(summary.steps)
    expect(JSON.parse(readFileSync(join(out, 'dataflex', 'summary.json'), 'utf8'))).toMatchObject({ steps: summary.steps })
    expect(existsSync(join(out, 'adapter_model.safetensors'))).toBe(true)
    const last = lastCompleteCheckpoint(out)
    expect(last).toBe(join(out, 'checkpoint-6'))
    expect(of(heard, 'checkpoint').at(-1)?.path).toBe(last)
  }, 240_000)

  it('bad input rejects result with the ConfigError, emits error then done, and writes nothing', async () => {
    const dir = tempDir('api-bad')
    const cfg = writeConfig(dir, 'run.yaml', tinyConfig(join(dir, 'out')))
    const handle = train(cfg, ['update_stpe=2'])
    const { heard, iterated } = record(handle)
    const err = await handle.result.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ConfigError)
    expect(err).toMatchObject({ code: 'unknown_key', key: 'update_stpe', hint: "did you mean 'update_step'?" })
    expect((err as Error).message).toContain("override 'update_stpe=2'")
    expect(await iterated).toEqual(heard)
    expect(heard).toEqual([
      { type: 'error', error: err },
      { type: 'done', status: 'failed', summary: null },
    ])
    expect(existsSync(join(dir, 'out'))).toBe(false)

    // A config object is checked as a file is; a value no YAML file could hold is refused by its key.
    const fn = train({ ...tinyConfig(join(dir, 'out')), learning_rate: () => 1 })
    await expect(fn.result).rejects.toMatchObject({ name: 'ConfigError', code: 'bad_value', key: 'learning_rate' })
  }, 120_000)
})

describe('the library from another project', () => {
  it('examples/node_api.ts streams a run to JSONL and stops it after --max-steps', async () => {
    const dir = tempDir('api-example')
    const events = join(dir, 'events.jsonl')
    // As a user runs it: the TypeScript file through tsx (resolved from the checkout, the working directory).
    const r = await run(process.execPath, ['--import', 'tsx', 'examples/node_api.ts', events, '--output-dir', join(dir, 'out'), '--max-steps', '4'], {
      cwd: REPO_ROOT,
      timeout: 180_000,
    })
    expect(r.stdout).toContain('stopped: 4 steps')
    const lines = jsonl<TrainEvent>(events)
    const done = lines.at(-1)
    expect(done).toMatchObject({ type: 'done', status: 'stopped', summary: { steps: 4, status: 'stopped' } })
    expect(of(lines, 'step').map((e) => e.step)).toEqual([1, 2, 3, 4])
    expect(of(lines, 'eval').map((e) => `${e.at}:${e.step}`)).toEqual(['step:2', 'step:4', 'final:4'])
    expect(of(lines, 'checkpoint').map((e) => e.step)).toEqual([4])
    expect(lastCompleteCheckpoint(join(dir, 'out'))).toBe(join(dir, 'out', 'checkpoint-4'))
  }, 240_000)

  it("imports 'dataflex-ts' from dist/lib and type-checks against its declarations", async () => {
    const dir = tempDir('api-consumer')
    mkdirSync(join(dir, 'node_modules', '@types'), { recursive: true })
    // As `npm install <checkout>` links it, with the packages a TypeScript project of its own would have.
    symlinkSync(REPO_ROOT, join(dir, 'node_modules', 'dataflex-ts'))
    symlinkSync(join(REPO_ROOT, 'node_modules', 'zod'), join(dir, 'node_modules', 'zod'))
    symlinkSync(join(REPO_ROOT, 'node_modules', '@types', 'node'), join(dir, 'node_modules', '@types', 'node'))
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module', private: true }))
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, types: ['node'] },
        // The example too: it imports the package by name from inside the checkout.
        files: ['main.ts', join(REPO_ROOT, 'examples', 'node_api.ts')],
      }),
    )
    writeFileSync(
      join(dir, 'main.ts'),
      `import { ConfigError, defineMixer, defineReorder, defineSelector, defineWeighter, train, type StepEvent, type TrainEvent } from 'dataflex-ts'
import { z } from 'zod'

export const top = defineSelector({
  name: 'top',
  description: 'the first rows',
  params: z.strictObject({ offset: z.int().min(0).default(0) }),
  create: (params) => ({ select: async (ctx) => ({ indices: Int32Array.from({ length: ctx.numSamples }, (_, i) => i + params.offset) }) }),
})
export const helpers = [defineMixer, defineReorder, defineWeighter]

export async function watch(): Promise<number> {
  const run = train({ model_name_or_path: 'models/x' }, { learning_rate: 1e-4 })
  run.on('step', (e: StepEvent) => void e.totalSteps)
  run.on('eval', (e) => void (e.evalLoss satisfies number))
  // @ts-expect-error: not an event of a run
  run.on('epoch', () => undefined)
  for await (const e of run) {
    const t: TrainEvent['type'] = e.type
    if (e.type === 'done') return e.summary?.steps ?? 0
    void t
  }
  try {
    const summary = await run.result
    // @ts-expect-error: status is 'completed' | 'stopped'
    const s: 'failed' = summary.status
    return s.length
  } catch (err) {
    return err instanceof ConfigError ? 2 : 1
  }
}
`,
    )
    const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
    const checked = await run(process.execPath, [tsc, '-p', dir], { cwd: dir, timeout: 120_000 }).catch((e: { stdout?: string }) => e)
    expect((checked as { stdout?: string }).stdout ?? '').toBe('')

    writeFileSync(
      join(dir, 'run.mjs'),
      `import * as lib from 'dataflex-ts'
console.log(JSON.stringify({ url: import.meta.resolve('dataflex-ts'), names: Object.keys(lib).sort() }))`,
    )
    const r = await run(process.execPath, ['run.mjs'], { cwd: dir })
    const got = JSON.parse(r.stdout) as { url: string; names: string[] }
    expect(got.url).toMatch(/\/dist\/lib\/index\.mjs$/)
    expect(got.names).toEqual(['ConfigError', 'Rng', 'RunAbortedError', 'defineMixer', 'defineReorder', 'defineSelector', 'defineWeighter', 'fakeModelOps', 'train'])
  }, 180_000)
})
