/**
 * `dataflex doctor [--output-dir DIR] [--json]`: is this host ready to train? One line per check, "ok", "warn" (runs,
 * but not as tested or not as fast) or "problem" (a run would fail), each with how to fix it. Exit 0 without problems,
 * 1 with any. The Python facts come from one subprocess (dataflex_bridge.doctor); the bridge check starts the real
 * sidecar, shakes hands, pings and stops it, as `train` does.
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import type { Command } from 'commander'
import { z } from 'zod'
import { PROTOCOL_VERSION } from '../bridge/protocol.ts'
import { PYTHON_BRIDGE_DIR, REPO_ROOT, resolvePython, sidecarEnv, type PythonLocation } from '../bridge/python.ts'
import { withSidecar } from '../bridge/session.ts'
import type { CliIO } from './io.ts'
import { runCommand } from './lifecycle.ts'
import { EXIT_OK, EXIT_RUNTIME } from './report.ts'

export type CheckStatus = 'ok' | 'warn' | 'problem'

export interface CheckResult {
  readonly check: string
  readonly status: CheckStatus
  /** What was found. */
  readonly detail: string
  /** How to fix it (warn and problem only). */
  readonly fix?: string
}

/** What the sidecar imports, by module and by the distribution its pin names. */
const PACKAGES = [
  { module: 'torch', dist: 'torch' },
  { module: 'transformers', dist: 'transformers' },
  { module: 'llamafactory', dist: 'llamafactory' },
  { module: 'zmq', dist: 'pyzmq' },
  { module: 'msgpack', dist: 'msgpack' },
  { module: 'dataflex_bridge', dist: 'dataflex-bridge' },
] as const
type Module = (typeof PACKAGES)[number]['module']

/** Imports torch, transformers and LLaMA-Factory: seconds, more on a cold disk. */
const FACTS_TIMEOUT_MS = 120_000

// ---------------------------------------------------------------------------------------------------------------
// Version ranges (package.json `engines`, pyproject `requires-python`): `||` of space-separated comparators.

function parseVersion(text: string): number[] | undefined {
  const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(text.trim())
  return m ? [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)] : undefined
}

function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0)
  return 0
}

/** Does `version` satisfy `range` (e.g. ">=20.19 <21 || >=22.12")? Undefined when the range cannot be read. */
export function satisfiesRange(version: string, range: string): boolean | undefined {
  const have = parseVersion(version)
  if (have === undefined) return undefined
  let any = false
  for (const alternative of range.split('||')) {
    let all = true
    for (const comparator of alternative.trim().split(/[\s,]+/).filter((c) => c !== '')) {
      const m = /^(>=|<=|>|<|==|=)?\s*(.+)$/.exec(comparator)
      const want = m?.[2] === undefined ? undefined : parseVersion(m[2])
      if (m === null || want === undefined) return undefined
      const c = compareVersions(have, want)
      const op = m[1] ?? '='
      const ok = op === '>=' ? c >= 0 : op === '<=' ? c <= 0 : op === '>' ? c > 0 : op === '<' ? c < 0 : c === 0
      all &&= ok
    }
    any ||= all
  }
  return any
}

// ---------------------------------------------------------------------------------------------------------------
// Pins: python_bridge/requirements*.txt (`name==version`) and the bridge's own pyproject version.

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return ''
  }
}

const normalise = (name: string): string => name.toLowerCase().replace(/[-_.]+/g, '-')

/** The exact pins of the requirement files, by normalised distribution name, plus the bridge's version. */
export function readPins(bridgeDir: string = PYTHON_BRIDGE_DIR): Map<string, string> {
  const pins = new Map<string, string>()
  for (const file of ['requirements.txt', 'requirements-nodeps.txt']) {
    for (const line of readText(join(bridgeDir, file)).split('\n')) {
      const m = /^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)/.exec(line)
      if (m) pins.set(normalise(m[1]!), m[2]!)
    }
  }
  const pyproject = readText(join(bridgeDir, 'pyproject.toml'))
  const name = /^name\s*=\s*"([^"]+)"/m.exec(pyproject)?.[1]
  const version = /^version\s*=\s*"([^"]+)"/m.exec(pyproject)?.[1]
  if (name !== undefined && version !== undefined) pins.set(normalise(name), version)
  return pins
}

// ---------------------------------------------------------------------------------------------------------------
// Node

function checkNode(): CheckResult {
  const engines = (JSON.parse(readText(join(REPO_ROOT, 'package.json')) || '{}') as { engines?: { node?: string } }).engines?.node
  const version = process.versions.node
  if (engines === undefined) return { check: 'node', status: 'ok', detail: `${version} (package.json names no engines.node)` }
  const ok = satisfiesRange(version, engines)
  if (ok === true) return { check: 'node', status: 'ok', detail: `${version} (package.json engines: ${engines})` }
  if (ok === undefined) {
    return { check: 'node', status: 'warn', detail: `${version}; cannot read the engines range '${engines}'`, fix: 'check package.json' }
  }
  return { check: 'node', status: 'problem', detail: `${version} is outside package.json engines ${engines}`, fix: `install a Node in ${engines} (e.g. Node 20 LTS)` }
}

