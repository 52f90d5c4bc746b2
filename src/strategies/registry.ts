/**
 * The registry: per component kind, algorithm name → definition. Unlike the Python DataFlex, an algorithm's name is
 * what a preset's `name:` says, not the preset key, so two presets of one algorithm coexist (presets.ts); and
 * `custom` is not a registered algorithm but a user file loaded by path (user-files.ts).
 */
import { COMPONENT_KINDS, type AnyDefinition, type ComponentKind } from './kinds.ts'
import { BUILTIN_MIXERS } from './mixers/index.ts'
import { BUILTIN_REORDERS } from './reorders/variants.ts'
import { BUILTIN_SELECTORS } from './selectors/index.ts'
import { RANDOM_SELECTOR } from './selectors/random.ts'
import { BUILTIN_WEIGHTERS } from './weighters/index.ts'

/** The algorithm that loads a user strategy file: `name: custom`, `params: {path: ./my_mixer.ts, ...}`. */
export const CUSTOM = 'custom'

export class RegistryError extends Error {
  override readonly name = 'RegistryError'
  readonly code = 'duplicate_strategy'
}

export class ComponentRegistry {
  private readonly tables = new Map<ComponentKind, Map<string, AnyDefinition>>(COMPONENT_KINDS.map((k) => [k, new Map()]))

  register(def: AnyDefinition): this {
    const table = this.tables.get(def.kind)!
    if (def.name === CUSTOM) throw new RegistryError(`'${CUSTOM}' is reserved for user strategies loaded by path`)
    if (table.has(def.name)) throw new RegistryError(`${def.kind} '${def.name}' is registered twice`)
    table.set(def.name, def)
    return this
  }

  get<K extends ComponentKind>(kind: K, name: string): AnyDefinition<K> | undefined {
    return this.tables.get(kind)!.get(name) as AnyDefinition<K> | undefined
  }

  /** Registered algorithm names of a kind, plus `custom`. */
  names(kind: ComponentKind): string[] {
    return [...[...this.tables.get(kind)!.keys()].sort(), CUSTOM]
  }

  /** Registered definitions of a kind, by name. */
  definitions<K extends ComponentKind>(kind: K): AnyDefinition<K>[] {
    return ([...this.tables.get(kind)!.values()] as AnyDefinition<K>[]).sort((a, b) => a.name.localeCompare(b.name))
  }
}

/**
 * Every built-in strategy: the selectors (selectors/index.ts) plus `random`, the mixers (mixers/index.ts) and the
 * weighters (weighters/index.ts). And the reorders `static` and `dynamic` (reorders/variants.ts).
 */
export function defaultRegistry(): ComponentRegistry {
  const registry = new ComponentRegistry()
  for (const def of BUILTIN_SELECTORS) registry.register(def)
  for (const def of BUILTIN_MIXERS) registry.register(def)
  for (const def of BUILTIN_WEIGHTERS) registry.register(def)
  for (const def of BUILTIN_REORDERS) registry.register(def)
  if (registry.get('selector', RANDOM_SELECTOR.name) === undefined) registry.register(RANDOM_SELECTOR)
  return registry
}
