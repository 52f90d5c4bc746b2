/**
 * One registry for every component kind (selector, mixer, weighter, reorder): preset resolution, params validation
 * from the schema's JSON Schema, user files of every kind, the older `reorderers:` section, input paths (working
 * directory, then the preset's folder) and `dataflex components`.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { main } from '../src/cli/main.ts'
import { loadConfig, type LoadedConfig } from '../src/config/load.ts'
import { Rng } from '../src/math/rng.ts'
import { writeNpy } from '../src/strategies/npy.ts'
import { describeInput } from '../src/strategies/input-paths.ts'
import { COMPONENT_KINDS, type ComponentKind } from '../src/strategies/kinds.ts'
import type { MixerInstance } from '../src/strategies/mixer.ts'
import { inputPathParams, paramsInfo } from '../src/strategies/params.ts'
import { resolveComponent } from '../src/strategies/presets.ts'
import { ComponentRegistry, RegistryError, defaultRegistry } from '../src/strategies/registry.ts'
import type { ReorderInstance } from '../src/strategies/reorder.ts'
import { defineSelector, type ModelOps } from '../src/strategies/types.ts'
import type { WeighterInstance } from '../src/strategies/weighter.ts'
import { capturedIO, configError, fakeConfig, tempDir } from './support.ts'

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures')

/** A components file in `<dir>/configs/` (so cwd = dir and the file's folder differ). */
function componentsFile(dir: string, yaml: string): LoadedConfig {
  mkdirSync(join(dir, 'configs'), { recursive: true })
  writeFileSync(join(dir, 'configs', 'components.yaml'), yaml)
  return fakeConfig(dir, { components_cfg_file: 'configs/components.yaml' })
}

const noModel = {} as ModelOps