// ---------------------------------------------------------------------------------------------------------------
// Python: one subprocess for every fact

const ModuleFacts = z.union([
  z.object({ ok: z.literal(true), version: z.string().nullable(), file: z.string().nullable() }),
  z.object({ ok: z.literal(false), error: z.string() }),
])
const PythonFacts = z.object({
  python: z.string(),
  executable: z.string(),
  modules: z.record(z.string(), ModuleFacts),
  cuda: z
    .object({
      available: z.boolean(),
      count: z.number().int(),
      devices: z.array(z.string()),
      cuda: z.string().nullable(),
      error: z.string().nullable(),
    })
    .nullable(),
})
type PythonFacts = z.infer<typeof PythonFacts>

function gatherFacts(python: string, env: NodeJS.ProcessEnv): Promise<{ ok: true; facts: PythonFacts } | { ok: false; why: string; missing: boolean }> {
  const args = ['-m', 'dataflex_bridge.doctor', ...PACKAGES.map((p) => `${p.module}=${p.dist}`)]
  return new Promise((resolvePromise) => {
    execFile(python, args, { env: sidecarEnv(env), timeout: FACTS_TIMEOUT_MS, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const missing = (err as NodeJS.ErrnoException).code === 'ENOENT'
        const tail = stderr.trim().split('\n').slice(-2).join(' | ')
        resolvePromise({ ok: false, missing, why: missing ? `no interpreter at ${python}` : tail || err.message })
        return
      }
      try {
        resolvePromise({ ok: true, facts: PythonFacts.parse(JSON.parse(stdout.trim().split('\n').pop() ?? '')) })
      } catch {
        resolvePromise({ ok: false, missing: false, why: `${python} -m dataflex_bridge.doctor printed no facts: ${stdout.slice(0, 200)}` })
      }
    })
  })
}

