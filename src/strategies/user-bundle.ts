/**
 * How a user strategy file runs, with no build step and wherever it lives: esbuild bundles it (TypeScript or
 * JavaScript, with the local files it imports) into one ES module, imported from a `data:` URL. In that bundle the
 * bare imports 'dataflex-ts' and 'zod' are the running DataFlex's own module objects (authoring.ts and its zod), not
 * copies: a file in a folder without node_modules works, and what it defines is made of the objects the registry
 * works with (the zod classes of its `instanceof z.ZodType` check and JSON Schema export, the Rng class of ctx.rng).
 *
 * The bundle keeps its source map, so a stack through user code reads as the user's files and lines (`UserSource`).
 */
import { createHash } from 'node:crypto'
import { SourceMap, type SourceMapPayload } from 'node:module'
import { basename, dirname, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Message, Plugin } from 'esbuild'
import * as zod from 'zod'
import * as authoring from '../authoring.ts'

/** Bare imports a user file gets from the running DataFlex, whatever node_modules sit beside it (if any). */
const HOST_MODULES: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  'dataflex-ts': authoring,
  zod,
  'zod/v4': zod,
}
// A data: module can import nothing of ours, so the bundle reads the host modules from here.
const HOST_KEY = 'dataflex-ts.host-modules'
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/

/** A stand-in module re-exporting one host module's exports. */
function hostModuleSource(name: string): string {
  const ns = HOST_MODULES[name]!
  const names = Object.keys(ns).filter((k) => k !== 'default' && IDENTIFIER.test(k))
  return [
    `const m = globalThis[Symbol.for(${JSON.stringify(HOST_KEY)})][${JSON.stringify(name)}];`,
    ...names.map((k, i) => `const _${i} = m[${JSON.stringify(k)}];`),
    `export { ${names.map((k, i) => `_${i} as ${k}`).join(', ')} };`,
    ...('default' in ns ? ['export default m.default;'] : []),
  ].join('\n')
}

const hostModules: Plugin = {
  name: 'dataflex-host-modules',
  setup(build) {
    const filter = new RegExp(`^(${Object.keys(HOST_MODULES).map((n) => n.replace(/[/-]/g, '\\$&')).join('|')})$`)
    build.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'dataflex-host' }))
    build.onLoad({ filter: /.*/, namespace: 'dataflex-host' }, (args) => ({ contents: hostModuleSource(args.path), loader: 'js' }))
  },
}

/** A file:line:column in a user's source file (1-based, as editors and stack traces count). */
export interface SourceLocation {
  readonly file: string
  readonly line: number
  readonly column: number
}

export function formatLocation(at: SourceLocation): string {
  return `${at.file}:${at.line}:${at.column}`
}

export interface ErrorOrigin {
  /** The error was thrown by user code (its top frame), not by code it called. */
  readonly thrower: boolean
  /** The innermost user frame. */
  readonly at?: SourceLocation
}

const explained = new WeakMap<Error, ErrorOrigin>()

/** One stack frame line: `    at name (location)` or `    at location`. */
const FRAME = /^\s+at (?:.*\()?(.+?):(\d+):(\d+)\)?$/

/** A loaded user file: its bundle, and what maps the bundle's positions back to the user's files. */
export class UserSource {
  private readonly map: SourceMap
  private readonly mapDir: string
  private lineStarts: number[] | undefined

  constructor(
    /** The strategy file (absolute). */
    readonly file: string,
    /** The bundled ES module. */
    readonly code: string,
    map: SourceMapPayload,
    /** The script name the bundle's stack frames carry (its `sourceURL`). */
    readonly url: string,
  ) {
    this.map = new SourceMap(map)
    this.mapDir = dirname(file)
    this.dataUrl = `data:text/javascript;base64,${Buffer.from(`${code}\n//# sourceURL=${url}\n`).toString('base64')}`
  }

  /** What the module is imported from. A stack formatter that ignores `sourceURL` (vitest's) names frames by it. */
  readonly dataUrl: string

  private isBundle(script: string): boolean {
    return script === this.url || script === this.dataUrl
  }

  /** sha256 of the bundle: it changes with the file and with any local file it imports. */
  get hash(): string {
    return createHash('sha256').update(this.code).digest('hex')
  }

  /** Where a 1-based position of the bundle comes from, when it is user code. */
  original(line: number, column: number): SourceLocation | undefined {
    const o = this.map.findOrigin(line, column) as { fileName?: string; lineNumber?: number; columnNumber?: number }
    if (o.fileName === undefined || o.lineNumber === undefined || o.columnNumber === undefined || o.fileName.startsWith('dataflex-host:')) return undefined
    return { file: resolve(this.mapDir, o.fileName), line: o.lineNumber, column: o.columnNumber }
  }

