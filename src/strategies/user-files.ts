/**
 * `custom`: a user's strategy file of any kind, loaded by path (user-bundle.ts: no build step, anywhere on disk).
 *
 * The file is an ordinary module that imports its `define*` helper from 'dataflex-ts' and zod from 'zod', and
 * exports the definition: as its default export, or as its only exported definition of that kind. The older kit form
 * (a default-exported function that receives zod, Rng and the helper) still loads.
 *
 * The definition is wrapped so that an error in user code names the user's file and line: a throw in create() or in
 * any method of the instance (synchronous or not) becomes a UserCodeError located by the source map, and a trainer's
 * complaint about what a method returned is given the method's place (`attributeToUserCode`).
 */
import { z } from 'zod'
import { ConfigError, errorCode } from '../config/errors.ts'
import { ComponentError } from './component-error.ts'
import type { ComponentPreset } from './components.ts'
import { KINDS, type AnyDefinition, type ComponentKind } from './kinds.ts'
import { KITS, type KitOf } from './kit.ts'
import { paramKey } from './params.ts'
import { formatLocation, importUserFile, type SourceLocation, type UserSource } from './user-bundle.ts'

/** An error raised in a user strategy's code, with where in the user's files it was raised. */
export class UserCodeError extends ComponentError<'user_code'> {
  override readonly name = 'UserCodeError'

  constructor(
    strategy: string,
    message: string,
    /** The innermost user frame of the error, or where the method that failed is written. */
    readonly location: SourceLocation | undefined,
    cause?: unknown,
  ) {
    super(strategy, 'user_code', message, cause === undefined ? {} : { cause })
  }
}

function definitionKind(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const v = value as Record<string, unknown>
  const ok = typeof v['kind'] === 'string' && typeof v['name'] === 'string' && typeof v['create'] === 'function' && v['params'] instanceof z.ZodType
  return ok ? (v['kind'] as string) : undefined
}

function describeValue(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v
}

/** The last method each user strategy (by name) returned from, for `attributeToUserCode`. */
const lastCalls = new Map<string, { method: string; fn: unknown; source: UserSource }>()

/** Calls a user function; what it throws (or rejects with) comes back located in the user's files. */
function invoke(source: UserSource, strategy: string, method: string, fn: (...args: unknown[]) => unknown, self: unknown, args: unknown[]): unknown {
  const fail = (err: unknown): never => {
    throw located(source, strategy, method, fn, err)
  }
  const done = <T>(value: T): T => {
    lastCalls.set(strategy, { method, fn, source })
    return value
  }
  let out: unknown
  try {
    out = fn.apply(self, args)
  } catch (err) {
    fail(err)
  }
  if (out instanceof Promise) return out.then(done, fail)
  return done(out)
}

/**
 * What user code threw, as a UserCodeError at its place. The run's own errors passing through user code (an
 * interrupted run, a failed model op: errors with a `code` that user code did not throw) are left as they are.
 */
function located(source: UserSource, strategy: string, method: string, fn: unknown, err: unknown): unknown {
  if (err instanceof UserCodeError) return err
  const origin = source.explain(err)
  if (!origin.thrower && errorCode(err) !== undefined) return err
  const at = origin.at ?? source.locate(fn)
  const message = err instanceof Error ? err.message : String(err)
  const where = at === undefined ? ` in ${source.file}` : ` at ${formatLocation(at)}`
  return new UserCodeError(strategy, `${method}() ${origin.thrower ? 'threw' : 'failed'}${where}: ${message}`, at, err)
}

function isPlainObject(v: unknown): v is Record<PropertyKey, unknown> {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype
}

/**
 * The instance as the trainers see it: each method call goes through `invoke`, and so do the methods of a plain
 * object property that has some (a weighter's `refresh.run`). Methods run with the instance itself as `this` (class
 * private fields work).
 */
function guard<T extends object>(target: T, source: UserSource, strategy: string, prefix = ''): T {
  const methods = new Map<PropertyKey, { fn: unknown; wrapper: unknown }>()
  const nested = new Map<PropertyKey, { value: unknown; proxy: unknown }>()
  return new Proxy(target, {
    get(t, key) {
      const v: unknown = Reflect.get(t, key, t)
      if (typeof v === 'function' && key !== 'constructor') {
        const hit = methods.get(key)
        if (hit?.fn === v) return hit.wrapper
        const wrapper = (...args: unknown[]): unknown => invoke(source, strategy, `${prefix}${String(key)}`, v as (...a: unknown[]) => unknown, t, args)
        methods.set(key, { fn: v, wrapper })
        return wrapper
      }
      if (isPlainObject(v) && Object.values(v).some((x) => typeof x === 'function')) {
        const hit = nested.get(key)
        if (hit?.value === v) return hit.proxy
        const proxy = guard(v, source, strategy, `${prefix}${String(key)}.`)
        nested.set(key, { value: v, proxy })
        return proxy
      }
      return v
    },
  })
}

