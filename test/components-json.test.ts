/**
 * `dataflex components --json` against the schemas it describes: for every strategy of every kind, the listed params
 * are exactly its schema's, each listed default is valid for the emitted JSON Schema, parses with the strategy's zod
 * schema to what an absent param gives, and fits the listed type; and no param with a default goes unlisted. The
 * JSON Schema check is a small validator written here (it refuses keywords it does not know, so a schema using a
 * new one fails loudly rather than passing unchecked).
 */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { capturedIO } from './support.ts'
import { main } from '../src/cli/main.ts'
import { COMPONENT_KINDS, type ComponentKind } from '../src/strategies/kinds.ts'
import { COMMON_PARAMS } from '../src/strategies/params.ts'
import { defaultRegistry } from '../src/strategies/registry.ts'

type JsonSchema = Record<string, unknown>

interface Listed {
  kind: ComponentKind
  name: string
  description: string
  params: { name: string; type: string; default?: unknown; required: boolean; description?: string }[]
  schema: JsonSchema
}

async function listed(): Promise<Listed[]> {
  const { io, out } = capturedIO()
  expect(await main(['components', '--json'], io)).toBe(0)
  return JSON.parse(out()) as Listed[]
}

// Keywords that say nothing about validity (annotations, and the input-path mark of our schemas).
const ANNOTATIONS = new Set(['$schema', 'description', 'default', 'title', 'path'])

function typeOk(type: string, v: unknown): boolean {
  switch (type) {
    case 'null':
      return v === null
    case 'boolean':
      return typeof v === 'boolean'
    case 'string':
      return typeof v === 'string'
    case 'number':
      return typeof v === 'number' && Number.isFinite(v)
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v)
    case 'array':
      return Array.isArray(v)
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v)
    default:
      throw new Error(`unknown JSON Schema type ${type}`)
  }
}

/** Why `v` is not valid for `schema` (empty: valid), for the JSON Schema keywords zod emits. */
function errors(schema: JsonSchema | boolean, v: unknown, at = '$'): string[] {
  if (schema === true) return []
  if (schema === false) return [`${at}: nothing is allowed here`]
  const out: string[] = []
  const fail = (why: string): void => void out.push(`${at}: ${why}`)
  for (const [key, s] of Object.entries(schema)) {
    if (ANNOTATIONS.has(key)) continue
    switch (key) {
      case 'type': {
        const types = Array.isArray(s) ? (s as string[]) : [s as string]
        if (!types.some((t) => typeOk(t, v))) fail(`not ${types.join(' or ')}`)
        break
      }
      case 'enum':
        if (!(s as unknown[]).some((e) => JSON.stringify(e) === JSON.stringify(v))) fail(`not one of ${JSON.stringify(s)}`)
        break
      case 'const':
        if (JSON.stringify(s) !== JSON.stringify(v)) fail(`not ${JSON.stringify(s)}`)
        break
      case 'anyOf':
        if (!(s as JsonSchema[]).some((alt) => errors(alt, v, at).length === 0)) fail('matches no alternative of anyOf')
        break
      case 'oneOf':
        if ((s as JsonSchema[]).filter((alt) => errors(alt, v, at).length === 0).length !== 1) fail('does not match exactly one alternative of oneOf')
        break
      case 'minimum':
        if (typeof v === 'number' && v < (s as number)) fail(`below ${String(s)}`)
        break
      case 'maximum':
        if (typeof v === 'number' && v > (s as number)) fail(`above ${String(s)}`)
        break
      case 'exclusiveMinimum':
        if (typeof v === 'number' && v <= (s as number)) fail(`not above ${String(s)}`)
        break
      case 'exclusiveMaximum':
        if (typeof v === 'number' && v >= (s as number)) fail(`not below ${String(s)}`)
        break
      case 'minLength':
        if (typeof v === 'string' && [...v].length < (s as number)) fail(`shorter than ${String(s)}`)
        break
      case 'maxLength':
        if (typeof v === 'string' && [...v].length > (s as number)) fail(`longer than ${String(s)}`)
        break
      case 'pattern':
        if (typeof v === 'string' && !new RegExp(s as string, 'u').test(v)) fail(`does not match ${String(s)}`)
        break
      case 'minItems':
        if (Array.isArray(v) && v.length < (s as number)) fail(`fewer than ${String(s)} items`)
        break
      case 'maxItems':
        if (Array.isArray(v) && v.length > (s as number)) fail(`more than ${String(s)} items`)
        break
      case 'prefixItems':
        if (Array.isArray(v)) (s as JsonSchema[]).forEach((item, i) => i < v.length && out.push(...errors(item, v[i], `${at}[${i}]`)))
        break
      case 'items':
        if (Array.isArray(v)) {
          const from = Array.isArray(schema['prefixItems']) ? (schema['prefixItems'] as unknown[]).length : 0
          for (let i = from; i < v.length; i++) out.push(...errors(s as JsonSchema | boolean, v[i], `${at}[${i}]`))
        }
        break
      case 'required':
        if (typeOk('object', v)) for (const k of s as string[]) if (!(k in (v as object))) fail(`no ${k}`)
        break
      case 'properties':
        if (typeOk('object', v)) {
          for (const [k, sub] of Object.entries(s as Record<string, JsonSchema>)) {
            if (k in (v as object)) out.push(...errors(sub, (v as Record<string, unknown>)[k], `${at}.${k}`))
          }
        }
        break
      case 'additionalProperties':
        if (typeOk('object', v)) {
          const known = Object.keys((schema['properties'] as object | undefined) ?? {})
          for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (!known.includes(k)) out.push(...errors(s as JsonSchema | boolean, x, `${at}.${k}`))
        }
        break
      case 'propertyNames':
        if (typeOk('object', v)) for (const k of Object.keys(v as object)) out.push(...errors(s as JsonSchema, k, `${at} key ${k}`))
        break
      default:
        throw new Error(`${at}: the test's validator does not know the JSON Schema keyword '${key}'`)
    }
  }
  return out
}