/** A path to show: relative to the working directory when inside it. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path)
  return rel !== '' && !rel.startsWith('..') ? rel : path
}

function installHint(python: PythonLocation, module: Module, error: string, pins: Map<string, string>): string {
  if (python.source === '.venv') return 'run `npm run setup` (it installs the pinned stack into .venv)'
  const pip = `${python.executable} -m pip install`
  const req = (file: string): string => shown(join(PYTHON_BRIDGE_DIR, file))
  switch (module) {
    case 'torch':
      return `install a torch build for this host, e.g. ${pip} torch==${pins.get('torch') ?? '<version>'} --index-url https://download.pytorch.org/whl/cu128 (docs/setup.md)`
    case 'llamafactory':
      return /torchaudio/.test(error)
        ? 'install the torchaudio build matching your torch, or enable the stub (docs/setup.md, "torchaudio")'
        : `${pip} --no-deps -r ${req('requirements-nodeps.txt')} (after ${req('requirements.txt')}; docs/setup.md)`
    case 'dataflex_bridge':
      return `${pip} --no-deps -e ${shown(PYTHON_BRIDGE_DIR)}`
    default:
      return `${pip} -r ${req('requirements.txt')} (docs/setup.md)`
  }
}

function checkPython(python: PythonLocation, facts: PythonFacts): CheckResult {
  const from = python.source === '.venv' ? 'the checkout\'s .venv' : python.source
  const requires = /^requires-python\s*=\s*"([^"]+)"/m.exec(readText(join(PYTHON_BRIDGE_DIR, 'pyproject.toml')))?.[1]
  const detail = `${facts.python} at ${facts.executable} (${from})`
  if (requires !== undefined && satisfiesRange(facts.python, requires) === false) {
    return { check: 'python', status: 'problem', detail: `${detail} is outside requires-python ${requires}`, fix: 'use Python 3.11 (set DATAFLEX_PYTHON, or DATAFLEX_BASE_PYTHON for npm run setup)' }
  }
  return { check: 'python', status: 'ok', detail }
}

function checkPackage(python: PythonLocation, facts: PythonFacts, module: Module, dist: string, pins: Map<string, string>): CheckResult {
  const found = facts.modules[module]
  if (found === undefined || !found.ok) {
    const error = found === undefined ? 'not reported' : found.error
    return { check: module, status: 'problem', detail: `not importable: ${error}`, fix: installHint(python, module, error, pins) }
  }
  const pin = pins.get(normalise(dist))
  const version = found.version ?? 'unknown version'
  if (pin === undefined) return { check: module, status: 'ok', detail: `${version} (not pinned)` }
  // A local build tag (+cpu, +cu128) is the same release.
  if (version.split('+')[0] === pin) return { check: module, status: 'ok', detail: `${version} (pin ${pin})` }
  return {
    check: module,
    status: 'warn',
    detail: `${version}, but python_bridge pins ${pin}; tests and the executor's parity with LLaMA-Factory are checked on the pin`,
    fix: python.source === '.venv' ? 'run `npm run setup`' : `${python.executable} -m pip install ${dist}==${pin}${module === 'torch' ? ' (a CUDA build of it on a GPU host)' : ''}`,
  }
}

function checkCuda(facts: PythonFacts): CheckResult {
  const cuda = facts.cuda
  if (cuda === null) return { check: 'cuda', status: 'warn', detail: 'not checked: torch is not importable', fix: 'fix torch first' }
  if (cuda.available) {
    const names = [...new Set(cuda.devices)].map((n) => `${cuda.devices.filter((d) => d === n).length}× ${n}`)
    return { check: 'cuda', status: 'ok', detail: `CUDA ${cuda.cuda ?? '?'}: ${cuda.count} visible device${cuda.count === 1 ? '' : 's'} (${names.join(', ')})` }
  }
  if (cuda.error !== null) {
    return { check: 'cuda', status: 'warn', detail: `CUDA ${cuda.cuda ?? '?'} build, but the devices cannot be read: ${cuda.error}`, fix: 'check the NVIDIA driver (nvidia-smi), CUDA_VISIBLE_DEVICES, and `docker run --gpus all`' }
  }
  if (cuda.cuda !== null) {
    return { check: 'cuda', status: 'warn', detail: `torch is built for CUDA ${cuda.cuda} but sees no device: training runs on the CPU`, fix: 'check the NVIDIA driver (nvidia-smi), CUDA_VISIBLE_DEVICES, and `docker run --gpus all`' }
  }
  return { check: 'cuda', status: 'warn', detail: 'CPU only (a CPU build of torch): training runs on the CPU', fix: 'fine for the demo and tests; for a GPU, use a CUDA build of torch (DATAFLEX_PYTHON or the Docker image, docs/setup.md)' }
}

// ---------------------------------------------------------------------------------------------------------------
// Bridge: the real sidecar, the hello handshake, a ping, and a clean stop

async function checkBridge(python: PythonLocation, signal: AbortSignal): Promise<CheckResult> {
  const lines: string[] = []
  try {
    const info = await withSidecar(
      { python: python.executable, signal, onSidecarLine: (l) => lines.push(l), aborted: (cause) => new Error('doctor interrupted', { cause }) },
      async (bridge) => {
        await bridge.request('ping')
        return bridge.info
      },
    )
    const detail = `protocol ${info.protocol} (this CLI: ${PROTOCOL_VERSION}); sidecar pid ${info.pid} answered hello and ping on ${info.device}, then stopped`
    if (info.executor.status !== 'loaded') {
      return {
        check: 'bridge',
        status: 'problem',
        detail: `${detail}; but its executor is ${info.executor.status}${info.executor.error === null ? '' : `: ${info.executor.error}`}`,
        fix: 'training needs the executor: fix the import error above (DATAFLEX_DEBUG=1 dataflex doctor shows the sidecar log)',
      }
    }
    return { check: 'bridge', status: 'ok', detail: `${detail}; executor loaded (${info.ops.length} ops)` }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    const first = message.split('\n')[0] ?? message
    const last = lines.filter((l) => l.trim() !== '').pop()
    return {
      check: 'bridge',
      status: 'problem',
      detail: `${first}${last === undefined || message.includes(last) ? '' : ` (sidecar: ${last.trim()})`}`,
      fix: /protocol/.test(first) ? `reinstall the bridge from this checkout: ${python.executable} -m pip install --no-deps -e ${shown(PYTHON_BRIDGE_DIR)}` : 'fix the Python problems above; DATAFLEX_DEBUG=1 shows the whole sidecar log',
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Output folder: create a temporary file there and remove it, and every folder made for it

/** Can a run write to `dir`? Leaves nothing behind: the probe file and any folder created for it are removed. */
export function checkOutputDir(dir: string): CheckResult {
  const path = resolve(dir)
  const check = 'output dir'
  const fix = 'choose another folder (--output-dir here, output_dir in the config), or fix its permissions'
  let existing = path
  const missing: string[] = []
  while (!existsSync(existing)) {
    missing.push(existing)
    const parent = dirname(existing)
    if (parent === existing) break
    existing = parent
  }
  if (!statSync(existing).isDirectory()) {
    const what = existing === path ? `${path} is a file, not a folder` : `${path} cannot be created: ${existing} is a file, not a folder`
    return { check, status: 'problem', detail: what, fix }
  }
  const probe = join(path, `.dataflex-doctor-${process.pid}-${randomBytes(4).toString('hex')}`)
  try {
    mkdirSync(path, { recursive: true })
    writeFileSync(probe, 'dataflex doctor write probe\n', { flag: 'wx' })
    unlinkSync(probe)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? ''
    return { check, status: 'problem', detail: `${path} is not writable (${code || (err as Error).message})`, fix }
  } finally {
    // Deepest first; rmdir (not rm -r) so a folder someone else filled meanwhile stays.
    for (const d of missing) {
      try {
        rmdirSync(d)
      } catch {
        // not created, or no longer empty
      }
    }
  }
  return { check, status: 'ok', detail: `${path} is writable${missing.length > 0 ? ' (does not exist yet; a run creates it)' : ''}` }
}