/** The user's definition with create() and the instances it makes guarded. */
function guardDefinition<K extends ComponentKind>(kind: K, def: AnyDefinition<K>, source: UserSource): AnyDefinition<K> {
  const create = def.create as (...args: unknown[]) => unknown
  return {
    ...def,
    create(params: unknown, env: unknown) {
      const instance = invoke(source, def.name, 'create', create, def, [params, env])
      if (typeof instance !== 'object' || instance === null) {
        const at = source.locate(create)
        throw new UserCodeError(def.name, `create() returned ${describeValue(instance)}, not a ${kind} instance (an object)${at === undefined ? '' : ` (${formatLocation(at)})`}`, at)
      }
      return guard(instance, source, def.name)
    },
  } as AnyDefinition<K>
}

/**
 * A trainer's complaint about what a user strategy returned (a StrategyError, whose message names the strategy):
 * the same error, its first line extended with the user method that returned it last and where that method is
 * written. Anything else is returned as it is.
 */
export function attributeToUserCode(err: unknown): unknown {
  if (!(err instanceof Error) || err.name !== 'StrategyError') return err
  // A throw inside user code already names its own place; only a bad return value needs one.
  if (/\(\) threw at /.test(err.message)) return err
  for (const [strategy, call] of lastCalls) {
    if (!err.message.startsWith(`${strategy}:`) && !err.message.includes(`'${strategy}'`)) continue
    const at = call.source.locate(call.fn)
    const [first, ...rest] = err.message.split('\n')
    err.message = [`${first} (returned by ${call.method}() ${at === undefined ? `in ${call.source.file}` : `at ${formatLocation(at)}`})`, ...rest].join('\n')
    break
  }
  return err
}

/** The definition a module offers for `kind`: its default export (a definition or a kit function), else its only exported definition of that kind. */
function pickDefinition<K extends ComponentKind>(kind: K, mod: Record<string, unknown>, source: UserSource, file: string, where: string, key: string): unknown {
  if ('default' in mod) {
    let value = mod['default']
    // A CommonJS file's `exports.default` arrives one level down.
    if (typeof value === 'object' && value !== null && (value as { __esModule?: unknown }).__esModule === true) {
      value = (value as { default?: unknown }).default
    }
    if (typeof value !== 'function') return value
    try {
      return (value as (kit: KitOf[K]) => unknown)(KITS[kind])
    } catch (err) {
      const { at } = source.explain(err)
      const offered = Object.keys(KITS[kind]).join(', ')
      throw new ConfigError('bad_value', `custom ${kind} ${file} (${where}) failed in its default-export function${at === undefined ? '' : ` at ${formatLocation(at)}`}: ${(err as Error).message}`, {
        key,
        hint: `a ${kind} file's function receives { ${offered} }`,
        cause: err,
      })
    }
  }
  const exported = Object.entries(mod).filter(([, v]) => definitionKind(v) !== undefined)
  const ofKind = exported.filter(([, v]) => definitionKind(v) === kind)
  if (ofKind.length === 1) return ofKind[0]![1]
  if (ofKind.length > 1) {
    throw new ConfigError('bad_value', `custom ${kind} ${file} (${where}) exports ${ofKind.length} ${kind}s (${ofKind.map(([n]) => n).join(', ')}): it must export one, or default-export the one to use`, { key })
  }
  return exported[0]?.[1]
}

/**
 * Imports a user strategy file of `kind` (`file` is absolute, already found by input-paths.ts): its guarded
 * definition, and a hash of everything it runs (the file and the local files it imports) for cache keys.
 */
export async function loadUserComponent<K extends ComponentKind>(kind: K, file: string, preset: ComponentPreset): Promise<{ definition: AnyDefinition<K>; hash: string }> {
  const key = paramKey(preset, 'path')
  let loaded: Awaited<ReturnType<typeof importUserFile>>
  try {
    loaded = await importUserFile(file)
  } catch (err) {
    throw new ConfigError('bad_value', `cannot load custom ${kind} ${file} (${preset.source}): ${(err as Error).message}`, { key, cause: err })
  }
  const { module, source } = loaded
  const value = pickDefinition(kind, module, source, file, preset.source, key)
  const found = definitionKind(value)
  if (found === kind) return { definition: guardDefinition(kind, value as AnyDefinition<K>, source), hash: source.hash }
  const define = KINDS[kind].define
  const got = found === undefined ? '' : ` (it exports a ${found})`
  throw new ConfigError('bad_value', `custom ${kind} ${file} must export a ${kind}: \`export default ${define}({...})\`, or one exported ${kind}${got}`, {
    key,
    hint: `import { ${define} } from 'dataflex-ts' (docs/authoring.md)`,
  })
}
