/**
 * `custom`: a user's strategy file of any kind, loaded by path. It default-exports a definition made with the
 * kind's `define*` helper, or a function of a kit (zod, Rng and that helper) returning one, so a file outside this
 * repository needs no imports of its own.
 */
import { pathToFileURL } from 'node:url'
import { z } from 'zod'
import { ConfigError } from '../config/errors.ts'
import { Rng } from '../math/rng.ts'
import type { ComponentPreset } from './components.ts'
import { KINDS, type AnyDefinition, type ComponentKind } from './kinds.ts'
import { defineMixer } from './mixer.ts'
import { paramKey } from './params.ts'
import { defineReorder } from './reorder.ts'
import { defineSelector } from './types.ts'
import { defineWeighter } from './weighter.ts'

interface KitBase {
  z: typeof z
  Rng: typeof Rng
}
export interface SelectorKit extends KitBase {
  defineSelector: typeof defineSelector
}
export interface MixerKit extends KitBase {
  defineMixer: typeof defineMixer
}
export interface WeighterKit extends KitBase {
  defineWeighter: typeof defineWeighter
}
export interface ReorderKit extends KitBase {
  defineReorder: typeof defineReorder
}

/** What a user file's default-exported function receives, per kind. */
export interface KitOf {
  selector: SelectorKit
  mixer: MixerKit
  weighter: WeighterKit
  reorder: ReorderKit
}

const KITS: { readonly [K in ComponentKind]: KitOf[K] } = {
  selector: { z, Rng, defineSelector },
  mixer: { z, Rng, defineMixer },
  weighter: { z, Rng, defineWeighter },
  reorder: { z, Rng, defineReorder },
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

function definitionKind(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const v = value as Record<string, unknown>
  const ok = typeof v['kind'] === 'string' && typeof v['name'] === 'string' && typeof v['create'] === 'function' && v['params'] instanceof z.ZodType
  return ok ? (v['kind'] as string) : undefined
}

/** Imports a user strategy file of `kind` (`file` is absolute, already found by input-paths.ts). */
export async function loadUserComponent<K extends ComponentKind>(kind: K, file: string, preset: ComponentPreset): Promise<AnyDefinition<K>> {
  const key = paramKey(preset, 'path')
  let mod: { default?: unknown }
  try {
    mod = (await importStrategyFile(file)) as { default?: unknown }
  } catch (err) {
    throw new ConfigError('bad_value', `cannot load custom ${kind} ${file} (${preset.source}): ${(err as Error).message}`, { key, cause: err })
  }
  let value = mod.default
  // A .ts file outside an ESM package loads as CommonJS: its `export default` arrives one level down.
  if (typeof value === 'object' && value !== null && (value as { __esModule?: unknown }).__esModule === true) {
    value = (value as { default?: unknown }).default
  }
  if (typeof value === 'function') {
    try {
      value = (value as (kit: KitOf[K]) => unknown)(KITS[kind])
    } catch (err) {
      const offered = Object.keys(KITS[kind]).join(', ')
      throw new ConfigError('bad_value', `custom ${kind} ${file} (${preset.source}) failed in its default-export function: ${(err as Error).message}`, {
        key,
        hint: `a ${kind} file's function receives { ${offered} }`,
        cause: err,
      })
    }
  }
  const found = definitionKind(value)
  if (found === kind) return value as AnyDefinition<K>
  const define = KINDS[kind].define
  const got = found === undefined ? '' : ` (it exports a ${found})`
  throw new ConfigError('bad_value', `custom ${kind} ${file} must default-export a ${kind} (${define}({...})) or a function returning one${got}`, {
    key,
    hint: kind === 'selector' ? 'see examples/custom_selector.ts' : `see examples/custom_selector.ts for the shape, with ${define} in place of defineSelector`,
  })
}
