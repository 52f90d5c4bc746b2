/**
 * Where the sidecar's Python is and the environment it runs with.
 * Paths are resolved from this module's location, so they do not depend on the caller's cwd.
 */
import { existsSync } from 'node:fs'
import { delimiter, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The repository root (this file is `<root>/src/bridge/python.ts`). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../../', import.meta.url)))

/** The directory that holds the `dataflex_bridge` package. */
export const PYTHON_BRIDGE_DIR = join(REPO_ROOT, 'python_bridge')

export interface PythonLocation {
  readonly executable: string
  /** Where it came from, for error messages. */
  readonly source: 'option' | 'DATAFLEX_PYTHON' | '.venv'
}

/**
 * The Python executable: an explicit option, else env DATAFLEX_PYTHON, else `<repo>/.venv/bin/python`.
 * Only the last is checked for existence here (the others may be bare names found on PATH); a missing
 * executable otherwise surfaces as a spawn error.
 */
export function resolvePython(explicit?: string, env: NodeJS.ProcessEnv = process.env): PythonLocation {
  if (explicit !== undefined && explicit !== '') return { executable: explicit, source: 'option' }
  const fromEnv = env.DATAFLEX_PYTHON
  if (fromEnv !== undefined && fromEnv !== '') return { executable: fromEnv, source: 'DATAFLEX_PYTHON' }
  return { executable: join(REPO_ROOT, '.venv', 'bin', 'python'), source: '.venv' }
}

export function venvPythonExists(): boolean {
  return existsSync(join(REPO_ROOT, '.venv', 'bin', 'python'))
}

/** The sidecar's environment: the parent's, plus the bridge package on PYTHONPATH and offline Hugging Face. */
export function sidecarEnv(
  base: NodeJS.ProcessEnv = process.env,
  extra: Readonly<Record<string, string | undefined>> = {},
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base }
  const inherited = base.PYTHONPATH
  env.PYTHONPATH = inherited !== undefined && inherited !== '' ? `${PYTHON_BRIDGE_DIR}${delimiter}${inherited}` : PYTHON_BRIDGE_DIR
  env.PYTHONUNBUFFERED = '1' // stderr lines arrive as they are written, and the READY line at once
  // Runs never touch the network: models and datasets come from local paths or the HF cache.
  env.HF_HUB_OFFLINE = '1'
  env.HF_DATASETS_OFFLINE = '1'
  env.TRANSFORMERS_OFFLINE = '1'
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k]
    else env[k] = v
  }
  return env
}
