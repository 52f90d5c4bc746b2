/**
 * Strategy registry: algorithm name → definition, and the resolution of a `component_name` into a validated,
 * ready-to-create strategy. Unlike the Python DataFlex (dataflex-algorithms.md §1.3):
 * - the registry key of a preset is its entry key and the algorithm is its `name:`, so two presets of one
 *   algorithm (`less_small`, `less_big` with `name: less`) work;
 * - params are validated by the algorithm's zod schema, and an unknown param is an error with a hint, never
 *   silently dropped;
 * - `custom` loads a user's TypeScript file by path instead of being a template to edit in place.
 */
import { existsSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { z } from 'zod'
import { ConfigError } from '../config/errors.ts'
import type { LoadedConfig } from '../config/load.ts'
import { didYouMean } from '../config/suggest.ts'
import { Rng } from '../math/rng.ts'
import { findPreset, type ComponentPreset } from './components.ts'
import { BUILTIN_SELECTORS } from './selectors/index.ts'
import { RANDOM_SELECTOR } from './selectors/random.ts'
import { defineSelector, type SelectorDefinition } from './types.ts'

// Definitions are stored type-erased: params are validated by the definition's own schema before create().
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnySelectorDefinition = SelectorDefinition<any>

export class RegistryError extends Error {
  override readonly name = 'RegistryError'
  readonly code = 'duplicate_strategy'
}

export class StrategyRegistry {
  private readonly selectors = new Map<string, AnySelectorDefinition>()

  registerSelector(def: AnySelectorDefinition): this {
    if (def.name === CUSTOM) throw new RegistryError(`'${CUSTOM}' is reserved for user strategies loaded by path`)
    if (this.selectors.has(def.name)) throw new RegistryError(`selector '${def.name}' is registered twice`)
    this.selectors.set(def.name, def)
    return this
  }

  selector(name: string): AnySelectorDefinition | undefined {
    return this.selectors.get(name)
  }

  /** Registered algorithm names, plus `custom`. */
  selectorNames(): string[] {
    return [...[...this.selectors.keys()].sort(), CUSTOM]
  }

  selectorDefinitions(): AnySelectorDefinition[] {
    return [...this.selectors.values()].sort((a, b) => a.name.localeCompare(b.name))
  }
}

/** The algorithm that loads a user strategy file: `name: custom`, `params: {path: ./my_selector.ts, ...}`. */
export const CUSTOM = 'custom'

/** Params every preset may carry, handled by the trainer rather than the algorithm. */
export const COMMON_PARAMS = {
  cache_dir: 'cache root for this preset (default <output_dir>/dataflex/cache); relative to the file it is written in',
} as const

/** Every built-in strategy (selectors/index.ts) plus `random`. */
export function defaultRegistry(): StrategyRegistry {
  const registry = new StrategyRegistry()
  for (const def of BUILTIN_SELECTORS) registry.registerSelector(def)
  if (registry.selector(RANDOM_SELECTOR.name) === undefined) registry.registerSelector(RANDOM_SELECTOR)
  return registry
}

/** What a user strategy file may default-export a function of, so it needs no imports of its own. */
export interface SelectorKit {
  z: typeof z
  defineSelector: typeof defineSelector
  Rng: typeof Rng
}

export interface ResolvedSelector {
  /** The preset key (component_name). */
  key: string
  /** The algorithm name (`custom` for user files). */
  algorithm: string
  /** The strategy's own name (the user definition's name for `custom`). */
  strategy: string
  definition: AnySelectorDefinition
  /** Validated params, as the definition's create() takes them. */
  params: unknown
  /** The algorithm's params as written (cache_dir and custom's path removed), for cache keys and logs. */
  rawParams: Record<string, unknown>
  /** Absolute cache root from the preset's cache_dir, if set. */
  cacheRoot: string | undefined
  /** Absolute path of the user file, for custom. */
  file: string | undefined
  preset: ComponentPreset
}

export interface ResolveOptions {
  registry?: StrategyRegistry
  cwd?: string
}

/** component_name → a validated selector, before any model is loaded (bad params fail fast, exit 2). */
export async function resolveSelector(cfg: Pick<LoadedConfig, 'path' | 'dataflex'>, opts: ResolveOptions = {}): Promise<ResolvedSelector> {
  const registry = opts.registry ?? defaultRegistry()
  const key = cfg.dataflex.component_name
  if (key === undefined) {
    throw new ConfigError('bad_value', `missing 'component_name': dynamic_select needs a selector preset`, { key: 'component_name' })
  }
  const preset = await findPreset(cfg, 'selectors', key, { cwd: opts.cwd })
  const { cache_dir: cacheDir, ...params } = preset.params
  if (cacheDir !== undefined && cacheDir !== null && (typeof cacheDir !== 'string' || cacheDir === '')) {
    throw new ConfigError('bad_value', `bad value for 'cache_dir' in ${preset.source}: expected a path`, {
      key: `selectors.${key}.params.cache_dir`,
    })
  }
  const cacheRoot = typeof cacheDir === 'string' ? resolve(preset.baseDir, cacheDir) : undefined

  let definition: AnySelectorDefinition
  let file: string | undefined
  let algorithmParams = params
  if (preset.name === CUSTOM) {
    const { path, ...rest } = params
    file = resolveUserPath(path, preset)
    definition = await loadUserSelector(file, preset)
    algorithmParams = rest
  } else {
    const found = registry.selector(preset.name)
    if (found === undefined) {
      const names = registry.selectorNames()
      throw new ConfigError('bad_value', `unknown selector algorithm '${preset.name}' in ${preset.source}`, {
        key: `selectors.${key}.name`,
        hint: didYouMean(preset.name, names) ?? `available algorithms: ${names.join(', ')}`,
      })
    }
    definition = found
  }
  return {
    key,
    algorithm: preset.name,
    strategy: definition.name,
    definition,
    params: validateParams(definition, algorithmParams, preset),
    rawParams: algorithmParams,
    cacheRoot,
    file,
    preset,
  }
}

function resolveUserPath(path: unknown, preset: ComponentPreset): string {
  if (typeof path !== 'string' || path === '') {
    throw new ConfigError('bad_value', `the custom selector needs params.path (${preset.source})`, {
      key: `selectors.${preset.key}.params.path`,
      hint: 'set params.path to a TypeScript file that default-exports a selector, e.g. examples/custom_selector.ts',
    })
  }
  const abs = isAbsolute(path) ? path : resolve(preset.baseDir, path)
  if (!existsSync(abs)) {
    throw new ConfigError('file_not_found', `custom selector file not found: '${path}' (${preset.source}) resolves to ${abs}`, {
      key: `selectors.${preset.key}.params.path`,
      hint: 'relative paths resolve against the file the preset is written in',
    })
  }
  return abs
}

function isSelectorDefinition(value: unknown): value is AnySelectorDefinition {
  if (typeof value !== 'object' || value === null) return false
  const v = value as Record<string, unknown>
  return (
    v['kind'] === 'selector' &&
    typeof v['name'] === 'string' &&
    typeof v['create'] === 'function' &&
    v['params'] instanceof z.ZodType
  )
}

/**
 * JavaScript imports natively; TypeScript goes through tsx's scoped `tsImport`, loaded only here, so a run without
 * a TypeScript strategy never pays for a TypeScript loader (bin/cli-bundle.mjs).
 */
async function importStrategyFile(file: string): Promise<unknown> {
  const url = pathToFileURL(file).href
  if (!/\.[cm]?tsx?$/.test(file)) return import(url)
  const { tsImport } = await import('tsx/esm/api')
  return tsImport(url, import.meta.url)
}

/** Imports a user strategy file: default export = a SelectorDefinition, or a function of SelectorKit returning one. */
export async function loadUserSelector(file: string, preset: ComponentPreset): Promise<AnySelectorDefinition> {
  let mod: { default?: unknown }
  try {
    mod = (await importStrategyFile(file)) as { default?: unknown }
  } catch (err) {
    throw new ConfigError('bad_value', `cannot load custom selector ${file} (${preset.source}): ${(err as Error).message}`, {
      key: `selectors.${preset.key}.params.path`,
      cause: err,
    })
  }
  let value = mod.default
  if (typeof value === 'function') {
    const kit: SelectorKit = { z, defineSelector, Rng }
    value = (value as (kit: SelectorKit) => unknown)(kit)
  }
  if (!isSelectorDefinition(value)) {
    throw new ConfigError('bad_value', `custom selector ${file} must default-export a selector (defineSelector({...})) or a function returning one`, {
      key: `selectors.${preset.key}.params.path`,
      hint: 'see examples/custom_selector.ts',
    })
  }
  return value
}

type Def = { type: string; shape?: Record<string, unknown>; in?: z.ZodType; innerType?: z.ZodType; catchall?: unknown }

/** The keys an object-like params schema knows, looking through defaults, optionals and pipes; undefined if not an object. */
export function knownParamKeys(schema: z.ZodType): string[] | undefined {
  let current: z.ZodType | undefined = schema
  for (let depth = 0; current !== undefined && depth < 16; depth++) {
    const def: Def = (current as unknown as { _zod: { def: Def } })._zod.def
    if (def.type === 'object') {
      // A catchall (z.looseObject / .catchall) accepts any key on purpose.
      const catchall = def.catchall as { _zod?: { def?: { type?: string } } } | undefined
      if (catchall !== undefined && catchall._zod?.def?.type !== 'never') return undefined
      return Object.keys(def.shape ?? {})
    }
    if (def.type === 'pipe') current = def.in
    else if (['default', 'prefault', 'optional', 'nullable', 'readonly', 'catch', 'nonoptional'].includes(def.type)) current = def.innerType
    else return undefined
  }
  return undefined
}

/** Validates a preset's params with the algorithm's schema: unknown params and bad values are ConfigErrors. */
export function validateParams(def: AnySelectorDefinition, params: Record<string, unknown>, preset: ComponentPreset): unknown {
  const base = `selectors.${preset.key}.params`
  const known = knownParamKeys(def.params)
  if (known !== undefined) {
    const allowed = preset.name === CUSTOM ? [...known, 'path', ...Object.keys(COMMON_PARAMS)] : [...known, ...Object.keys(COMMON_PARAMS)]
    for (const k of Object.keys(params)) {
      if (known.includes(k)) continue
      throw new ConfigError('unknown_key', `unknown param '${k}' for selector '${preset.key}' (algorithm ${def.name}) in ${preset.source}`, {
        key: `${base}.${k}`,
        hint: didYouMean(k, allowed) ?? `${def.name} takes: ${allowed.join(', ') || 'no params'}`,
      })
    }
  }
  const parsed = def.params.safeParse(params)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]!
  const path = issue.path.map(String).join('.')
  if (issue.code === 'unrecognized_keys') {
    const bad = issue.keys[0] ?? ''
    throw new ConfigError('unknown_key', `unknown param '${bad}' for selector '${preset.key}' (algorithm ${def.name}) in ${preset.source}`, {
      key: `${base}.${path === '' ? bad : `${path}.${bad}`}`,
      hint: didYouMean(bad, known ?? []),
    })
  }
  let value: unknown = params
  for (const p of issue.path) value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[String(p)] : undefined
  const key = path === '' ? base : `${base}.${path}`
  const message =
    value === undefined && path !== ''
      ? `missing param '${path}' for selector '${preset.key}' in ${preset.source}: ${issue.message}`
      : `bad value for param '${path || '(params)'}' of selector '${preset.key}' in ${preset.source}: ${JSON.stringify(value)}; ${issue.message}`
  const hint = issue.code === 'invalid_value' && typeof value === 'string' ? didYouMean(value, issue.values.map(String)) : undefined
  throw new ConfigError('bad_value', message, { key, hint, cause: parsed.error })
}