// ---------------------------------------------------------------------------------------------------------------

export interface DoctorOptions {
  readonly outputDir: string
  readonly env: NodeJS.ProcessEnv
  readonly signal: AbortSignal
  /** Each result as soon as it is known. */
  readonly onCheck?: (result: CheckResult) => void
}

/** Every check, in a fixed order: node, python, each package, cuda, bridge, output dir. */
export async function runDoctor(opts: DoctorOptions): Promise<CheckResult[]> {
  const results: CheckResult[] = []
  const add = (r: CheckResult): void => {
    results.push(r)
    opts.onCheck?.(r)
  }
  add(checkNode())
  const python = resolvePython(undefined, opts.env)
  const gathered = await gatherFacts(python.executable, opts.env)
  if (!gathered.ok) {
    const fix =
      python.source === '.venv'
        ? 'run `npm run setup` (it creates .venv), or set DATAFLEX_PYTHON to a prepared interpreter'
        : `point DATAFLEX_PYTHON at a working Python 3.11 (now ${python.executable})`
    add({ check: 'python', status: 'problem', detail: `${python.executable} (${python.source}): ${gathered.why}`, fix })
    for (const p of PACKAGES) add({ check: p.module, status: 'problem', detail: 'not checked: no working Python', fix: 'fix python first' })
    add({ check: 'cuda', status: 'warn', detail: 'not checked: no working Python', fix: 'fix python first' })
    add({ check: 'bridge', status: 'problem', detail: 'not started: no working Python', fix: 'fix python first' })
  } else {
    const facts = gathered.facts
    const pins = readPins()
    add(checkPython(python, facts))
    for (const p of PACKAGES) add(checkPackage(python, facts, p.module, p.dist, pins))
    add(checkCuda(facts))
    const lacking = (['zmq', 'msgpack', 'dataflex_bridge'] as const).filter((m) => facts.modules[m]?.ok !== true)
    if (lacking.length > 0) {
      add({ check: 'bridge', status: 'problem', detail: `not started: the sidecar needs ${lacking.join(', ')}`, fix: 'install them (above)' })
    } else {
      add(await checkBridge(python, opts.signal))
    }
  }
  add(checkOutputDir(opts.outputDir))
  return results
}

export function formatCheck(r: CheckResult): string {
  return `${r.status}: ${r.check}: ${r.detail}${r.fix === undefined ? '' : ` — ${r.fix}`}`
}

function summaryLine(results: readonly CheckResult[]): string {
  const count = (s: CheckStatus): number => results.filter((r) => r.status === s).length
  const problems = count('problem')
  const verdict = problems === 0 ? 'ready to train' : 'not ready: fix the problems above'
  return `doctor: ${count('ok')} ok, ${count('warn')} warn, ${problems} problem${problems === 1 ? '' : 's'}; ${verdict}`
}

interface DoctorCliOptions {
  readonly outputDir: string
  readonly json?: boolean
}

function doctor(options: DoctorCliOptions, io: CliIO): Promise<number> {
  let results: CheckResult[] = []
  return runCommand(io, { what: 'the checks' }, async (signal) => {
    results = await runDoctor({
      outputDir: options.outputDir,
      env: io.env,
      signal,
      onCheck: options.json === true ? undefined : (r) => void io.stdout.write(`${formatCheck(r)}\n`),
    })
    if (options.json === true) io.stdout.write(`${JSON.stringify(results, null, 2)}\n`)
    else io.stdout.write(`${summaryLine(results)}\n`)
  }).then((code) => (code === EXIT_OK && results.some((r) => r.status === 'problem') ? EXIT_RUNTIME : code))
}

export function registerDoctor(program: Command, ctx: { io: CliIO; done: (code: number) => void }): void {
  program
    .command('doctor')
    .description('check this host: Node, the Python stack and its pins, CUDA, the bridge handshake, the output folder')
    .option('--output-dir <dir>', 'the folder runs will write to', 'runs')
    .option('--json', 'print a JSON array of {check, status, detail, fix} instead of lines')
    .action(async (options: DoctorCliOptions) => {
      ctx.done(await doctor(options, ctx.io))
    })
}