describe('custom files, for every kind', () => {
  it('a mixer (kit form, TypeScript): resolved, params validated with defaults, the instance mixes and keeps state', async () => {
    const dir = tempDir('reg-mixer')
    const path = relative(join(dir, 'configs'), join(FIXTURES, 'custom_mixer.ts'))
    const cfg = componentsFile(dir, `mixers:\n  by_loss:\n    name: custom\n    params: {path: ${path}, temperature: 0.5}\n`)
    // From this working directory the relative path leads nowhere; from the components file's folder it is the fixture.
    const r = await resolveComponent(cfg, 'mixer', { key: 'by_loss', cwd: join(dir, 'a', 'b', 'c') })
    expect([r.kind, r.key, r.algorithm, r.strategy, r.file]).toEqual(['mixer', 'by_loss', 'custom', 'loss_softmax', join(FIXTURES, 'custom_mixer.ts')])
    expect(r.params).toEqual({ temperature: 0.5 })
    expect(r.rawParams).toEqual({ temperature: 0.5 })
    expect(r.inputs).toEqual([{ param: 'path', written: path, path: join(FIXTURES, 'custom_mixer.ts'), from: 'preset folder' }])

    const domains = [
      { name: 'a', size: 10 },
      { name: 'b', size: 30 },
    ]
    const initial = Float64Array.of(0.5, 0.5)
    const mixer: MixerInstance = r.definition.create(r.params, { domains, initial, seed: 1, baseDir: dir })
    const losses = Float64Array.from([1, 2])
    const none = { lossSum: new Float64Array(2), tokens: new Float64Array(2), samples: new Float64Array(2) }
    const out = await mixer.mix({
      step: 5,
      update: 1,
      updateTimes: 1,
      domains,
      current: initial,
      steps: [],
      window: none,
      seen: new Float64Array(2),
      domainLosses: losses,
      heldOut: [],
      rng: new Rng(1),
      model: noModel,
      cacheDir: dir,
      log: () => {},
    })
    // softmax([1, 2] / 0.5) = [1, e²] / (1 + e²)
    const e2 = Math.exp(2)
    expect(out.proportions[0]).toBeCloseTo(1 / (1 + e2), 12)
    expect(out.proportions[1]).toBeCloseTo(e2 / (1 + e2), 12)
    expect(out.info).toEqual({ domains: 2 })
    expect(mixer.state?.()).toEqual({ decisions: 1 })
  })

  it('a weighter (plain imports, TypeScript): weights from the micro-batch losses', async () => {
    const dir = tempDir('reg-weighter')
    const components = { weighters: { rel: { name: 'custom', params: { path: join(FIXTURES, 'custom_weighter.ts') } } } }
    const r = await resolveComponent(fakeConfig(dir, { components, component_name: 'rel' }), 'weighter', { cwd: dir })
    expect([r.kind, r.algorithm, r.strategy]).toEqual(['weighter', 'custom', 'relative_loss'])
    expect(r.params).toEqual({ cap: 2 })
    expect(r.inputs[0]).toMatchObject({ param: 'path', from: 'absolute' })
    const weighter: WeighterInstance = r.definition.create(r.params, { numTrain: 4, numEval: 0, seed: 1, baseDir: dir })
    const losses = Float32Array.from([1, 2, 3, 10])
    const { weights } = await weighter.weigh({
      step: 1,
      micro: 0,
      indices: Int32Array.from([0, 1, 2, 3]),
      losses,
      tokens: Int32Array.from([5, 5, 5, 5]),
      groupSamples: 4,
      groupMicro: 1,
      rng: new Rng(1),
      log: () => {},
    })
    // mean 4 → [0.25, 0.5, 0.75, 2.5 capped at 2]
    expect(Array.from(weights)).toEqual([0.25, 0.5, 0.75, 2])
  })

  it('a reorder (kit form, JavaScript), named by params.kind as DataFlex reorder presets are', async () => {
    const dir = tempDir('reg-reorder')
    const path = join(FIXTURES, 'custom_reorder.mjs')
    const cfg = componentsFile(dir, `reorders:\n  hardest_first:\n    params: {kind: custom, path: ${path}, descending: true}\n`)
    const r = await resolveComponent(cfg, 'reorder', { key: 'hardest_first', cwd: dir })
    expect([r.kind, r.algorithm, r.strategy]).toEqual(['reorder', 'custom', 'by_score'])
    expect(r.params).toEqual({ descending: true })
    expect(r.rawParams).toEqual({ descending: true })
    const reorder: ReorderInstance = r.definition.create(r.params, { numTrain: 10, seed: 1, baseDir: dir })
    const out = await reorder.order({
      step: 0,
      indices: Int32Array.from([7, 3, 9]),
      scores: Float64Array.from([0.5, 2, 1]),
      rng: new Rng(1),
      model: noModel,
      cacheDir: dir,
      log: () => {},
    })
    expect(Array.from(out.order)).toEqual([3, 9, 7])
    expect(Array.from(out.scores!)).toEqual([2, 1, 0.5])
  })

  it('a file of another kind is a config error saying what it exports', async () => {
    const dir = tempDir('reg-wrongkind')
    const components = { reorders: { r: { name: 'custom', params: { path: join(FIXTURES, 'custom_weighter.ts') } } } }
    const err = await configError(resolveComponent(fakeConfig(dir, { components, component_name: 'r' }), 'reorder', { cwd: dir }))
    expect(err.key).toBe('reorders.r.params.path')
    expect(err.message).toContain('must export a reorder: `export default defineReorder({...})`, or one exported reorder (it exports a weighter)')
    // The kit form gets only its kind's helper: a mixer file used as a selector fails in its function, and says so.
    const mixerFile = { selectors: { s: { name: 'custom', params: { path: join(FIXTURES, 'custom_mixer.ts') } } } }
    const kitErr = await configError(resolveComponent(fakeConfig(dir, { components: mixerFile, component_name: 's' }), 'selector', { cwd: dir }))
    expect(kitErr.key).toBe('selectors.s.params.path')
    expect(kitErr.message).toMatch(/failed in its default-export function at .*custom_mixer\.ts:5:\d+: defineMixer is not a function/)
    expect(kitErr.hint).toBe("a selector file's function receives { z, Rng, defineSelector }")
  })

  it('custom without params.path names the kind and its define helper', async () => {
    const dir = tempDir('reg-nopath')
    const components = { weighters: { w: { name: 'custom' } } }
    const err = await configError(resolveComponent(fakeConfig(dir, { components, component_name: 'w' }), 'weighter', { cwd: dir }))
    expect(err.key).toBe('weighters.w.params.path')
    expect(err.message).toContain('the custom weighter needs params.path')
    expect(err.hint).toContain('defineWeighter')
  })
})