  /** A stack with every frame in the bundle rewritten to the user's file:line:column. */
  mapStack(stack: string): string {
    return stack
      .split('\n')
      .map((l) => {
        const m = FRAME.exec(l)
        if (m === null || !this.isBundle(m[1]!)) return l
        const at = this.original(Number(m[2]), Number(m[3]))
        return at === undefined ? l : l.replace(`${m[1]}:${m[2]}:${m[3]}`, formatLocation(at))
      })
      .join('\n')
  }

  /**
   * Where user code is in the stack of `err`: `thrower` when its top frame (Node's internals aside) is user code,
   * `at` the first user frame. The error's stack is rewritten to the user's files on the way (once per error).
   */
  explain(err: unknown): ErrorOrigin {
    if (!(err instanceof Error) || err.stack === undefined) return { thrower: false }
    const known = explained.get(err)
    if (known !== undefined) return known
    let origin: ErrorOrigin = { thrower: false }
    let top = true
    for (const l of err.stack.split('\n')) {
      const m = FRAME.exec(l)
      if (m === null || m[1]!.startsWith('node:')) continue
      const at = this.isBundle(m[1]!) ? this.original(Number(m[2]), Number(m[3])) : undefined
      if (at !== undefined) {
        origin = { thrower: top, at }
        break
      }
      top = false
    }
    err.stack = this.mapStack(err.stack)
    explained.set(err, origin)
    return origin
  }

  /** Where a function of the bundle is written (its source text is a unique slice of the bundle), else undefined. */
  locate(fn: unknown): SourceLocation | undefined {
    if (typeof fn !== 'function') return undefined
    const text = Function.prototype.toString.call(fn)
    const at = this.code.indexOf(text)
    if (at < 0 || this.code.indexOf(text, at + 1) >= 0) return undefined
    this.lineStarts ??= [0, ...[...this.code.matchAll(/\n/g)].map((m) => m.index! + 1)]
    let line = 0
    while (line + 1 < this.lineStarts.length && this.lineStarts[line + 1]! <= at) line++
    return this.original(line + 1, at - this.lineStarts[line]! + 1)
  }
}

/** esbuild's errors as `file:line:column: text` lines (esbuild names files relative to `dir`). */
function formatMessages(messages: readonly Message[], dir: string): string {
  return messages
    .map((m) => (m.location === null ? m.text : `${resolve(dir, m.location.file)}:${m.location.line}:${m.location.column + 1}: ${m.text}`))
    .join('\n')
}

let building = 0

/** Bundles `file` (absolute) and imports it: its module namespace, and its source for locating errors. */
export async function importUserFile(file: string): Promise<{ module: Record<string, unknown>; source: UserSource }> {
  const esbuild = await import('esbuild')
  const fileUrl = pathToFileURL(file).href
  const dir = dirname(file)
  let result: Awaited<ReturnType<typeof esbuild.build>>
  building++
  try {
    result = await esbuild.build({
      absWorkingDir: dir,
      entryPoints: [file],
      // Never written: it names the map's sources relative to the file's folder.
      outfile: join(dir, `${basename(file)}.bundle.mjs`),
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      write: false,
      sourcemap: 'external',
      sourcesContent: false,
      logLevel: 'silent',
      plugins: [hostModules],
      // In a data: module these would name the bundle, not the file.
      define: { 'import.meta.url': JSON.stringify(fileUrl), 'import.meta.filename': JSON.stringify(file), 'import.meta.dirname': JSON.stringify(dir) },
      // A dependency bundled from the user's node_modules may call require().
      banner: { js: `import { createRequire as __dataflexRequire } from 'node:module'; const require = __dataflexRequire(${JSON.stringify(fileUrl)});` },
    })
  } catch (err) {
    const errors = (err as { errors?: Message[] }).errors
    throw errors !== undefined && errors.length > 0 ? new Error(formatMessages(errors, dir), { cause: err }) : err
  } finally {
    // esbuild's service process is not needed for the rest of a run.
    if (--building === 0) await esbuild.stop()
  }
  const outputs = result.outputFiles ?? []
  const code = outputs.find((f) => !f.path.endsWith('.map'))!.text
  const map = JSON.parse(outputs.find((f) => f.path.endsWith('.map'))!.text) as SourceMapPayload
  // The sourceURL names the module in stack traces (its data: URL is the whole bundle).
  const source = new UserSource(file, code, map, `${fileUrl}.bundle.mjs`)
  Object.defineProperty(globalThis, Symbol.for(HOST_KEY), { value: HOST_MODULES, configurable: true })
  try {
    return { module: (await import(source.dataUrl)) as Record<string, unknown>, source }
  } catch (err) {
    const { at } = source.explain(err)
    throw at === undefined ? err : new Error(`${(err as Error).message} (at ${formatLocation(at)})`, { cause: err })
  }
}
