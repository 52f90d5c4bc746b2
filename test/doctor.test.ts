/**
 * `dataflex doctor` as users run it (`node bin/dataflex.mjs doctor`, from another directory) on the project's own
 * environment and on broken ones, and its output-folder probe and version ranges in process.
 */
import { execFile, execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT, resolvePython } from '../src/bridge/python.ts'
import { checkOutputDir, readPins, satisfiesRange, type CheckResult } from '../src/cli/doctor.ts'
import { tempDir } from './temp-dirs.ts'

const BIN = join(REPO_ROOT, 'bin', 'dataflex.mjs')
const HAS_PYTHON = existsSync(resolvePython().executable)
const CHECKS = ['node', 'python', 'torch', 'transformers', 'llamafactory', 'zmq', 'msgpack', 'dataflex_bridge', 'cuda', 'bridge', 'output dir']

interface Result {
  code: number | null
  stdout: string
  stderr: string
}

function doctor(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'doctor', ...args], { cwd, env: { ...process.env, ...env }, timeout: 150_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr })
    })
  })
}

/** A Python with nothing installed: a fresh venv without pip. */
function barePython(): string {
  const dir = tempDir('doctor-venv')
  execFileSync('python3', ['-m', 'venv', '--without-pip', join(dir, 'venv')], { stdio: 'ignore', timeout: 60_000 })
  return join(dir, 'venv', 'bin', 'python')
}

describe('dataflex doctor (spawned)', () => {
  it.skipIf(!HAS_PYTHON)(
    "the project's environment is healthy: exit 0, every check ok (CPU-only is a warning)",
    async () => {
      const cwd = tempDir('doctor-ok')
      const env = { DATAFLEX_PYTHON: '' } // the checkout's .venv, however the suite was started
      const r = await doctor(['--json', '--output-dir', join(cwd, 'runs', 'new')], cwd, env)
      expect(r.code, r.stdout + r.stderr).toBe(0)
      const results = JSON.parse(r.stdout) as CheckResult[]
      expect(results.map((c) => c.check)).toEqual(CHECKS)
      for (const c of results) {
        const cpuOnly = c.check === 'cuda' && c.status === 'warn' && c.detail.includes('training runs on the CPU')
        expect(c.status === 'ok' || cpuOnly, JSON.stringify(c)).toBe(true)
      }
      expect(results.find((c) => c.check === 'bridge')?.detail).toMatch(/^protocol 1 \(this CLI: 1\); sidecar pid \d+ answered hello and ping/)
      expect(readdirSync(cwd), 'the write probe left something').toEqual([])
    },
    150_000,
  )

  it('a Python without the packages and an output folder under a file: exit 1, each problem named', async () => {
    const cwd = tempDir('doctor-broken')
    writeFileSync(join(cwd, 'a-file'), 'not a folder')
    const python = barePython()
    const r = await doctor(['--output-dir', 'a-file/runs'], cwd, { DATAFLEX_PYTHON: python })
    expect(r.code, r.stdout + r.stderr).toBe(1)
    const lines = r.stdout.trim().split('\n')
    expect(lines.slice(0, -1).map((l) => /^(ok|warn|problem): ([^:]+):/.exec(l)?.[2])).toEqual(CHECKS)
    expect(lines[0]).toMatch(/^ok: node: /)
    expect(lines[1]).toContain(`ok: python: `)
    expect(lines[1]).toContain('(DATAFLEX_PYTHON)')
    for (const m of ['torch', 'transformers', 'llamafactory', 'zmq', 'msgpack']) {
      const line = lines.find((l) => l.startsWith(`problem: ${m}: `))
      expect(line, m).toContain(`No module named '${m}'`)
      expect(line, m).toContain(`${python} -m pip install`) // how to fix, for that interpreter
    }
    expect(lines).toContain('ok: dataflex_bridge: 0.1.0 (pin 0.1.0)') // on PYTHONPATH from the checkout, stdlib only
    expect(lines).toContain('problem: bridge: not started: the sidecar needs zmq, msgpack — install them (above)')
    expect(lines.find((l) => l.startsWith('problem: output dir: '))).toContain(`${join(cwd, 'a-file')} is a file, not a folder`)
    expect(lines.at(-1)).toBe('doctor: 3 ok, 1 warn, 7 problems; not ready: fix the problems above')
    expect(readdirSync(cwd)).toEqual(['a-file'])
  })

  it('DATAFLEX_PYTHON that does not exist: exit 1 naming it', async () => {
    const cwd = tempDir('doctor-nopy')
    const missing = join(cwd, 'no-such-python')
    const r = await doctor(['--json', '--output-dir', cwd], cwd, { DATAFLEX_PYTHON: missing })
    expect(r.code).toBe(1)
    const results = JSON.parse(r.stdout) as CheckResult[]
    expect(results.map((c) => c.check)).toEqual(CHECKS)
    expect(results[1]).toMatchObject({ check: 'python', status: 'problem', detail: `${missing} (DATAFLEX_PYTHON): no interpreter at ${missing}` })
    expect(results.at(-1)?.status).toBe('ok')
  })
})