describe('params: one validation for every kind', () => {
  const mixerPath = join(FIXTURES, 'custom_mixer.ts')
  const cases: [ComponentKind, Record<string, unknown>, string, string, string][] = [
    ['selector', { selectors: { rnd: { name: 'random', params: { replacment: true } } } }, 'rnd', 'replacment', 'replacement'],
    ['mixer', { mixers: { odm_fast: { name: 'custom', params: { path: mixerPath, temprature: 2 } } } }, 'odm_fast', 'temprature', 'temperature'],
    ['weighter', { weighters: { w: { name: 'custom', params: { path: join(FIXTURES, 'custom_weighter.ts'), capp: 1 } } } }, 'w', 'capp', 'cap'],
    ['reorder', { reorders: { saw: { params: { kind: 'custom', path: join(FIXTURES, 'custom_reorder.mjs'), decending: true } } } }, 'saw', 'decending', 'descending'],
  ]
  for (const [kind, components, key, bad, good] of cases) {
    it(`an unknown ${kind} param: "did you mean", the kind, preset, algorithm and file in the message`, async () => {
      const dir = tempDir(`reg-param-${kind}`)
      const err = await configError(resolveComponent(fakeConfig(dir, { components, component_name: key }), kind, { cwd: dir }))
      expect(err.code).toBe('unknown_key')
      const section = Object.keys(components)[0]!
      expect(err.key).toBe(`${section}.${key}.params.${bad}`)
      expect(err.message).toMatch(new RegExp(`^unknown param '${bad}' for ${kind} '${key}' \\(algorithm \\w+\\) in cfg\\.yaml \\(components\\.${section}\\.${key}\\)$`))
      expect(err.hint).toBe(`did you mean '${good}'?`)
    })
  }

  it('a bad value names the kind and the param', async () => {
    const dir = tempDir('reg-badvalue')
    const components = { mixers: { m: { name: 'custom', params: { path: mixerPath, temperature: -1 } } } }
    const err = await configError(resolveComponent(fakeConfig(dir, { components, component_name: 'm' }), 'mixer', { cwd: dir }))
    expect(err.code).toBe('bad_value')
    expect(err.key).toBe('mixers.m.params.temperature')
    expect(err.message).toContain("bad value for param 'temperature' of mixer 'm' (algorithm loss_softmax)")
  })

  const unknown: [ComponentKind, Record<string, unknown>, string, string, string | undefined][] = [
    ['selector', { selectors: { x: { name: 'lesss' } } }, 'x', 'selectors.x.name', "did you mean 'less'?"],
    ['mixer', { mixers: { x: { name: 'odn' } } }, 'x', 'mixers.x.name', "did you mean 'odm'?"],
    ['mixer', { mixers: { x: { name: 'sampler' } } }, 'x', 'mixers.x.name', 'available mixer algorithms: ado, doremi, dynamic_moe, odm, random, static, custom'],
    ['weighter', { weighters: { x: { name: 'custm' } } }, 'x', 'weighters.x.name', "did you mean 'custom'?"],
    ['reorder', { reorders: { saw: { name: 'saw', params: { kind: 'dynamc' } } } }, 'saw', 'reorders.saw.params.kind', "did you mean 'dynamic'?"],
  ]
  for (const [kind, components, key, errKey, hint] of unknown) {
    it(`an unknown ${kind} algorithm names where it was written, with ${hint?.startsWith('did you mean') ? 'the nearest registered one' : 'the registered ones'}`, async () => {
      const dir = tempDir(`reg-algo-${kind}`)
      const err = await configError(resolveComponent(fakeConfig(dir, { components, component_name: key }), kind, { cwd: dir }))
      expect(err.code).toBe('bad_value')
      expect(err.message).toMatch(new RegExp(`^unknown ${kind} algorithm '\\w+' in cfg\\.yaml`))
      expect(err.key).toBe(errKey)
      expect(err.hint).toBe(hint)
    })
  }

  it('an unknown component_name says which section it looked in', async () => {
    const dir = tempDir('reg-nokey')
    const components = { mixers: { doremi_small: { name: 'custom' } } }
    const err = await configError(resolveComponent(fakeConfig(dir, { components, component_name: 'doremi_smal' }), 'mixer', { cwd: dir }))
    expect(err.key).toBe('component_name')
    expect(err.message).toContain('no mixers preset of that name')
    expect(err.hint).toContain("did you mean 'doremi_small'?")
  })

  it('known keys, descriptions and input-path marks come from the JSON Schema export', () => {
    const strict = z.strictObject({
      a: z.int().default(3).describe('an a'),
      f: z.string().meta({ path: 'file' }).nullish(),
      m: z.string().meta({ path: 'model_or_id' }).nullable().default(null),
    })
    expect(paramsInfo(strict).known).toEqual(['a', 'f', 'm'])
    expect(paramsInfo(strict).properties['a']).toMatchObject({ default: 3, description: 'an a' })
    expect(inputPathParams(strict)).toEqual([
      ['f', 'file'],
      ['m', 'model_or_id'],
    ])
    // z.object would drop an unknown key silently: it is checked like a strict object.
    expect(paramsInfo(z.object({ a: z.int() })).known).toEqual(['a'])
    // A loose object or a catchall takes any key on purpose; so does a schema that is not an object.
    expect(paramsInfo(z.looseObject({ a: z.int() })).known).toBeUndefined()
    expect(paramsInfo(z.object({ a: z.int() }).catchall(z.number())).known).toBeUndefined()
    expect(paramsInfo(z.any()).known).toBeUndefined()
    // Defaults, pipes and refinements around the object are looked through.
    expect(paramsInfo(z.strictObject({ a: z.int() }).default({ a: 1 })).known).toEqual(['a'])
    expect(paramsInfo(z.strictObject({ a: z.string() }).transform((v) => v.a.length)).known).toEqual(['a'])
    // The built-in path params are marked.
    const reg = defaultRegistry()
    const marked = (name: string) => inputPathParams(reg.get('selector', name)!.params)
    expect(marked('near')).toEqual([['indices_path', 'file']])
    expect(marked('tsds')).toEqual([['probs_path', 'file']])
    expect(marked('nice')).toEqual([
      ['policy_model_path', 'model'],
      ['reward_model_path', 'model'],
    ])
    expect(marked('cluster_less')).toEqual([['embedding_model_name_or_path', 'model_or_id']])
  })
})

