/**
 * `dataflex train cfg.yaml k=v ...` → a validated config: DataFlex keys checked with zod, every other key kept
 * verbatim for LLaMA-Factory, and the cheap checks LLaMA-Factory would only make after a slow start done up front.
 */
import { readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { resolve } from 'node:path'
import type { z } from 'zod'
import { ConfigError } from './errors.ts'
import { issueAt } from './issues.ts'
import { loadLfArgNames } from './lf-args.ts'
import type { TorchrunLaunch } from '../bridge/launch.ts'
import { checkStringKeys } from './lf-strings.ts'
import { checkDatasets, checkLaunchSwitches, checkModel, checkOutputDir, checkProportions, checkTrainingNumbers, type PrecheckContext } from './prechecks.ts'
import {
  COMPONENT_SECTIONS,
  DATAFLEX_KEYS,
  DataflexConfigRulesSchema,
  DataflexConfigSchema,
  TrainTypeSchema,
  type TrainType,
  type DataflexConfig,
} from './schema.ts'
import { didYouMean } from './suggest.ts'
import { YamlSyntaxError, parseOverrideValue, parsePythonYaml } from './yaml.ts'

export interface LoadedConfig {
  /** Absolute path of the YAML file; for a config given as an object, `<cwd>/<config object>` (its folder is cwd). */
  path: string
  dataflex: DataflexConfig
  /** Every non-DataFlex key (overrides applied), passed to LLaMA-Factory as-is. */
  lf: Record<string, unknown>
  /** Absolute `output_dir` (Hugging Face's default `trainer_output` when unset). */
  outputDir: string
  /** The sidecar runs under torchrun (LLaMA-Factory's launch switches in the environment); undefined: one process. */
  launch?: TorchrunLaunch
}

export interface LoadOptions {
  /** Base for relative paths, as LLaMA-Factory resolves them; default process.cwd(). */
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** Interpreter for the LLaMA-Factory key check; `false` skips that check. */
  python?: string | false
  /** Cache folder for the LLaMA-Factory key list; default <repo>/.cache. */
  cacheDir?: string
  onWarning?: (message: string) => void
  /** The model and datasets are another host's (`train --connect`): not looked for here; its sidecar reports them. */
  remotePaths?: boolean
}

type Plain = Record<string, unknown>

/** `key=value` strings as llamafactory-cli takes them, or the same as an object: `{ 'a.b': value }` sets `a.b`. */
export type ConfigOverrides = readonly string[] | Readonly<Record<string, unknown>>

/** The name messages give a config passed as an object (`where` a key was set), and the base of LoadedConfig.path. */
export const CONFIG_OBJECT = '<config object>'

function isPlain(value: unknown): value is Plain {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function show(value: unknown): string {
  const text = typeof value === 'string' ? `'${value}'` : (JSON.stringify(value) ?? String(value))
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

async function readYaml(path: string, shown: string): Promise<{ value: Plain; keyLines: Map<string, number>; booleanWords: Map<string, string> }> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new ConfigError('file_not_found', `config file not found: ${shown}`, { cause: err })
    throw new ConfigError('file_not_found', `cannot read config file ${shown}: ${(err as Error).message}`, { cause: err })
  }
  let parsed: ReturnType<typeof parsePythonYaml>
  try {
    parsed = parsePythonYaml(text)
  } catch (err) {
    if (!(err instanceof YamlSyntaxError)) throw err
    const at = err.position ? `:${err.position.line}:${err.position.col}` : ''
    throw new ConfigError('yaml_syntax', `malformed YAML in ${shown}${at}: ${err.message}`, {
      hint: err.position && err.sourceLine !== undefined ? `line ${err.position.line}: ${err.sourceLine.trim()}` : undefined,
      cause: err,
    })
  }
  if (parsed.value === null || parsed.value === undefined) return { value: {}, keyLines: parsed.keyLines, booleanWords: parsed.booleanWords }
  if (!isPlain(parsed.value)) {
    throw new ConfigError('bad_value', `${shown} must be a mapping of key: value at the top level`)
  }
  return { value: parsed.value, keyLines: parsed.keyLines, booleanWords: parsed.booleanWords }
}

// OmegaConf.update(merge=True) then OmegaConf.merge: mappings merge key by key, anything else replaces.
function mergeInto(target: Plain, key: string, value: unknown): void {
  const existing = target[key]
  if (isPlain(existing) && isPlain(value)) {
    for (const [k, v] of Object.entries(value)) mergeInto(existing, k, v)
  } else {
    target[key] = value
  }
}

/** One override: the dotted key's segments, its value, and how messages show it (the text the user wrote). */
interface Override {
  path: string[]
  value: unknown
  shown: string
  /** The value as written after `=`, for a `key=value` string (lf-strings.ts tells YAML 1.1 words by it). */
  text?: string
}

function keyPath(key: string, shown: string): string[] {
  const path = key.split('.')
  if (path.some((p) => p === '')) {
    throw new ConfigError('bad_value', `override '${shown}' has an empty key segment`, { hint: 'write overrides as key=value' })
  }
  return path
}

function parseOverride(raw: string): Override {
  const eq = raw.indexOf('=')
  if (eq <= 0) {
    throw new ConfigError('bad_value', `override '${raw}' is not key=value`, { hint: 'write overrides as key=value' })
  }
  const path = keyPath(raw.slice(0, eq), raw)
  let value: unknown
  try {
    value = parseOverrideValue(raw.slice(eq + 1))
  } catch (err) {
    throw new ConfigError('yaml_syntax', `malformed value in override '${raw}': ${(err as Error).message}`, {
      key: path.join('.'),
      cause: err,
    })
  }
  return { path, value, shown: raw, text: raw.slice(eq + 1).trim() }
}

function overridesOf(overrides: ConfigOverrides): Override[] {
  if (Array.isArray(overrides)) return (overrides as readonly string[]).map(parseOverride)
  return Object.entries(overrides).map(([key, value]) => {
    const shown = `${key}=${show(value)}`
    return { path: keyPath(key, shown), value: plainData(value, key), shown }
  })
}

/**
 * A config value given from JavaScript, as a YAML file could hold it: null, booleans, numbers, strings, arrays and
 * plain objects (copied, so a run never changes the caller's object). `undefined` members are left out, as
 * JSON.stringify leaves them; anything else (a function, a Date, a class instance) is a ConfigError naming its key.
 */
function plainData(value: unknown, key: string): unknown {
  if (value === null || typeof value === 'boolean' || typeof value === 'number' || typeof value === 'string') return value
  if (Array.isArray(value)) return value.map((v, i) => plainData(v === undefined ? null : v, `${key}[${i}]`))
  const proto = typeof value === 'object' ? Object.getPrototypeOf(value) : undefined
  if (proto === Object.prototype || proto === null) {
    const out: Plain = {}
    for (const [k, v] of Object.entries(value as Plain)) if (v !== undefined) out[k] = plainData(v, key === '' ? k : `${key}.${k}`)
    return out
  }
  const what = typeof value === 'object' ? (proto?.constructor?.name ?? 'object') : typeof value
  throw new ConfigError('bad_value', `bad value for '${key}' (${CONFIG_OBJECT}): a ${what}, which a YAML config cannot hold`, {
    key,
    hint: 'give plain data: null, booleans, numbers, strings, arrays and plain objects',
  })
}

function applyOverride(config: Plain, { path, value }: Override): string {
  let node = config
  for (const segment of path.slice(0, -1)) {
    const next = node[segment]
    if (isPlain(next)) {
      node = next
    } else {
      const created: Plain = {}
      node[segment] = created
      node = created
    }
  }
  mergeInto(node, path[path.length - 1]!, value)
  return path[0]!
}

// LLaMA-Factory's is_env_enabled
function envEnabled(value: string | undefined): boolean {
  return value !== undefined && ['true', 'y', '1'].includes(value.toLowerCase())
}

function badValue(
  failure: z.ZodError | z.core.$ZodIssue,
  raw: Plain,
  where: (key: string) => string,
): ConfigError {
  const { issue, key, value, unknownKey, suggestion } = issueAt(failure, raw)
  const top = String(issue.path[0] ?? '')
  if (unknownKey !== undefined) {
    const allowed = ['name', 'params', ...COMPONENT_SECTIONS]
    return new ConfigError('unknown_key', `unknown key '${unknownKey.key}' (${where(top)})`, {
      key: unknownKey.key,
      hint: didYouMean(unknownKey.name, allowed),
    })
  }
  const field = (DataflexConfigSchema.shape as Record<string, z.ZodType>)[top]
  const expected = issue.path.length === 1 && issue.code !== 'custom' ? field?.description : undefined
  const detail = expected !== undefined ? `expected ${expected}` : issue.message
  const message =
    value === undefined
      ? `missing '${key}' (${where(top)}): ${detail}`
      : `bad value for '${key}' (${where(top)}): ${show(value)}; ${detail}`
  return new ConfigError('bad_value', message, { key, hint: suggestion })
}

/**
 * Reads a DataFlex / LLaMA-Factory YAML, applies `key=value` overrides, validates, and pre-checks paths.
 * Throws ConfigError for anything the user has to fix. Writes nothing except the key-list cache.
 */
export async function loadConfig(path: string, overrides: ConfigOverrides = [], opts: LoadOptions = {}): Promise<LoadedConfig> {
  const cwd = opts.cwd ?? process.cwd()
  const absPath = resolve(cwd, path)
  const { value, keyLines, booleanWords } = await readYaml(absPath, path)
  return validate({ config: value, absPath, shown: path, keyLines, booleanWords }, overrides, opts)
}

/**
 * loadConfig for a config given as an object (the Node API's `train({...})`): the same overrides, validation and
 * pre-checks as a YAML file with those keys. Relative paths resolve against `cwd`, as a file's do.
 */
export async function loadConfigObject(config: Readonly<Record<string, unknown>>, overrides: ConfigOverrides = [], opts: LoadOptions = {}): Promise<LoadedConfig> {
  if (!isPlain(config)) throw new ConfigError('bad_value', `the config must be a mapping of key: value, not ${show(config)}`)
  const cwd = opts.cwd ?? process.cwd()
  const value = plainData(config, '') as Plain
  return validate({ config: value, absPath: resolve(cwd, CONFIG_OBJECT), shown: CONFIG_OBJECT, keyLines: new Map(), booleanWords: new Map() }, overrides, opts)
}

/** A config read from its source, before overrides: what messages call it and where each key was written. */
interface Source {
  config: Plain
  absPath: string
  shown: string
  keyLines: ReadonlyMap<string, number>
  booleanWords: ReadonlyMap<string, string>
}

async function validate(source: Source, overrides: ConfigOverrides, opts: LoadOptions): Promise<LoadedConfig> {
  const { config, absPath, shown: path, keyLines, booleanWords } = source
  const cwd = opts.cwd ?? process.cwd()
  const env = opts.env ?? process.env
  const warn = opts.onWarning ?? ((message: string) => process.stderr.write(`warning: ${message}\n`))
  const overridden = new Map<string, Override>()
  for (const o of overridesOf(overrides)) overridden.set(applyOverride(config, o), o)
  const where = (key: string): string => {
    const override = overridden.get(key)
    if (override !== undefined) return `override '${override.shown}'`
    const line = keyLines.get(key)
    return line === undefined ? path : `${path}:${line}`
  }

  const dataflexRaw: Plain = {}
  const lf: Plain = {}
  for (const [key, value] of Object.entries(config)) {
    if (DATAFLEX_KEYS.has(key)) dataflexRaw[key] = value
    else lf[key] = value
  }

  // Unknown keys: neither DataFlex's nor an argument of the installed LLaMA-Factory.
  if (opts.python !== false) {
    const lfNames = await loadLfArgNames({ python: opts.python, cacheDir: opts.cacheDir, env })
    if (!lfNames.ok) {
      warn(`cannot list LLaMA-Factory's arguments (${lfNames.reason}); unknown keys will be reported by LLaMA-Factory`)
    } else {
      const unknown = Object.keys(lf).filter((k) => !lfNames.names.has(k))
      const first = unknown[0]
      if (first !== undefined && envEnabled(env['ALLOW_EXTRA_ARGS'])) {
        warn(`ignoring unknown keys because ALLOW_EXTRA_ARGS is set: ${unknown.join(', ')}`)
      } else if (first !== undefined) {
        const others = unknown.length > 1 ? ` (also unknown: ${unknown.slice(1).join(', ')})` : ''
        throw new ConfigError('unknown_key', `unknown key '${first}' (${where(first)})${others}`, {
          key: first,
          hint:
            didYouMean(first, [...DATAFLEX_KEYS, ...lfNames.names]) ??
            `not a DataFlex key nor a LLaMA-Factory ${lfNames.llamafactory} argument`,
        })
      }
    }
  }

  // train_type first: a misspelt one should say so before the keys it governs are judged.
  const trainType = TrainTypeSchema.default('static').safeParse(dataflexRaw['train_type'])
  if (!trainType.success) {
    const issue = trainType.error.issues[0]!
    throw badValue({ ...issue, path: ['train_type'] }, dataflexRaw, where)
  }
  const parsed = DataflexConfigRulesSchema.safeParse(dataflexRaw)
  if (!parsed.success) throw badValue(parsed.error, dataflexRaw, where)
  const dataflex = parsed.data

  const ctx: PrecheckContext = { cwd, env, where, warn }
  const launch = checkLaunchSwitches(ctx)
  checkStringKeys(lf, ctx, (key) => {
    const override = overridden.get(key)
    return override === undefined ? { text: booleanWords.get(key), override: false } : { text: override.text, override: true }
  })
  if (!opts.remotePaths) checkModel(lf, ctx)
  checkTrainingNumbers(lf, ctx)
  if (!opts.remotePaths) checkDatasets(lf, { mixer_eval_dataset: dataflex.mixer_eval_dataset }, ctx)
  checkProportions(lf, dataflex.init_mixture_proportions, ctx)

  const outputDirRaw = lf['output_dir'] ?? 'trainer_output'
  if (typeof outputDirRaw !== 'string' || outputDirRaw === '') {
    throw new ConfigError('bad_value', `bad value for 'output_dir' (${where('output_dir')}): ${show(outputDirRaw)}; expected a path`, {
      key: 'output_dir',
    })
  }
  // TrainingArguments.__post_init__ expands '~' in output_dir.
  const expanded = outputDirRaw === '~' || outputDirRaw.startsWith('~/') ? homedir() + outputDirRaw.slice(1) : outputDirRaw
  const outputDir = resolve(cwd, expanded)
  checkOutputDir(outputDir, outputDirRaw, ctx)
  return { path: absPath, dataflex, lf, outputDir, ...(launch === undefined ? {} : { launch }) }
}
