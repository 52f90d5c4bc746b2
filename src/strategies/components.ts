/**
 * The components config: which algorithm a `component_name` means and with which params. Two sources with one
 * layout (the Python DataFlex `components.yaml`, dataflex-algorithms.md §1.4):
 *
 *   selectors:            # also mixers:, weighters:
 *     less_small:         # the registry key: what component_name names
 *       name: less        # the algorithm (defaults to the key)
 *       params: {proj_dim: 1024}
 *
 * either in `components_cfg_file`, or inline in the training YAML under `components:`. An inline preset wins over
 * a file preset of the same key; the file is read only when the inline block does not have the key.
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, isAbsolute, relative, resolve } from 'node:path'
import { z } from 'zod'
import { ConfigError } from '../config/errors.ts'
import type { LoadedConfig } from '../config/load.ts'
import { didYouMean } from '../config/suggest.ts'
import { YamlSyntaxError, parsePythonYaml } from '../config/yaml.ts'

export const COMPONENT_SECTIONS = ['selectors', 'mixers', 'weighters'] as const
export type ComponentSection = (typeof COMPONENT_SECTIONS)[number]

export interface ComponentPreset {
  section: ComponentSection
  /** The registry key (what component_name names). */
  key: string
  /** The algorithm: the entry's `name:`, defaulting to the key. */
  name: string
  /** Params as written (not yet validated; the algorithm's schema does that). */
  params: Record<string, unknown>
  /** Where the preset was written, for messages: a file path, or `<config> (components:)`. */
  source: string
  /** Directory relative paths in params resolve against: the file the preset is written in. */
  baseDir: string
}

// `params:` with nothing after it is YAML null; DataFlex would crash on it, we read it as no params.
const PresetSchema = z.strictObject({
  name: z.string().min(1).optional(),
  params: z
    .record(z.string(), z.unknown())
    .nullish()
    .transform((p) => p ?? {}),
})
const SectionSchema = z.record(z.string(), PresetSchema).nullish()
const FileSchema = z.strictObject({ selectors: SectionSchema, mixers: SectionSchema, weighters: SectionSchema })
type ComponentsFile = z.output<typeof FileSchema>

function isPlain(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function shown(path: string, cwd: string): string {
  const rel = relative(cwd, path)
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path
}

/**
 * `components_cfg_file` as DataFlex resolves it (against the working directory), falling back to the training
 * YAML's directory so a config next to its components file works from anywhere.
 */
export function locateComponentsFile(cfg: Pick<LoadedConfig, 'path' | 'dataflex'>, cwd = process.cwd()): string {
  const raw = cfg.dataflex.components_cfg_file
  if (isAbsolute(raw)) {
    if (existsSync(raw)) return raw
    throw new ConfigError('file_not_found', `components file not found: components_cfg_file '${raw}'`, {
      key: 'components_cfg_file',
    })
  }
  const candidates = [resolve(cwd, raw), resolve(dirname(cfg.path), raw)]
  const found = candidates.find((p) => existsSync(p))
  if (found !== undefined) return found
  throw new ConfigError(
    'file_not_found',
    `components file not found: components_cfg_file '${raw}' (looked in ${[...new Set(candidates)].join(' and ')})`,
    { key: 'components_cfg_file', hint: "set components_cfg_file, or define the preset inline under 'components:'" },
  )
}

/** Reads and checks the layout of a components file (params are checked later, by the chosen algorithm). */
export async function readComponentsFile(path: string, cwd = process.cwd()): Promise<ComponentsFile> {
  const name = shown(path, cwd)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new ConfigError('file_not_found', `cannot read components file ${name}: ${(err as Error).message}`, {
      key: 'components_cfg_file',
      cause: err,
    })
  }
  let value: unknown
  try {
    value = parsePythonYaml(text).value ?? {}
  } catch (err) {
    if (!(err instanceof YamlSyntaxError)) throw err
    const at = err.position ? `:${err.position.line}:${err.position.col}` : ''
    throw new ConfigError('yaml_syntax', `malformed YAML in ${name}${at}: ${err.message}`, {
      key: 'components_cfg_file',
      cause: err,
    })
  }
  if (!isPlain(value)) throw new ConfigError('bad_value', `${name} must be a mapping with selectors / mixers / weighters`)
  const parsed = FileSchema.safeParse(value)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]!
  const at = issue.path.map(String).join('.')
  if (issue.code === 'unrecognized_keys') {
    const bad = issue.keys[0] ?? ''
    const allowed = issue.path.length === 0 ? COMPONENT_SECTIONS : ['name', 'params']
    const full = at === '' ? bad : `${at}.${bad}`
    throw new ConfigError('unknown_key', `unknown key '${full}' in components file ${name}`, {
      key: full,
      hint: didYouMean(bad, allowed) ?? `allowed here: ${allowed.join(', ')}`,
    })
  }
  throw new ConfigError('bad_value', `bad value for '${at}' in components file ${name}: ${issue.message}`, { key: at })
}

export interface FindPresetOptions {
  cwd?: string
}

/**
 * The preset `key` of `section`, from the inline `components:` block or the components file. An unknown key is a
 * ConfigError listing the keys that exist (and the closest one).
 */
export async function findPreset(
  cfg: Pick<LoadedConfig, 'path' | 'dataflex'>,
  section: ComponentSection,
  key: string,
  opts: FindPresetOptions = {},
): Promise<ComponentPreset> {
  const cwd = opts.cwd ?? process.cwd()
  const inline = cfg.dataflex.components?.[section]
  const inlinePreset = inline?.[key]
  if (inlinePreset !== undefined) {
    return {
      section,
      key,
      name: inlinePreset.name ?? key,
      params: { ...inlinePreset.params },
      source: `${shown(cfg.path, cwd)} (components.${section}.${key})`,
      baseDir: dirname(cfg.path),
    }
  }
  const inlineKeys = Object.keys(inline ?? {})
  let file: ComponentsFile | undefined
  let filePath: string | undefined
  let fileMissing = ''
  try {
    filePath = locateComponentsFile(cfg, cwd)
  } catch (err) {
    // Only inline presets exist: say the key is unknown among them (and that the file was not found either).
    if (!(err instanceof ConfigError) || cfg.dataflex.components === undefined) throw err
    fileMissing = ` (components_cfg_file '${cfg.dataflex.components_cfg_file}' not found)`
  }
  if (filePath !== undefined) file = await readComponentsFile(filePath, cwd)
  const fromFile = file?.[section]?.[key]
  if (fromFile !== undefined && filePath !== undefined) {
    return {
      section,
      key,
      name: fromFile.name ?? key,
      params: { ...fromFile.params },
      source: `${shown(filePath, cwd)} (${section}.${key})`,
      baseDir: dirname(filePath),
    }
  }
  const available = [...new Set([...inlineKeys, ...Object.keys(file?.[section] ?? {})])].sort()
  const where = [filePath !== undefined ? shown(filePath, cwd) : undefined, inline !== undefined ? 'the inline components block' : undefined]
    .filter((w) => w !== undefined)
    .join(' and ')
  throw new ConfigError('bad_value', `unknown component_name '${key}': no ${section} preset of that name in ${where || 'any components config'}${fileMissing}`, {
    key: 'component_name',
    hint:
      (didYouMean(key, available) ?? '') +
      (available.length > 0 ? `${didYouMean(key, available) ? ' ' : ''}available ${section}: ${available.join(', ')}` : `no ${section} are defined`),
  })
}