describe('the older reorderers: section', () => {
  const path = join(FIXTURES, 'custom_reorder.mjs')
  const preset = `  mine:\n    params: {kind: custom, path: ${path}}\n`

  it('is read with a warning naming the file', async () => {
    const dir = tempDir('reg-legacy')
    const cfg = componentsFile(dir, `reorderers:\n${preset}`)
    const r = await resolveComponent(cfg, 'reorder', { key: 'mine', cwd: dir })
    expect(r.strategy).toBe('by_score')
    expect(r.preset.section).toBe('reorders')
    expect(r.warnings).toEqual([join('configs', 'components.yaml') + ": 'reorderers:' is the older spelling of 'reorders:'; rename the section"])
    // Under reorders: no warning.
    const current = await resolveComponent(componentsFile(dir, `reorders:\n${preset}`), 'reorder', { key: 'mine', cwd: dir })
    expect(current.warnings).toEqual([])
  })

  it('inline, too', async () => {
    const dir = tempDir('reg-legacy-inline')
    const components = { reorderers: { mine: { params: { kind: 'custom', path } } } }
    const r = await resolveComponent(fakeConfig(dir, { components, component_name: 'mine' }), 'reorder', { cwd: dir })
    expect(r.warnings).toEqual(["cfg.yaml (components:): 'reorderers:' is the older spelling of 'reorders:'; rename the section"])
  })

  it('both spellings in one components file is an error', async () => {
    const dir = tempDir('reg-legacy-both')
    const cfg = componentsFile(dir, `reorders:\n${preset}reorderers:\n${preset}`)
    const err = await configError(resolveComponent(cfg, 'reorder', { key: 'mine', cwd: dir }))
    expect(err.code).toBe('bad_value')
    expect(err.key).toBe('reorderers')
    expect(err.message).toContain(`in components file ${join('configs', 'components.yaml')}`)
    expect(err.message).toContain("'reorderers:' is the older spelling of 'reorders:', and both are written; keep one (reorders)")
  })

  it('both spellings inline is an error when the config loads', async () => {
    const dir = tempDir('reg-legacy-both-inline')
    const nested = `    mine:\n      params: {kind: custom, path: ${path}}\n`
    const yaml = `model_name_or_path: /m\ncomponents:\n  reorders:\n${nested}  reorderers:\n${nested}`
    writeFileSync(join(dir, 'cfg.yaml'), yaml)
    const err = await configError(loadConfig('cfg.yaml', [], { cwd: dir, python: false }))
    expect(err.code).toBe('bad_value')
    expect(err.key).toBe('components.reorderers')
    expect(err.message).toContain('both are written')
  })

  it('an unknown section says which ones exist', async () => {
    const dir = tempDir('reg-badsection')
    const err = await configError(resolveComponent(componentsFile(dir, 'reorder:\n  x: {}\n'), 'reorder', { key: 'x', cwd: dir }))
    expect(err.code).toBe('unknown_key')
    expect(err.hint).toBe("did you mean 'reorders'?")
  })
})

