/**
 * User strategy files as ordinary modules (src/strategies/user-files.ts, user-bundle.ts): a file in a folder outside
 * the repository, with no node_modules, imports 'dataflex-ts' and 'zod' and gets this process's own module objects;
 * the definition is its default export or its only exported one; an error in user code (a throw anywhere, a bad
 * return value) names the user's file, line and column, read through the bundle's source map.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, sep } from 'node:path'
import { pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import * as authoring from '../src/authoring.ts'
import { ConfigError } from '../src/config/errors.ts'
import { Rng } from '../src/math/rng.ts'
import { describeParams } from '../src/strategies/params.ts'
import { resolveComponent, type ResolvedComponent } from '../src/strategies/presets.ts'
import type { SelectContext, SelectorInstance } from '../src/strategies/types.ts'
import { importUserFile } from '../src/strategies/user-bundle.ts'
import { attributeToUserCode, UserCodeError } from '../src/strategies/user-files.ts'
import type { WeighterInstance } from '../src/strategies/weighter.ts'
import { createComponent, StrategyError } from '../src/trainers/strategy-runtime.ts'
import { configError, fakeConfig, tempDir } from './support.ts'

/** Writes `files` into a fresh folder in the system temp folder (no node_modules anywhere above it). */
function userFolder(prefix: string, files: Record<string, string>): string {
  const dir = tempDir(prefix)
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true })
    writeFileSync(join(dir, name), text)
  }
  return dir
}

/** 1-based line and column of the first occurrence of `needle` in `text`. */
function position(text: string, needle: string): { line: number; column: number } {
  const at = text.indexOf(needle)
  if (at < 0) throw new Error(`'${needle}' is not in the file`)
  const before = text.slice(0, at).split('\n')
  return { line: before.length, column: before[before.length - 1]!.length + 1 }
}

async function load<K extends 'selector' | 'weighter'>(kind: K, file: string): Promise<ResolvedComponent<K>> {
  const dir = join(file, '..')
  const section = kind === 'selector' ? 'selectors' : 'weighters'
  return resolveComponent(fakeConfig(dir, { components: { [section]: { mine: { name: 'custom', params: { path: file } } } }, component_name: 'mine' }), kind, { cwd: dir })
}

function selectCtx(numSamples = 2): SelectContext {
  const model = authoring.fakeModelOps({ numTrain: 8, losses: { train: [1, 2, 3, 4, 5, 6, 7, 8] } })
  return { step: 0, numSamples, updateIndex: 1, updateTimes: 1, flexEpoch: 0, rng: new Rng(1), model, cacheDir: '/unused', log: () => {} }
}

/** The error `p` rejects with, or `fn` throws. */
async function failure(p: Promise<unknown> | (() => unknown)): Promise<unknown> {
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (err) {
    return err
  }
  throw new Error('expected a failure')
}

const SELECTOR = `import { defineSelector, Rng } from 'dataflex-ts'
import * as dataflex from 'dataflex-ts'
import { z } from 'zod'
import { topLoss } from './lib/pick.ts'

export const seen = { z, dataflex, rng: new Rng(3) }

export default defineSelector({
  name: 'top_loss',
  description: 'the highest losses',
  params: z.strictObject({ fail: z.enum(['no', 'select', 'helper', 'create', 'rng']).default('no').describe('where to fail, on purpose') }),
  create(params) {
    if (params.fail === 'create') throw new Error('refused in create')
    return {
      async select(ctx) {
        if (params.fail === 'select') throw new Error('boom in select')
        if (params.fail === 'rng') ctx.rng.int(0)
        const losses = await ctx.model.losses('train', Int32Array.from({ length: ctx.model.numTrain }, (_, i) => i))
        return { indices: topLoss(losses, ctx.numSamples, params.fail === 'helper') }
      },
    }
  },
})
`
const HELPER = `/** Indices of the k largest values. */
export function topLoss(values: Float32Array, k: number, fail: boolean): Int32Array {
  if (fail) throw new TypeError('boom in the helper')
  return Int32Array.from([...values.keys()].sort((a, b) => values[b]! - values[a]!).slice(0, k))
}
`