describe('doctor: the output folder probe', () => {
  it('an existing folder: ok, and its contents stay as they were', () => {
    const dir = tempDir('doctor-out')
    writeFileSync(join(dir, 'kept'), 'x')
    expect(checkOutputDir(dir)).toEqual({ check: 'output dir', status: 'ok', detail: `${dir} is writable` })
    expect(readdirSync(dir)).toEqual(['kept'])
  })

  it('a folder that does not exist yet: ok, and every folder made for the probe is removed', () => {
    const dir = tempDir('doctor-out')
    expect(checkOutputDir(join(dir, 'a', 'b', 'c')).status).toBe('ok')
    expect(readdirSync(dir)).toEqual([])
  })

  it('a file, or a path under a file: a problem that names the file', () => {
    const dir = tempDir('doctor-out')
    const file = join(dir, 'f')
    writeFileSync(file, '')
    expect(checkOutputDir(file)).toMatchObject({ status: 'problem', detail: `${file} is a file, not a folder` })
    expect(checkOutputDir(join(file, 'x', 'y'))).toMatchObject({ status: 'problem', detail: `${join(file, 'x', 'y')} cannot be created: ${file} is a file, not a folder` })
    expect(readdirSync(dir)).toEqual(['f'])
  })

  it('a folder without write permission (not root: root writes anyway)', () => {
    if (process.getuid?.() === 0) return
    const dir = tempDir('doctor-out')
    const locked = join(dir, 'locked')
    mkdirSync(locked, { mode: 0o555 })
    expect(checkOutputDir(locked)).toMatchObject({ status: 'problem', detail: `${locked} is not writable (EACCES)` })
  })
})

describe('doctor: versions', () => {
  it('ranges as package.json engines and requires-python write them', () => {
    const engines = '>=20.19 <21 || >=22.12'
    const cases: [string, boolean][] = [
      ['20.19.0', true], ['v20.20.2', true], ['20.18.9', false], ['21.0.0', false], ['22.11.0', false], ['22.12.0', true], ['24.1.0', true],
    ]
    for (const [v, want] of cases) expect(satisfiesRange(v, engines), v).toBe(want)
    expect(satisfiesRange('3.11.7', '>=3.10')).toBe(true)
    expect(satisfiesRange('3.9.18', '>=3.10')).toBe(false)
    expect(satisfiesRange('3.11.7', 'banana')).toBeUndefined()
  })

  it('the pins are the `==` lines of python_bridge/requirements*.txt and the bridge version', () => {
    const pins = readPins()
    for (const file of ['requirements.txt', 'requirements-nodeps.txt']) {
      for (const line of readFileSync(join(REPO_ROOT, 'python_bridge', file), 'utf8').split('\n')) {
        const [name, version] = line.split('#')[0]!.trim().split('==')
        if (version !== undefined) expect(pins.get(name!.toLowerCase()), name).toBe(version)
      }
    }
    expect(pins.get('pyzmq')).toBe('27.2.0')
    expect(pins.get('dataflex-bridge')).toBe(/^version = "(.+)"/m.exec(readFileSync(join(REPO_ROOT, 'python_bridge', 'pyproject.toml'), 'utf8'))?.[1])
  })
})