describe('input paths: the working directory first, then the folder of the preset file', () => {
  // The Python DataFlex's shipped near preset: a path relative to where the user runs from.
  const SHIPPED = './src/dataflex/offline_selector/top_indices.npy'
  const nearYaml = `selectors:\n  near:\n    name: near\n    params:\n      indices_path: ${SHIPPED}\n`
  const matrix = (file: string, fill: number) => {
    mkdirSync(join(file, '..'), { recursive: true })
    writeNpy(file, Int32Array.from({ length: 6 }, () => fill), [2, 3])
  }

  it("DataFlex's shipped relative path is found from the working directory", async () => {
    const dir = tempDir('reg-path-cwd')
    const cfg = componentsFile(dir, nearYaml)
    matrix(join(dir, SHIPPED), 1)
    const r = await resolveComponent(cfg, 'selector', { key: 'near', cwd: dir })
    const abs = join(dir, SHIPPED)
    expect(r.params).toMatchObject({ indices_path: abs })
    expect(r.rawParams).toEqual({ indices_path: SHIPPED })
    expect(r.inputs).toEqual([{ param: 'indices_path', written: SHIPPED, path: abs, from: 'working directory' }])
    expect(describeInput(r.inputs[0]!, r.preset)).toBe(`indices_path '${SHIPPED}' → ${abs} (found from the working directory)`)
    // The selector reads the file it was handed.
    const sel = r.definition.create(r.params, { numTrain: 4, numEval: 0, seed: 1, baseDir: r.preset.baseDir })
    expect(Array.from((await sel.select({ step: 1, numSamples: 1, updateIndex: 1, updateTimes: 1, flexEpoch: 0, rng: new Rng(1), model: { numTrain: 4 } as ModelOps, cacheDir: dir, log: () => {} })).indices)).toEqual([1])
  })

  it('a path that exists only next to the components file is found there; the working directory wins when both have it', async () => {
    const dir = tempDir('reg-path-file')
    const cfg = componentsFile(dir, nearYaml)
    matrix(join(dir, 'configs', SHIPPED), 2)
    const r = await resolveComponent(cfg, 'selector', { key: 'near', cwd: dir })
    expect(r.inputs[0]).toMatchObject({ from: 'preset folder', path: join(dir, 'configs', SHIPPED) })
    expect(describeInput(r.inputs[0]!, r.preset)).toBe(`indices_path '${SHIPPED}' → ${join(dir, 'configs', SHIPPED)} (found in the components file's folder)`)

    matrix(join(dir, SHIPPED), 1)
    const both = await resolveComponent(cfg, 'selector', { key: 'near', cwd: dir })
    expect(both.inputs[0]).toMatchObject({ from: 'working directory', path: join(dir, SHIPPED) })
  })

  it('a path found in neither is a clear error listing both candidates', async () => {
    const dir = tempDir('reg-path-none')
    const cfg = componentsFile(dir, nearYaml)
    const err = await configError(resolveComponent(cfg, 'selector', { key: 'near', cwd: dir }))
    expect(err.code).toBe('file_not_found')
    expect(err.key).toBe('selectors.near.params.indices_path')
    expect(err.message).toBe(
      `file not found for indices_path '${SHIPPED}' (${join('configs', 'components.yaml')} (selectors.near)): looked in ${join(dir, SHIPPED)} and ${join(dir, 'configs', SHIPPED)}`,
    )
    expect(err.hint).toBe("relative paths resolve against the working directory first, then the components file's folder")
  })

  it('an inline preset falls back to the training config folder; custom files resolve the same way', async () => {
    const dir = tempDir('reg-path-inline')
    mkdirSync(join(dir, 'run'))
    mkdirSync(join(dir, 'strategies'))
    writeFileSync(join(dir, 'strategies', 'w.ts'), `export default ({ z, defineWeighter }) => defineWeighter({ name: 'w', description: 'w', params: z.strictObject({}), create: () => ({ weigh: (ctx) => ({ weights: new Float32Array(ctx.losses.length) }) }) })\n`)
    const components = { weighters: { w: { name: 'custom', params: { path: 'strategies/w.ts' } } } }
    // cwd = dir/run: not found there, found in the config's folder (dir).
    const r = await resolveComponent(fakeConfig(dir, { components, component_name: 'w' }), 'weighter', { cwd: join(dir, 'run') })
    expect(r.file).toBe(join(dir, 'strategies', 'w.ts'))
    expect(describeInput(r.inputs[0]!, r.preset)).toContain("(found in the training config's folder)")
  })

  it('model paths: a local folder must exist; model_or_id keeps a hub id as written', async () => {
    const dir = tempDir('reg-path-model')
    const nice = { selectors: { n: { name: 'nice', params: { reward_model_path: 'models/rm' } } } }
    const err = await configError(resolveComponent(fakeConfig(dir, { components: nice, component_name: 'n' }), 'selector', { cwd: dir }))
    expect(err.code).toBe('model_not_found')
    expect(err.key).toBe('selectors.n.params.reward_model_path')
    expect(err.message).toContain(`local model folder not found for reward_model_path 'models/rm'`)
    mkdirSync(join(dir, 'models', 'rm'), { recursive: true })
    const ok = await resolveComponent(fakeConfig(dir, { components: nice, component_name: 'n' }), 'selector', { cwd: dir })
    expect(ok.params).toMatchObject({ reward_model_path: join(dir, 'models', 'rm') })

    const cl = (p: string) => ({ selectors: { c: { name: 'cluster_less', params: { embedding_model_name_or_path: p } } } })
    const hub = await resolveComponent(fakeConfig(dir, { components: cl('org/embedder'), component_name: 'c' }), 'selector', { cwd: dir })
    expect(hub.params).toMatchObject({ embedding_model_name_or_path: 'org/embedder' })
    expect(hub.inputs[0]).toMatchObject({ from: 'model id' })
    const local = await resolveComponent(fakeConfig(dir, { components: cl('models/rm'), component_name: 'c' }), 'selector', { cwd: dir })
    expect(local.params).toMatchObject({ embedding_model_name_or_path: join(dir, 'models', 'rm') })
    const unset = await resolveComponent(fakeConfig(dir, { components: { selectors: { c: { name: 'cluster_less' } } }, component_name: 'c' }), 'selector', { cwd: dir })
    expect(unset.inputs).toEqual([])
  })
})

