/**
 * The components config: which algorithm a `component_name` means and with which params. Two sources with one
 * layout (the Python DataFlex `components.yaml`):
 *
 *   selectors:            # also mixers:, weighters:, reorders: (older spelling reorderers:, read with a warning)
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
import { ConfigError } from '../config/errors.ts'
import { issueAt } from '../config/issues.ts'
import type { LoadedConfig } from '../config/load.ts'
import {
  COMPONENT_SECTIONS,
  ComponentsBlockSchema,
  LEGACY_SECTIONS,
  type ComponentsBlock,
  type ComponentSection,
} from '../config/schema.ts'
import { didYouMean } from '../config/suggest.ts'
import { YamlSyntaxError, parsePythonYaml } from '../config/yaml.ts'

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
  /** Directory of the file the preset is written in: relative cache_dir resolves here, input paths fall back here. */
  baseDir: string
  /** Written inline in the training YAML (baseDir is its folder) rather than in the components file. */
  inline: boolean
  /** For the run log: e.g. the preset was read from an older section spelling. */
  warnings: string[]
}

type PresetEntry = NonNullable<NonNullable<ComponentsBlock['selectors']>[string]>

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
export async function readComponentsFile(path: string, cwd = process.cwd()): Promise<ComponentsBlock> {
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
  if (!isPlain(value)) throw new ConfigError('bad_value', `${name} must be a mapping with ${COMPONENT_SECTIONS.join(' / ')}`)
  const parsed = ComponentsBlockSchema.safeParse(value)
  if (parsed.success) return parsed.data
  const { issue, key, unknownKey } = issueAt(parsed.error, value)
  if (unknownKey !== undefined) {
    const allowed = issue.path.length === 0 ? [...COMPONENT_SECTIONS] : ['name', 'params']
    throw new ConfigError('unknown_key', `unknown key '${unknownKey.key}' in components file ${name}`, {
      key: unknownKey.key,
      hint: didYouMean(unknownKey.name, allowed) ?? `allowed here: ${allowed.join(', ')}`,
    })
  }
  throw new ConfigError('bad_value', `bad value for '${key}' in components file ${name}: ${issue.message}`, { key })
}

export interface FindPresetOptions {
  cwd?: string
}

/** The presets of `section` in a block, from its older spelling (with a warning naming `where`) if that is used. */
function sectionOf(block: ComponentsBlock | undefined, section: ComponentSection, where: string): { entries: Record<string, PresetEntry>; warning?: string } {
  const current = block?.[section]
  if (current !== undefined && current !== null) return { entries: current }
  for (const [legacy, target] of Object.entries(LEGACY_SECTIONS) as [keyof ComponentsBlock, ComponentSection][]) {
    const old = block?.[legacy]
    if (target === section && old !== undefined && old !== null) {
      return { entries: old, warning: `${where}: '${legacy}:' is the older spelling of '${section}:'; rename the section` }
    }
  }
  return { entries: {} }
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
  const preset = (entry: PresetEntry, source: string, baseDir: string, inline: boolean, warning: string | undefined): ComponentPreset => ({
    section,
    key,
    name: entry.name ?? key,
    params: { ...entry.params },
    source,
    baseDir,
    inline,
    warnings: warning === undefined ? [] : [warning],
  })
  const block = cfg.dataflex.components
  const inline = sectionOf(block, section, `${shown(cfg.path, cwd)} (components:)`)
  const inlinePreset = inline.entries[key]
  if (inlinePreset !== undefined) {
    return preset(inlinePreset, `${shown(cfg.path, cwd)} (components.${section}.${key})`, dirname(cfg.path), true, inline.warning)
  }
  let file: ReturnType<typeof sectionOf> | undefined
  let filePath: string | undefined
  let fileMissing = ''
  try {
    filePath = locateComponentsFile(cfg, cwd)
  } catch (err) {
    // Only inline presets exist: say the key is unknown among them (and that the file was not found either).
    if (!(err instanceof ConfigError) || block === undefined) throw err
    fileMissing = ` (components_cfg_file '${cfg.dataflex.components_cfg_file}' not found)`
  }
  if (filePath !== undefined) file = sectionOf(await readComponentsFile(filePath, cwd), section, shown(filePath, cwd))
  const fromFile = file?.entries[key]
  if (fromFile !== undefined && filePath !== undefined) {
    return preset(fromFile, `${shown(filePath, cwd)} (${section}.${key})`, dirname(filePath), false, file?.warning)
  }
  const available = [...new Set([...Object.keys(inline.entries), ...Object.keys(file?.entries ?? {})])].sort()
  const where = [filePath !== undefined ? shown(filePath, cwd) : undefined, block !== undefined ? 'the inline components block' : undefined]
    .filter((w) => w !== undefined)
    .join(' and ')
  throw new ConfigError('bad_value', `unknown component_name '${key}': no ${section} preset of that name in ${where || 'any components config'}${fileMissing}`, {
    key: 'component_name',
    hint:
      (didYouMean(key, available) ?? '') +
      (available.length > 0 ? `${didYouMean(key, available) ? ' ' : ''}available ${section}: ${available.join(', ')}` : `no ${section} are defined`),
  })
}