export interface ParamDoc {
  name: string
  type: string
  default?: unknown
  required: boolean
  description?: string
}

/** The params of an algorithm, for `dataflex components` (from the zod schema's JSON Schema). */
export function describeParams(def: AnySelectorDefinition): ParamDoc[] {
  let json: Record<string, unknown>
  try {
    json = z.toJSONSchema(def.params, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>
  } catch {
    return (knownParamKeys(def.params) ?? []).map((name) => ({ name, type: 'unknown', required: false }))
  }
  const props = (json['properties'] ?? {}) as Record<string, Record<string, unknown>>
  const required = new Set((json['required'] ?? []) as string[])
  return Object.entries(props).map(([name, p]) => ({
    name,
    type: typeOf(p),
    ...(p['default'] !== undefined ? { default: p['default'] } : {}),
    required: required.has(name) && p['default'] === undefined,
    ...(typeof p['description'] === 'string' ? { description: p['description'] } : {}),
  }))
}

function typeOf(p: Record<string, unknown>): string {
  if (Array.isArray(p['enum'])) return (p['enum'] as unknown[]).map((v) => JSON.stringify(v)).join(' | ')
  if (typeof p['type'] === 'string') {
    if (p['type'] === 'array' && typeof p['items'] === 'object' && p['items'] !== null) return `${typeOf(p['items'] as Record<string, unknown>)}[]`
    return p['type']
  }
  if (Array.isArray(p['type'])) return (p['type'] as string[]).join(' | ')
  for (const k of ['anyOf', 'oneOf']) {
    if (Array.isArray(p[k])) return (p[k] as Record<string, unknown>[]).map(typeOf).join(' | ')
  }
  return 'any'
}

export interface StrategyDoc {
  kind: 'selector'
  name: string
  description: string
  params: ParamDoc[]
}

/** Every registered strategy with its params (`dataflex components --json`). */
export function registryDocs(registry: StrategyRegistry = defaultRegistry()): StrategyDoc[] {
  const docs: StrategyDoc[] = registry.selectorDefinitions().map((def) => ({
    kind: 'selector',
    name: def.name,
    description: def.description,
    params: describeParams(def).filter((p) => !(p.name in COMMON_PARAMS)),
  }))
  docs.push({
    kind: 'selector',
    name: CUSTOM,
    description: 'your own strategy: a TypeScript file default-exporting defineSelector({...}); its params are its own',
    params: [{ name: 'path', type: 'string', required: true, description: 'the strategy file, relative to the file the preset is written in' }],
  })
  return docs
}

/** `dataflex components`: a plain-text table of the registered strategies and their params. */
export function formatRegistry(docs: StrategyDoc[] = registryDocs()): string {
  const lines = ['selectors (train_type: dynamic_select):']
  for (const d of docs) {
    lines.push(`  ${d.name}  ${d.description}`)
    const width = Math.max(0, ...d.params.map((p) => p.name.length))
    for (const p of d.params) {
      const dflt = p.required ? 'required' : p.default !== undefined ? `default ${JSON.stringify(p.default)}` : 'optional'
      lines.push(`      ${p.name.padEnd(width)}  ${p.type}, ${dflt}${p.description ? ` — ${p.description}` : ''}`)
    }
  }
  lines.push('every preset may also set:')
  for (const [name, text] of Object.entries(COMMON_PARAMS)) lines.push(`      ${name}  ${text}`)
  return lines.join('\n') + '\n'
}