describe('an ordinary strategy module outside the repository', () => {
  const dir = userFolder('user-module', { 'sel.ts': SELECTOR, 'lib/pick.ts': HELPER })
  const file = join(dir, 'sel.ts')

  it("gets this process's own 'dataflex-ts' and 'zod' objects, with no node_modules", async () => {
    const { module } = await importUserFile(file)
    const seen = module['seen'] as { z: unknown; dataflex: Record<string, unknown>; rng: unknown }
    expect(seen.z).toBe(z)
    for (const name of ['defineSelector', 'defineMixer', 'defineWeighter', 'defineReorder', 'fakeModelOps', 'Rng']) {
      expect(seen.dataflex[name], name).toBe((authoring as Record<string, unknown>)[name])
    }
    expect(seen.rng).toBeInstanceOf(Rng)
  })

  it('import.meta names the strategy file; require() works, in the file and in a CommonJS file it imports', async () => {
    const env = userFolder('user-env', {
      'env.ts': `import { createRequire } from 'node:module'
import dep from './dep.cjs'
const require = createRequire(import.meta.url)
export const facts = { url: import.meta.url, dirname: import.meta.dirname, filename: import.meta.filename, sep: dep.sep, own: require('node:path').sep }
`,
      'dep.cjs': `module.exports = { sep: require('node:path').sep }\n`,
    })
    const { module } = await importUserFile(join(env, 'env.ts'))
    expect(module['facts']).toEqual({ url: pathToFileURL(join(env, 'env.ts')).href, dirname: env, filename: join(env, 'env.ts'), sep: sep, own: sep })
  })

  it('loads by path: its params validate, their descriptions show, and it selects', async () => {
    const r = await load('selector', file)
    expect([r.algorithm, r.strategy, r.file]).toEqual(['custom', 'top_loss', file])
    expect(r.params).toEqual({ fail: 'no' })
    expect(r.definition.params).toBeInstanceOf(z.ZodType)
    // The descriptions are read back through zod's JSON Schema export, as for a built-in.
    expect(describeParams(r.definition)).toEqual([{ name: 'fail', type: '"no" | "select" | "helper" | "create" | "rng"', default: 'no', required: false, description: 'where to fail, on purpose' }])
    const sel: SelectorInstance = r.definition.create(r.params, { numTrain: 8, numEval: 0, seed: 1, baseDir: dir })
    expect(Array.from((await sel.select(selectCtx(3))).indices)).toEqual([7, 6, 5])
  })

  it('the hash of what it runs changes with a file it imports', async () => {
    const other = userFolder('user-module-hash', { 'sel.ts': SELECTOR, 'lib/pick.ts': HELPER })
    const before = (await load('selector', join(other, 'sel.ts'))).sourceHash
    expect(before).toMatch(/^[0-9a-f]{64}$/)
    expect((await load('selector', join(other, 'sel.ts'))).sourceHash).toBe(before)
    writeFileSync(join(other, 'lib', 'pick.ts'), HELPER.replace('slice(0, k)', 'slice(0, k + 0)'))
    expect((await load('selector', join(other, 'sel.ts'))).sourceHash).not.toBe(before)
  })
})

