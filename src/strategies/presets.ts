/**
 * One resolution for every component kind: `component_name` → its preset → the algorithm (registered, or a user
 * file for `custom`) → validated params with input paths found, before any model is loaded (bad input fails fast,
 * exit 2).
 */
import { resolve } from 'node:path'
import { ConfigError } from '../config/errors.ts'
import type { LoadedConfig } from '../config/load.ts'
import { didYouMean } from '../config/suggest.ts'
import { findPreset, type ComponentPreset } from './components.ts'
import { resolveInputParams, resolveInputPath, type ResolvedInput } from './input-paths.ts'
import { KINDS, type AnyDefinition, type ComponentKind } from './kinds.ts'
import { paramKey, validateParams } from './params.ts'
import { CUSTOM, defaultRegistry, type ComponentRegistry } from './registry.ts'
import { loadUserComponent } from './user-files.ts'

export interface ResolvedComponent<K extends ComponentKind = ComponentKind> {
  kind: K
  /** The preset key (component_name). */
  key: string
  /** The algorithm name (`custom` for user files). */
  algorithm: string
  /** The strategy's own name (the user definition's name for `custom`). */
  strategy: string
  definition: AnyDefinition<K>
  /** Validated params, as the definition's create() takes them; input paths absolute. */
  params: unknown
  /** The algorithm's params as written (cache_dir, custom's path and an algorithm param removed), for cache keys and logs. */
  rawParams: Record<string, unknown>
  /** Absolute cache root from the preset's cache_dir, if set. */
  cacheRoot: string | undefined
  /** Absolute path of the user file, for custom. */
  file: string | undefined
  /** For custom: sha256 of what the file runs (it and the local files it imports), for cache keys. */
  sourceHash?: string
  preset: ComponentPreset
  /** Where each input path was found (custom's file first), for the run log. */
  inputs: ResolvedInput[]
  /** Things the run log should say (e.g. an older section spelling). */
  warnings: string[]
}

export type ResolvedSelector = ResolvedComponent<'selector'>

export interface ResolveOptions {
  /** The preset key; default: the config's component_name. */
  key?: string
  registry?: ComponentRegistry
  cwd?: string
}

/** The algorithm a preset names, and its params without the key that named it (reorders: `params.kind`). */
function algorithmOf(kind: ComponentKind, preset: ComponentPreset, params: Record<string, unknown>): { algorithm: string; at: string; params: Record<string, unknown> } {
  const param = KINDS[kind].algorithmParam
  if (param === undefined || !(param in params)) return { algorithm: preset.name, at: `${preset.section}.${preset.key}.name`, params }
  const { [param]: value, ...rest } = params
  if (typeof value !== 'string' || value === '') {
    throw new ConfigError('bad_value', `bad value for param '${param}' of ${kind} '${preset.key}' in ${preset.source}: expected an algorithm name`, {
      key: paramKey(preset, param),
    })
  }
  return { algorithm: value, at: paramKey(preset, param), params: rest }
}

/** component_name (or opts.key) → a validated component of `kind`. */
export async function resolveComponent<K extends ComponentKind>(
  cfg: Pick<LoadedConfig, 'path' | 'dataflex'>,
  kind: K,
  opts: ResolveOptions = {},
): Promise<ResolvedComponent<K>> {
  const registry = opts.registry ?? defaultRegistry()
  const cwd = opts.cwd ?? process.cwd()
  const { section, trainType } = KINDS[kind]
  const key = opts.key ?? cfg.dataflex.component_name
  if (key === undefined) {
    throw new ConfigError('bad_value', `missing 'component_name': ${trainType} needs a ${kind} preset (under ${section}:)`, { key: 'component_name' })
  }
  const preset = await findPreset(cfg, section, key, { cwd })
  const { cache_dir: cacheDir, ...written } = preset.params
  if (cacheDir !== undefined && cacheDir !== null && (typeof cacheDir !== 'string' || cacheDir === '')) {
    throw new ConfigError('bad_value', `bad value for 'cache_dir' in ${preset.source}: expected a path`, { key: paramKey(preset, 'cache_dir') })
  }
  const cacheRoot = typeof cacheDir === 'string' ? resolve(preset.baseDir, cacheDir) : undefined
  const { algorithm, at, params } = algorithmOf(kind, preset, written)

  let definition: AnyDefinition<K>
  let sourceHash: string | undefined
  let algorithmParams = params
  const inputs: ResolvedInput[] = []
  if (algorithm === CUSTOM) {
    const { path, ...rest } = params
    if (typeof path !== 'string' || path === '') {
      throw new ConfigError('bad_value', `the custom ${kind} needs params.path (${preset.source})`, {
        key: paramKey(preset, 'path'),
        hint: `set params.path to a TypeScript file that default-exports ${KINDS[kind].define}({...}) (docs/authoring.md)`,
      })
    }
    const file = resolveInputPath('path', path, 'file', preset, cwd)
    inputs.push(file)
    ;({ definition, hash: sourceHash } = await loadUserComponent(kind, file.path, preset))
    algorithmParams = rest
  } else {
    const found = registry.get(kind, algorithm)
    if (found === undefined) {
      const names = registry.names(kind)
      throw new ConfigError('bad_value', `unknown ${kind} algorithm '${algorithm}' in ${preset.source}`, {
        key: at,
        hint: didYouMean(algorithm, names) ?? `available ${kind} algorithms: ${names.join(', ')}`,
      })
    }
    definition = found
  }
  const validated = validateParams(kind, definition, algorithmParams, preset, algorithm === CUSTOM ? ['path'] : [])
  const resolved = resolveInputParams(definition.params, validated, preset, cwd)
  inputs.push(...resolved.inputs)
  return {
    kind,
    key,
    algorithm,
    strategy: definition.name,
    definition,
    params: resolved.params,
    rawParams: algorithmParams,
    cacheRoot,
    file: algorithm === CUSTOM ? inputs[0]!.path : undefined,
    ...(sourceHash === undefined ? {} : { sourceHash }),
    preset,
    inputs,
    warnings: [...preset.warnings],
  }
}