describe('registry tables', () => {
  it('every kind has a table; duplicates and the reserved name custom are refused', () => {
    const reg = defaultRegistry()
    expect(reg.names('selector')).toEqual(['cluster_less', 'delta_loss', 'less', 'loss', 'near', 'nice', 'random', 'tsds', 'custom'])
    expect(reg.names('mixer')).toEqual(['ado', 'doremi', 'dynamic_moe', 'odm', 'random', 'static', 'custom'])
    expect(reg.names('weighter')).toEqual(['adapt', 'joint_update_aware', 'loss', 'custom'])
    expect(reg.names('reorder')).toEqual(['dynamic', 'static', 'custom'])
    const def = defineSelector({ name: 'x', description: 'x', params: z.strictObject({}), create: () => ({ select: async () => ({ indices: new Int32Array(0) }) }) })
    const mine = new ComponentRegistry().register(def)
    expect(mine.get('selector', 'x')).toBe(def)
    expect(mine.get('mixer', 'x')).toBeUndefined()
    expect(() => mine.register(def)).toThrow(RegistryError)
    expect(() => mine.register({ ...def, name: 'custom' })).toThrow(/reserved/)
  })
})

describe('dataflex components', () => {
  async function run(args: string[]): Promise<{ code: number; stdout: string }> {
    const { io, out } = capturedIO()
    const code = await main(['components', ...args], io)
    return { code, stdout: out() }
  }

  it('--json: an array of {kind, name, description, params, schema} covering every kind', async () => {
    const { code, stdout } = await run(['--json'])
    expect(code).toBe(0)
    const docs = JSON.parse(stdout) as { kind: string; name: string; description: string; params: Record<string, unknown>[] }[]
    expect(Array.isArray(docs)).toBe(true)
    for (const d of docs) {
      expect(Object.keys(d).sort()).toEqual(['description', 'kind', 'name', 'params', 'schema'])
      expect(d.description.length).toBeGreaterThan(0)
      for (const p of d.params) {
        expect(Object.keys(p).every((k) => ['name', 'type', 'default', 'required', 'description'].includes(k))).toBe(true)
        expect(typeof p['name']).toBe('string')
        expect(typeof p['type']).toBe('string')
        expect(typeof p['required']).toBe('boolean')
      }
    }
    expect([...new Set(docs.map((d) => d.kind))]).toEqual([...COMPONENT_KINDS])
    expect(docs.filter((d) => d.name === 'custom').map((d) => d.kind)).toEqual([...COMPONENT_KINDS])
    const custom = docs.find((d) => d.kind === 'mixer' && d.name === 'custom')!
    expect(custom.description).toContain('defineMixer')
    expect(custom.params).toEqual([expect.objectContaining({ name: 'path', type: 'string', required: true })])
    const less = docs.find((d) => d.kind === 'selector' && d.name === 'less')!
    expect(less.params.find((p) => p['name'] === 'proj_dim')).toEqual({
      name: 'proj_dim',
      type: 'integer',
      default: 8192,
      required: false,
      description: expect.any(String),
    })
    const near = docs.find((d) => d.name === 'near')!
    expect(near.params.find((p) => p['name'] === 'indices_path')).toMatchObject({ type: 'string', required: true })
    // cache_dir is common to every preset and listed once, not per algorithm.
    expect(docs.every((d) => d.params.every((p) => p['name'] !== 'cache_dir'))).toBe(true)
  })

  it('the table groups the kinds under their section and train_type', async () => {
    const { code, stdout } = await run([])
    expect(code).toBe(0)
    const headings = stdout.split('\n').filter((l) => /^\S/.test(l))
    expect(headings).toEqual([
      'selectors (train_type: dynamic_select):',
      'mixers (train_type: dynamic_mix):',
      'weighters (train_type: dynamic_weight):',
      'reorders (train_type: dynamic_reorder):',
      'every preset may also set:',
    ])
    expect(stdout).toMatch(/^ {2}custom {2}your own reorder: .*defineReorder/m)
  })
})