describe('errors in user code name the file, line and column', () => {
  const dir = userFolder('user-errors', { 'sel.ts': SELECTOR, 'lib/pick.ts': HELPER })
  const file = join(dir, 'sel.ts')
  const instance = async (fail: string): Promise<SelectorInstance> => {
    const r = await load('selector', file)
    return r.definition.create({ fail }, { numTrain: 8, numEval: 0, seed: 1, baseDir: dir })
  }

  it('a throw in select(): a UserCodeError at the throw, and the stack of its cause reads as the .ts file', async () => {
    const err = await failure((await instance('select')).select(selectCtx()))
    expect(err).toBeInstanceOf(UserCodeError)
    const e = err as UserCodeError
    const at = position(SELECTOR, "new Error('boom in select')")
    expect(e.location).toEqual({ file, ...at })
    expect(e.message).toBe(`top_loss: select() threw at ${file}:${at.line}:${at.column}: boom in select`)
    const stack = (e.cause as Error).stack!
    expect(stack).toContain(`${file}:${at.line}:${at.column}`)
    expect(stack).not.toMatch(/data:|bundle\.mjs/)
  })

  it('a throw in create(), and one in a local file the strategy imports', async () => {
    const created = (await failure(() => instance('create'))) as UserCodeError
    expect(created).toBeInstanceOf(UserCodeError)
    expect(created.location).toEqual({ file, ...position(SELECTOR, "new Error('refused in create')") })
    expect(created.message).toContain('create() threw at')

    const helper = (await failure((await instance('helper')).select(selectCtx()))) as UserCodeError
    expect(helper.location).toEqual({ file: join(dir, 'lib', 'pick.ts'), ...position(HELPER, "new TypeError('boom in the helper')") })
    expect(helper.message).toMatch(/^top_loss: select\(\) threw at .*pick\.ts:3:\d+: boom in the helper$/)
  })

  it('every trainer creates through createComponent: a user throw stays user_code, a built-in one is a config error', async () => {
    const r = await load('selector', file)
    const env = { numTrain: 8, numEval: 0, seed: 1, baseDir: dir }
    const user = await failure(() => createComponent({ ...r, params: { ...(r.params as object), fail: 'create' } }, env))
    expect(user).toBeInstanceOf(UserCodeError)
    const builtIn = { ...r, definition: { ...r.definition, create: (): never => { throw new Error('k must be below numTrain') } } }
    const wrapped = (await failure(() => createComponent(builtIn, env))) as ConfigError
    expect(wrapped).toBeInstanceOf(ConfigError)
    expect(wrapped.message).toContain("selector 'mine'")
    expect(wrapped.message).toContain('k must be below numTrain')
  })

  it('an error of DataFlex code the strategy called is located at the call', async () => {
    const err = (await failure((await instance('rng')).select(selectCtx()))) as UserCodeError
    expect(err.message).toMatch(/select\(\) failed at .*sel\.ts:\d+:\d+: int\(n\): n must be/)
    expect(err.location).toEqual({ file, ...position(SELECTOR, 'int(0)') })
  })

  it("the run's own errors pass through user code unchanged", async () => {
    const aborted = Object.assign(new Error('training interrupted'), { code: 'aborted' })
    const r = await load('selector', file)
    const sel: SelectorInstance = r.definition.create({ fail: 'no' }, { numTrain: 8, numEval: 0, seed: 1, baseDir: dir })
    const ctx = selectCtx()
    const model = { ...ctx.model, losses: () => Promise.reject(aborted) }
    expect(await failure(sel.select({ ...ctx, model }))).toBe(aborted)
  })

  it('a bad return value: the trainer\'s complaint gains the method that returned it and where it is written', async () => {
    const sel = await instance('no')
    await sel.select(selectCtx())
    const err = attributeToUserCode(new StrategyError('too_many_indices', 'top_loss: returned 3 indices, 2 requested')) as Error
    const at = position(SELECTOR, 'async select(ctx)')
    expect(err.message).toBe(`top_loss: returned 3 indices, 2 requested (returned by select() at ${file}:${at.line}:${at.column})`)
    // Anything else is left alone.
    const other = new Error('top_loss: something else')
    expect(attributeToUserCode(other)).toBe(other)
    expect(other.message).toBe('top_loss: something else')
  })

  it('create() returning no object, a throw while the module loads, and a syntax error', async () => {
    const odd = userFolder('user-odd', {
      'none.ts': `import { defineSelector } from 'dataflex-ts'\nimport { z } from 'zod'\nexport default defineSelector({ name: 'none', description: '', params: z.strictObject({}), create: () => undefined as never })\n`,
      'top.ts': `import { z } from 'zod'\nconst table: Record<string, number> = {}\nexport const x = z.number()\nthrow new RangeError('no table ' + Object.keys(table).length)\n`,
      'syntax.ts': `import { z } from 'zod'\nexport default {\n  name: 'broken' params: z.strictObject({}),\n}\n`,
    })
    const r = await load('selector', join(odd, 'none.ts'))
    const none = (await failure(() => r.definition.create({}, { numTrain: 1, numEval: 0, seed: 1, baseDir: odd }))) as UserCodeError
    expect(none.message).toMatch(/^none: create\(\) returned undefined, not a selector instance \(an object\) \(.*none\.ts:3:\d+\)$/)

    const top = await configError(load('selector', join(odd, 'top.ts')))
    expect(top.message).toContain(`cannot load custom selector ${join(odd, 'top.ts')}`)
    expect(top.message).toContain(`no table 0 (at ${join(odd, 'top.ts')}:4:7)`)

    const syntax = await configError(load('selector', join(odd, 'syntax.ts')))
    expect(syntax.message).toContain(`${join(odd, 'syntax.ts')}:3:18: Expected "}" but found "params"`)
  })

  it('the methods of a class instance (private fields) and of a nested object (refresh.run) are guarded too', async () => {
    const text = `import { defineWeighter } from 'dataflex-ts'
import { z } from 'zod'

class Guarded {
  #calls = 0
  readonly refresh = {
    every: 2,
    run: () => {
      throw new Error('refresh failed')
    },
  }
  weigh(ctx: { losses: Float32Array }) {
    this.#calls++
    return { weights: new Float32Array(ctx.losses.length).fill(this.#calls) }
  }
}

export const guarded = defineWeighter({ name: 'classy', description: '', params: z.strictObject({}), create: () => new Guarded() })
`
    const wdir = userFolder('user-class', { 'w.ts': text })
    const r = await load('weighter', join(wdir, 'w.ts'))
    expect(r.strategy).toBe('classy')
    const w: WeighterInstance = r.definition.create({}, { numTrain: 4, numEval: 0, seed: 1, baseDir: wdir })
    const ctx = { step: 1, micro: 0, indices: Int32Array.of(0, 1), losses: Float32Array.of(1, 2), tokens: Int32Array.of(1, 1), groupSamples: 2, groupMicro: 1, rng: new Rng(1), log: () => {} }
    expect(Array.from((await w.weigh(ctx)).weights)).toEqual([1, 1])
    expect(Array.from((await w.weigh(ctx)).weights)).toEqual([2, 2])
    const err = (await failure(() => w.refresh!.run({ step: 1, model: authoring.fakeModelOps({ numTrain: 4 }), rng: new Rng(1), cacheDir: wdir, log: () => {} }))) as UserCodeError
    expect(err.message).toBe(`classy: refresh.run() threw at ${join(wdir, 'w.ts')}:${position(text, "new Error('refresh failed')").line}:13: refresh failed`)
  })
})

