/**
 * The benchmark models, built locally on first use into bench/.work/models (no network): `small` is the 3.2M-parameter
 * Qwen2 of `make_tiny_model --size small`; `tiny` is the repository's test model; anything else is a path.
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { resolvePython, sidecarEnv } from '../src/bridge/python.ts'

export function modelPath(name: string): string {
  if (name === 'tiny') return join(REPO_ROOT, 'models', 'tiny-qwen2')
  if (name !== 'small') return name
  const dir = join(REPO_ROOT, 'bench', '.work', 'models', 'small')
  if (!existsSync(join(dir, 'config.json'))) {
    execFileSync(resolvePython().executable, ['-m', 'dataflex_bridge.tools.make_tiny_model', '--size', 'small', '--out', dir, '--data', 'data/demo'], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', 'inherit'],
      env: sidecarEnv(),
    })
  }
  return dir
}
