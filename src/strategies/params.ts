/**
 * A definition's params, read through zod's public JSON Schema export (`z.toJSONSchema`, input side): which keys
 * it knows, their types, defaults and descriptions, and which name input paths. From that: one validation of a
 * preset's params for every kind, with "did you mean" hints, and the docs `dataflex components` prints.
 */
import { z } from 'zod'
import { ConfigError } from '../config/errors.ts'
import { issueAt } from '../config/issues.ts'
import { didYouMean } from '../config/suggest.ts'
import type { ComponentPreset } from './components.ts'
import type { AnyDefinition, ComponentKind } from './kinds.ts'

/** How an input-path param is found: a file, a local model folder, or a local model folder else a hub id. */
export type InputPathKind = 'file' | 'model' | 'model_or_id'

declare module 'zod' {
  interface GlobalMeta {
    /** Marks a param that names an input path: `.meta({ path: 'file' })` (resolved by input-paths.ts). */
    path?: InputPathKind
  }
}

/** Params every preset may carry, handled by the trainer rather than the algorithm. */
export const COMMON_PARAMS = {
  cache_dir: 'cache root for this preset (default <output_dir>/dataflex/cache); relative to the file it is written in',
} as const

type JsonSchema = Record<string, unknown>

export interface ParamsInfo {
  /** The schema's input-side JSON Schema (what a preset writes); undefined when JSON Schema cannot express it. */
  schema: JsonSchema | undefined
  /** The keys the schema takes; undefined when it accepts any key (a loose object, a catchall, not an object). */
  known: string[] | undefined
  properties: Record<string, JsonSchema>
  required: ReadonlySet<string>
}

const infoCache = new WeakMap<z.ZodType, ParamsInfo>()

/** What a params schema takes, from its input-side JSON Schema (memoised per schema). */
export function paramsInfo(schema: z.ZodType): ParamsInfo {
  const cached = infoCache.get(schema)
  if (cached !== undefined) return cached
  let json: JsonSchema | undefined
  try {
    json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema
  } catch {
    json = undefined // a schema JSON Schema cannot express: zod's own parse still judges the params
  }
  const properties = (json?.['properties'] ?? {}) as Record<string, JsonSchema>
  const extra = json?.['additionalProperties']
  // additionalProperties false: a strict object. Absent on an object: z.object, which would silently drop an
  // unknown key, so it is an error here too. A schema there (loose object, catchall): any key is taken.
  const isObject = json?.['type'] === 'object'
  const info: ParamsInfo = {
    schema: json,
    known: isObject && (extra === false || extra === undefined) ? Object.keys(properties) : undefined,
    properties,
    required: new Set((json?.['required'] ?? []) as string[]),
  }
  infoCache.set(schema, info)
  return info
}

/** A JSON Schema node and the alternatives of its anyOf/oneOf (a nullish param's meta sits on the inner one). */
function nodes(p: JsonSchema): JsonSchema[] {
  const alternatives = [...((p['anyOf'] as JsonSchema[] | undefined) ?? []), ...((p['oneOf'] as JsonSchema[] | undefined) ?? [])]
  return [p, ...alternatives]
}

function firstOf<T>(p: JsonSchema, key: string, is: (v: unknown) => v is T): T | undefined {
  for (const n of nodes(p)) if (is(n[key])) return n[key]
  return undefined
}

const isString = (v: unknown): v is string => typeof v === 'string'

/** The params of a schema marked as input paths, and how each is found. */
export function inputPathParams(schema: z.ZodType): [string, InputPathKind][] {
  const out: [string, InputPathKind][] = []
  for (const [name, p] of Object.entries(paramsInfo(schema).properties)) {
    const kind = firstOf(p, 'path', isString)
    if (kind === 'file' || kind === 'model' || kind === 'model_or_id') out.push([name, kind])
  }
  return out
}

/** Where a param sits in the components config, for error keys: `mixers.odm_fast.params.alpha`. */
export function paramKey(preset: ComponentPreset, param?: string): string {
  const base = `${preset.section}.${preset.key}.params`
  return param === undefined || param === '' ? base : `${base}.${param}`
}

/**
 * Validates a preset's params with the algorithm's schema: unknown params and bad values are ConfigErrors naming
 * the kind, the preset, the algorithm and the file. `extra` are params the preset may carry besides the schema's
 * (for hints only: they are removed before this runs).
 */
export function validateParams(
  kind: ComponentKind,
  def: AnyDefinition,
  params: Record<string, unknown>,
  preset: ComponentPreset,
  extra: readonly string[] = [],
): unknown {
  const what = `${kind} '${preset.key}' (algorithm ${def.name}) in ${preset.source}`
  const known = paramsInfo(def.params).known
  if (known !== undefined) {
    const allowed = [...known, ...extra, ...Object.keys(COMMON_PARAMS)]
    for (const k of Object.keys(params)) {
      if (known.includes(k)) continue
      throw new ConfigError('unknown_key', `unknown param '${k}' for ${what}`, {
        key: paramKey(preset, k),
        hint: didYouMean(k, allowed) ?? `${def.name} takes: ${allowed.join(', ') || 'no params'}`,
      })
    }
  }
  const parsed = def.params.safeParse(params)
  if (parsed.success) return parsed.data
  const { issue, key: path, value, unknownKey, suggestion } = issueAt(parsed.error, params)
  if (unknownKey !== undefined) {
    throw new ConfigError('unknown_key', `unknown param '${unknownKey.name}' for ${what}`, {
      key: paramKey(preset, unknownKey.key),
      hint: didYouMean(unknownKey.name, known ?? []),
    })
  }
  const message =
    value === undefined && path !== ''
      ? `missing param '${path}' for ${what}: ${issue.message}`
      : `bad value for param '${path || '(params)'}' of ${what}: ${JSON.stringify(value)}; ${issue.message}`
  throw new ConfigError('bad_value', message, { key: paramKey(preset, path), hint: suggestion, cause: parsed.error })
}

export interface ParamDoc {
  name: string
  type: string
  default?: unknown
  required: boolean
  description?: string
}

/** The params of an algorithm, for `dataflex components` (common params such as cache_dir left out). */
export function describeParams(def: Pick<AnyDefinition, 'params'>): ParamDoc[] {
  const { properties, required } = paramsInfo(def.params)
  return Object.entries(properties)
    .filter(([name]) => !(name in COMMON_PARAMS))
    .map(([name, p]) => {
      const description = firstOf(p, 'description', isString)
      return {
        name,
        type: typeOf(p),
        ...(p['default'] !== undefined ? { default: p['default'] } : {}),
        required: required.has(name) && p['default'] === undefined,
        ...(description !== undefined ? { description } : {}),
      }
    })
}

function typeOf(p: JsonSchema): string {
  if (Array.isArray(p['enum'])) return (p['enum'] as unknown[]).map((v) => JSON.stringify(v)).join(' | ')
  if (typeof p['type'] === 'string') {
    if (p['type'] === 'array' && typeof p['items'] === 'object' && p['items'] !== null) return `${typeOf(p['items'] as JsonSchema)}[]`
    return p['type']
  }
  if (Array.isArray(p['type'])) return (p['type'] as string[]).join(' | ')
  for (const k of ['anyOf', 'oneOf']) {
    if (Array.isArray(p[k])) return (p[k] as JsonSchema[]).map(typeOf).join(' | ')
  }
  return 'any'
}