describe('which export is the definition', () => {
  const define = (name: string, helper = 'defineSelector'): string =>
    `${helper}({ name: '${name}', description: '', params: z.strictObject({}), create: () => ({ select: async () => ({ indices: Int32Array.of(0) }), weigh: () => ({ weights: Float32Array.of(1) }) }) })`
  const head = `import { defineSelector, defineWeighter } from 'dataflex-ts'\nimport { z } from 'zod'\n`
  const dir = userFolder('user-exports', {
    'named.ts': `${head}export const mine = ${define('named_one')}\nexport const helper = 3\n`,
    'two.ts': `${head}export const a = ${define('a')}\nexport const b = ${define('b')}\n`,
    'mixed.ts': `${head}export const s = ${define('sel')}\nexport const w = ${define('wei', 'defineWeighter')}\n`,
    'default_wins.ts': `${head}export const a = ${define('a')}\nexport default ${define('chosen')}\n`,
    'nothing.ts': `export const x = 1\n`,
  })

  it('the only exported definition of the kind, or the default export when there is one', async () => {
    expect((await load('selector', join(dir, 'named.ts'))).strategy).toBe('named_one')
    expect((await load('selector', join(dir, 'mixed.ts'))).strategy).toBe('sel')
    expect((await load('weighter', join(dir, 'mixed.ts'))).strategy).toBe('wei')
    expect((await load('selector', join(dir, 'default_wins.ts'))).strategy).toBe('chosen')
  })

  it('two of the kind, or none, is a config error saying what to export', async () => {
    const two = await configError(load('selector', join(dir, 'two.ts')))
    expect(two.message).toContain('exports 2 selectors (a, b): it must export one, or default-export the one to use')
    expect(two.key).toBe('selectors.mine.params.path')
    const nothing = await configError(load('weighter', join(dir, 'nothing.ts')))
    expect(nothing.message).toContain('must export a weighter: `export default defineWeighter({...})`, or one exported weighter')
    expect(nothing.hint).toBe("import { defineWeighter } from 'dataflex-ts' (docs/authoring.md)")
    expect(nothing).toBeInstanceOf(ConfigError)
  })
})
