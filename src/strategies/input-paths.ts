/**
 * Params that name input files (`.meta({ path: ... })` on their schema, plus custom's `path`) resolve like
 * `components_cfg_file`: against the working directory first, as DataFlex reads them (its shipped near / tsds
 * presets say `./src/dataflex/offline_selector/...`), then against the folder of the file the preset is written in,
 * so a components file next to its inputs works from anywhere. Which one was used is reported for the run log.
 */
import { existsSync, statSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import type { z } from 'zod'
import { ConfigError } from '../config/errors.ts'
import type { ComponentPreset } from './components.ts'
import { inputPathParams, paramKey, type InputPathKind } from './params.ts'

export type InputOrigin = 'absolute' | 'working directory' | 'preset folder' | 'model id'

export interface ResolvedInput {
  /** The param, e.g. `indices_path`. */
  param: string
  /** As written in the preset. */
  written: string
  /** Absolute path (or, for a model id, the id as written). */
  path: string
  from: InputOrigin
}

function fits(path: string, kind: InputPathKind): boolean {
  if (!existsSync(path)) return false
  return kind === 'file' ? statSync(path).isFile() : statSync(path).isDirectory()
}

/** The folder a preset's relative paths fall back to, as users know it. */
function presetFolder(preset: ComponentPreset): string {
  return preset.inline ? "the training config's folder" : "the components file's folder"
}

/** Finds one input path; a path found nowhere is a ConfigError listing every place looked. */
export function resolveInputPath(
  param: string,
  written: string,
  kind: InputPathKind,
  preset: ComponentPreset,
  cwd: string,
): ResolvedInput {
  const what = kind === 'file' ? 'file' : 'local model folder'
  const code = kind === 'file' ? 'file_not_found' : 'model_not_found'
  const key = paramKey(preset, param)
  if (isAbsolute(written)) {
    if (fits(written, kind)) return { param, written, path: written, from: 'absolute' }
    throw new ConfigError(code, `${param} '${written}' (${preset.source}) is not a ${what}`, { key })
  }
  const candidates: [string, InputOrigin][] = [
    [resolve(cwd, written), 'working directory'],
    [resolve(preset.baseDir, written), 'preset folder'],
  ]
  for (const [path, from] of candidates) if (fits(path, kind)) return { param, written, path, from }
  // Not a local folder: a hub model id, which the sidecar loads from the local cache.
  if (kind === 'model_or_id') return { param, written, path: written, from: 'model id' }
  const looked = [...new Set(candidates.map(([p]) => p))]
  throw new ConfigError(code, `${what} not found for ${param} '${written}' (${preset.source}): looked in ${looked.join(' and ')}`, {
    key,
    hint: `relative paths resolve against the working directory first, then ${presetFolder(preset)}`,
  })
}

/**
 * Resolves every input-path param of a definition's schema in the validated params (a copy with absolute paths) and
 * reports each. A param left unset (null, absent) is skipped.
 */
export function resolveInputParams(
  schema: z.ZodType,
  params: unknown,
  preset: ComponentPreset,
  cwd: string,
): { params: unknown; inputs: ResolvedInput[] } {
  const marked = inputPathParams(schema)
  if (marked.length === 0 || typeof params !== 'object' || params === null) return { params, inputs: [] }
  const out = { ...(params as Record<string, unknown>) }
  const inputs: ResolvedInput[] = []
  for (const [param, kind] of marked) {
    const written = out[param]
    if (typeof written !== 'string' || written === '') continue
    const input = resolveInputPath(param, written, kind, preset, cwd)
    out[param] = input.path
    inputs.push(input)
  }
  return { params: out, inputs }
}

/** One line for the run log: where an input was found. */
export function describeInput(input: ResolvedInput, preset: ComponentPreset): string {
  const head = `${input.param} '${input.written}'`
  switch (input.from) {
    case 'absolute':
      return `${head} (absolute path)`
    case 'model id':
      return `${head}: no local folder of that name, read as a model id`
    case 'working directory':
      return `${head} → ${input.path} (found from the working directory)`
    case 'preset folder':
      return `${head} → ${input.path} (found in ${presetFolder(preset)})`
  }
}