/** Whether a listed type (`integer | null`, `"adam" | "sgd"`, `number[]`, …) admits the value. */
function typeAdmits(type: string, v: unknown): boolean {
  const alternatives = type.split(' | ')
  if (v === null) return alternatives.includes('null')
  if (Array.isArray(v)) return alternatives.some((a) => a === 'array' || (a.endsWith('[]') && v.every((x) => typeAdmits(a.slice(0, -2), x))))
  if (typeof v === 'number') return alternatives.includes('number') || (Number.isInteger(v) && alternatives.includes('integer')) || alternatives.includes(JSON.stringify(v))
  if (typeof v === 'string' || typeof v === 'boolean') return alternatives.includes(typeof v) || alternatives.includes(JSON.stringify(v))
  return typeof v === 'object' && alternatives.includes('object')
}

describe('dataflex components --json validates against the params schemas', () => {
  it('the validator itself: accepts what the keywords allow, refuses what they do not', () => {
    const schema = { type: 'object', properties: { a: { type: 'integer', minimum: 1 }, b: { anyOf: [{ type: 'string', enum: ['x'] }, { type: 'null' }] } }, required: ['a'], additionalProperties: false }
    expect(errors(schema, { a: 2, b: null })).toEqual([])
    expect(errors(schema, { a: 0.5, b: 'y', c: 1 })).toEqual(['$.a: not integer', '$.a: below 1', '$.b: matches no alternative of anyOf', '$.c: nothing is allowed here'])
    expect(errors({ type: 'array', prefixItems: [{ type: 'number' }], items: false, minItems: 1 }, [1, 2])).toEqual(['$[1]: nothing is allowed here'])
    expect(() => errors({ multipleOf: 2 }, 4)).toThrow(/does not know the JSON Schema keyword 'multipleOf'/)
  })

  it('every strategy: its params are its schema\'s, and every default is valid, round-trips through zod and fits its type', async () => {
    const docs = await listed()
    const registry = defaultRegistry()
    for (const kind of COMPONENT_KINDS) {
      expect(docs.filter((d) => d.kind === kind).map((d) => d.name)).toEqual(registry.names(kind))
    }
    let defaults = 0
    for (const d of docs) {
      const where = `${d.kind} ${d.name}`
      expect(d.schema['type'], where).toBe('object')
      const properties = d.schema['properties'] as Record<string, JsonSchema>
      // Listed: exactly the schema's properties, less the ones every preset may set.
      expect(d.params.map((p) => p.name).sort(), where).toEqual(Object.keys(properties).filter((k) => !(k in COMMON_PARAMS)).sort())
      const required = new Set((d.schema['required'] as string[] | undefined) ?? [])
      if (d.name === 'custom') {
        // `path`, and the file's own params besides.
        expect(d.params, where).toEqual([expect.objectContaining({ name: 'path', type: 'string', required: true })])
        expect([...required], where).toEqual(['path'])
        expect(d.schema['additionalProperties'], where).not.toBe(false)
        continue
      }
      const params = registry.get(d.kind, d.name)!.params
      expect(params, where).toBeInstanceOf(z.ZodObject)
      const shape = (params as z.ZodObject).shape as Record<string, z.ZodType>
      for (const p of d.params) {
        const what = `${where}: ${p.name}`
        const field = shape[p.name]!
        const absent = field.safeParse(undefined)
        // Required exactly when zod refuses the param absent; a param zod fills in is listed with that default.
        expect(p.required, what).toBe(!absent.success)
        if (absent.success && absent.data !== undefined) expect(p, what).toHaveProperty('default')
        if (!('default' in p)) continue
        defaults++
        expect(required.has(p.name), what).toBe(false)
        expect(errors(properties[p.name]!, p.default, p.name), what).toEqual([])
        expect(field.parse(p.default), what).toEqual(absent.data)
        expect(typeAdmits(p.type, p.default), `${what}: type ${p.type}, default ${JSON.stringify(p.default)}`).toBe(true)
      }
      // The defaults together are a valid params object once the required params are there too.
      const example = Object.fromEntries(d.params.filter((p) => 'default' in p).map((p) => [p.name, p.default]))
      const missing = [...required].filter((k) => !(k in example))
      expect(errors({ ...d.schema, required: [...required].filter((k) => !missing.includes(k)) }, example), where).toEqual([])
    }
    expect(defaults).toBeGreaterThan(50)
  })
})
