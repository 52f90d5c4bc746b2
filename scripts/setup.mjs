#!/usr/bin/env node
// Installs what the project needs, idempotently. Runs before `npm run demo` and `npm test`.
//
//   1. npm packages     `npm ci` when node_modules is missing or package.json / package-lock.json changed
//   2. Python           DATAFLEX_PYTHON set: check that interpreter has what the sidecar needs (with
//                       --install-python, first pip-install the pinned stack, the bridge and the stub into it).
//                       Otherwise a `.venv` with the pinned CPU stack (python_bridge/requirements*.txt),
//                       the dev tools (python_bridge/requirements-dev.txt: hadolint for the Dockerfile lint),
//                       the bridge itself (`pip install --no-deps -e python_bridge`) and the torchaudio stub.
//   3. Demo assets      models/tiny-qwen2 and models/tiny-qwen2-moe (its mixture-of-experts twin, same tokenizer),
//                       built locally from data/demo (a few seconds each).
//   4. CLI bundle       dist/cli/main.mjs, esbuild's bundle of src/ (bin/cli-bundle.mjs; the CLI also rebuilds it
//                       itself when a source changed, so this only saves the first run the build).
//      Library          dist/lib: what `import ... from 'dataflex-ts'` loads, a bundle of src/index.ts and its
//                       declarations (scripts/build-lib.mjs, also `npm run build:lib`).
//   5. Chromium         Debian's /usr/bin/chromium, for the run report's browser test (test/report-browser.test.ts),
//                       installed with apt-get when missing, as root or through `sudo -n`. Without either it is
//                       left out with a note (the test then skips; under CI=true it fails, saying why).
//
// Each step keeps a stamp (a hash of its inputs) and is skipped while the stamp matches, so a warm run
// takes milliseconds and spawns nothing. A step that fails leaves no stamp, so the next run retries it.
// Node built-ins only: this runs before node_modules exists.
//
//   node scripts/setup.mjs [--force] [--check] [--quiet] [--install-python]
//     --force           ignore the stamps and redo every step
//     --check           report what is out of date and exit 1 if anything is; change nothing
//     --quiet           print only what is done (nothing when everything is up to date)
//     --install-python  with DATAFLEX_PYTHON: pip-install the pinned stack (a torch already there that meets the
//                       pin is kept, e.g. a CUDA build), the bridge (editable) and the torchaudio stub into that
//                       interpreter, then check it. Not stamped: pip runs each time (quick once installed).
//                       The Dockerfile builds its image with it.
//   env DATAFLEX_PYTHON       use this interpreter instead of .venv (only checked, unless --install-python)
//   env DATAFLEX_BASE_PYTHON  interpreter used to create .venv (default: python3.11, else python3 >= 3.10)
//   env DATAFLEX_SKIP_SETUP=1 do nothing (e.g. a prepared image)
//   env DATAFLEX_SKIP_CHROMIUM=1  leave chromium out (e.g. the Docker image, which runs no tests)

import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const IS_WIN = process.platform === 'win32'
const NPM = IS_WIN ? 'npm.cmd' : 'npm'

// Bump when the venv recipe below changes in a way the requirement files do not show.
const VENV_RECIPE = 'venv-recipe-1'
const DEMO_DATA = 'data/demo'
const MODEL_GENERATOR = 'python_bridge/dataflex_bridge/tools/make_tiny_model.py'
const MODELS = [
  { dir: 'models/tiny-qwen2', args: ['--size', 'tiny', '--arch', 'qwen2', '--seed', '0'] },
  { dir: 'models/tiny-qwen2-moe', args: ['--size', 'tiny', '--arch', 'qwen2_moe', '--seed', '0'] },
]
const REQUIRED_MODULES = ['zmq', 'msgpack', 'torch', 'llamafactory']

const argv = new Set(process.argv.slice(2))
for (const a of argv) {
  if (!['--force', '--check', '--quiet', '--install-python', '--help', '-h'].includes(a)) {
    console.error(`setup: unknown option ${a} (try --help)`)
    process.exit(2)
  }
}
if (argv.has('--help') || argv.has('-h')) {
  const text = fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n')
  const end = text.findIndex((l) => l.startsWith('import '))
  console.log(text.slice(1, end).map((l) => l.replace(/^\/\/ ?/, '')).join('\n').trim())
  process.exit(0)
}
const FORCE = argv.has('--force')
const CHECK = argv.has('--check')
const QUIET = argv.has('--quiet')
const INSTALL_PYTHON = argv.has('--install-python')
if (INSTALL_PYTHON && !process.env.DATAFLEX_PYTHON) {
  console.error('setup: --install-python installs into DATAFLEX_PYTHON; set it (without it, setup builds .venv anyway)')
  process.exit(2)
}

const t0 = performance.now()
const outdated = []

function log(msg) {
  console.log(`[setup] ${msg}`)
}
function info(msg) {
  if (!QUIET) log(msg)
}
function fail(msg) {
  console.error(`[setup] error: ${msg}`)
  process.exit(1)
}
function abs(p) {
  return path.join(ROOT, p)
}
function readOr(p, fallback) {
  try {
    return fs.readFileSync(p, 'utf8')
  } catch {
    return fallback
  }
}
function hash(...parts) {
  const h = createHash('sha256')
  for (const p of parts) h.update(typeof p === 'string' ? p : JSON.stringify(p)).update('\0')
  return h.digest('hex').slice(0, 32)
}
function fileHash(rel) {
  return hash(rel, readOr(abs(rel), '<absent>'))
}
function readStamp(p) {
  return readOr(p, '').trim()
}
function secs(ms) {
  return `${(ms / 1000).toFixed(1)} s`
}

/** Run a command with inherited stdio; exit with a clear message when it fails. */
function run(cmd, args, { env, what } = {}) {
  const shown = [cmd, ...args].map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')
  log(`$ ${shown}`)
  const t = performance.now()
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', env: env ?? process.env })
  if (r.error) fail(`${what ?? cmd}: could not start ${cmd}: ${r.error.message}`)
  if (r.status !== 0) {
    fail(`${what ?? shown} failed (${r.signal ? `signal ${r.signal}` : `exit ${r.status}`}); nothing was stamped, re-run to retry`)
  }
  info(`  done in ${secs(performance.now() - t)}`)
}

/** Run a command and capture stdout (for small probes). Returns null when it cannot run. */
function probe(cmd, args, env) {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', env: env ?? process.env, timeout: 60_000 })
  if (r.error || r.status !== 0) return null
  return r.stdout.trim()
}

// ---------------------------------------------------------------------------------------------
// A lock, so that `npm test` and `npm run demo` started together do not install twice at once.
// Only taken when there is work to do; the warm path never touches it.
let lockHeld = false
const LOCK_DIR = abs('.cache/setup.lock')
/** Take the lock. Returns true when another run held it meanwhile: the caller must re-check its stamps. */
function lock() {
  if (lockHeld) return false
  fs.mkdirSync(abs('.cache'), { recursive: true })
  const deadline = Date.now() + 30 * 60_000
  let told = false
  for (;;) {
    try {
      fs.mkdirSync(LOCK_DIR)
      fs.writeFileSync(path.join(LOCK_DIR, 'pid'), String(process.pid))
      lockHeld = true
      process.on('exit', unlock)
      for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
        process.on(sig, () => {
          unlock()
          process.exit(sig === 'SIGINT' ? 130 : 143)
        })
      }
      return told
    } catch (e) {
      if (e.code !== 'EEXIST') throw e
    }
    const pid = Number(readOr(path.join(LOCK_DIR, 'pid'), '0'))
    let alive = pid > 0
    try {
      if (alive) process.kill(pid, 0)
    } catch {
      alive = false
    }
    const age = Date.now() - (fs.statSync(LOCK_DIR, { throwIfNoEntry: false })?.mtimeMs ?? Date.now())
    if (!alive && age > 2000) {
      fs.rmSync(LOCK_DIR, { recursive: true, force: true }) // stale: its owner is gone
      continue
    }
    if (Date.now() > deadline) fail(`another setup (pid ${pid}) still holds ${LOCK_DIR}`)
    if (!told) log(`waiting for another setup run (pid ${pid}) to finish ...`)
    told = true
    spawnSync(process.execPath, ['-e', 'setTimeout(() => {}, 1000)'])
  }
}
function unlock() {
  if (!lockHeld) return
  lockHeld = false
  fs.rmSync(LOCK_DIR, { recursive: true, force: true })
}

// ---------------------------------------------------------------------------------------------
// 1. npm

function npmStampValue() {
  return hash(fileHash('package.json'), fileHash('package-lock.json'), process.platform, process.arch)
}

function sameDeps(a = {}, b = {}) {
  const ka = Object.keys(a).sort()
  const kb = Object.keys(b).sort()
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k])
}

/** Is node_modules (npm's hidden lockfile) already exactly what package-lock.json asks for? */
function nodeModulesInSync() {
  try {
    const pkg = JSON.parse(readOr(abs('package.json'), 'null'))
    const lockfile = JSON.parse(readOr(abs('package-lock.json'), 'null'))
    const hidden = JSON.parse(readOr(abs('node_modules/.package-lock.json'), 'null'))
    if (!pkg || !lockfile?.packages || !hidden?.packages) return false
    const root = lockfile.packages[''] ?? {}
    for (const k of ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies']) {
      if (!sameDeps(pkg[k], root[k])) return false
    }
    for (const [key, want] of Object.entries(lockfile.packages)) {
      if (key === '') continue
      const have = hidden.packages[key]
      if (!have) {
        if (want.optional || want.devOptional) continue // e.g. another platform's binary
        return false
      }
      if (have.version !== want.version || have.integrity !== want.integrity) return false
    }
    for (const key of Object.keys(hidden.packages)) if (!(key in lockfile.packages)) return false
    return true
  } catch {
    return false
  }
}

function setupNpm() {
  const stampPath = abs('node_modules/.dataflex-stamp')
  const want = npmStampValue()
  const haveModules = fs.existsSync(abs('node_modules'))
  if (!FORCE && haveModules && readStamp(stampPath) === want) return 'up to date'
  if (!FORCE && haveModules && nodeModulesInSync()) {
    if (CHECK) return 'up to date (unstamped)'
    fs.writeFileSync(stampPath, want + '\n')
    info('npm: node_modules already matches package-lock.json (stamped)')
    return 'up to date'
  }
  const hasLock = fs.existsSync(abs('package-lock.json'))
  const why = !haveModules ? 'node_modules is missing' : FORCE ? '--force' : 'package.json / package-lock.json changed'
  if (CHECK) {
    outdated.push(`npm (${why})`)
    return 'out of date'
  }
  if (lock()) return setupNpm()
  log(`npm: ${why}; installing`)
  run(NPM, [hasLock ? 'ci' : 'install', '--no-audit', '--no-fund'], { what: `npm ${hasLock ? 'ci' : 'install'}` })
  fs.writeFileSync(stampPath, npmStampValue() + '\n') // re-read: `npm install` may write the lockfile
  return 'installed'
}

// ---------------------------------------------------------------------------------------------
// 2. Python

const VENV = abs('.venv')
const VENV_PY = IS_WIN ? path.join(VENV, 'Scripts', 'python.exe') : path.join(VENV, 'bin', 'python')
const DEPS_STAMP = path.join(VENV, '.dataflex-deps-stamp')
const BRIDGE_STAMP = path.join(VENV, '.dataflex-bridge-stamp')
const STUBS_DIR = abs('python_bridge/stubs')
const STUB_PTH = 'zz_dataflex_stubs.pth'

function venvVersion() {
  const cfg = readOr(path.join(VENV, 'pyvenv.cfg'), '')
  return /^version(?:_info)?\s*=\s*(\S+)/m.exec(cfg)?.[1] ?? null
}

function depsStampValue(pyVersion) {
  return hash(
    VENV_RECIPE,
    pyVersion,
    fileHash('python_bridge/requirements.txt'),
    fileHash('python_bridge/requirements-nodeps.txt'),
    fileHash('python_bridge/requirements-dev.txt'),
    STUBS_DIR,
  )
}
function bridgeStampValue() {
  // The editable install only records where the package lives; it needs redoing when the project
  // metadata (pyproject: name, entry points) changes or when the pyproject first appears.
  return hash(fileHash('python_bridge/pyproject.toml'))
}

function pyVersionOf(cmd) {
  const out = probe(cmd, ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3])'])
  return out && /^\d+\.\d+\.\d+$/.test(out) ? out : null
}

function pickBasePython() {
  const override = process.env.DATAFLEX_BASE_PYTHON
  if (override) {
    const v = pyVersionOf(override)
    if (!v) fail(`DATAFLEX_BASE_PYTHON=${override} does not run`)
    return { cmd: override, version: v }
  }
  const v311 = pyVersionOf('python3.11')
  if (v311) return { cmd: 'python3.11', version: v311 }
  for (const cmd of ['python3', 'python']) {
    const v = pyVersionOf(cmd)
    if (!v) continue
    const [maj, min] = v.split('.').map(Number)
    if (maj === 3 && min >= 10) {
      log(`note: python3.11 not found; using ${cmd} ${v} (the pins are tested with 3.11)`)
      return { cmd, version: v }
    }
  }
  fail('no Python >= 3.10 found (install Python 3.11, or set DATAFLEX_BASE_PYTHON / DATAFLEX_PYTHON)')
}

function sitePackages(py) {
  const out = probe(py, ['-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'])
  if (!out) fail(`cannot ask ${py} for its site-packages`)
  return out
}

function writeStubPth(py) {
  const sp = sitePackages(py)
  const target = path.join(sp, STUB_PTH)
  fs.writeFileSync(target, STUBS_DIR + '\n')
  info(`python: torchaudio stub enabled (${path.relative(ROOT, target)} -> ${path.relative(ROOT, STUBS_DIR)})`)
}

function pip(py, args, what) {
  run(py, ['-m', 'pip', 'install', '--disable-pip-version-check', ...args], { what })
}

/** The pinned stack (requirements.txt, then requirements-nodeps.txt without deps) and the torchaudio stub. */
function installStack(py) {
  pip(py, ['-r', 'python_bridge/requirements.txt'], 'pip install -r python_bridge/requirements.txt')
  pip(py, ['--no-deps', '-r', 'python_bridge/requirements-nodeps.txt'], 'pip install --no-deps -r python_bridge/requirements-nodeps.txt')
  writeStubPth(py)
}

/** The bridge, editable: source edits need no reinstall. */
function installBridge(py) {
  if (fs.existsSync(abs('python_bridge/pyproject.toml'))) {
    pip(py, ['--no-deps', '-e', 'python_bridge'], 'pip install --no-deps -e python_bridge')
  } else {
    info('python: python_bridge/pyproject.toml not found yet; skipping the editable install (PYTHONPATH=python_bridge works meanwhile)')
  }
}

function setupVenv() {
  const ver = venvVersion()
  const venvOk = fs.existsSync(VENV_PY) && ver !== null
  const depsCurrent = venvOk && readStamp(DEPS_STAMP) === depsStampValue(ver)
  const bridgeCurrent = venvOk && readStamp(BRIDGE_STAMP) === bridgeStampValue()
  if (!FORCE && depsCurrent && bridgeCurrent) return 'up to date'
  if (CHECK) {
    outdated.push(`python .venv (${!venvOk ? 'missing' : !depsCurrent ? 'requirements changed' : 'bridge install changed'})`)
    return 'out of date'
  }
  if (lock()) return setupVenv()
  const tStart = performance.now()

  let pyVersion = ver
  if (!depsCurrent || FORCE) {
    const base = pickBasePython()
    const usable = venvOk && pyVersionOf(VENV_PY) !== null && ver === base.version
    if (!usable) {
      if (fs.existsSync(VENV)) {
        log(`python: recreating .venv (${ver ? `was Python ${ver}` : 'broken'}, want ${base.version})`)
        fs.rmSync(VENV, { recursive: true, force: true })
      }
      log(`python: creating .venv with ${base.cmd} (Python ${base.version})`)
      run(base.cmd, ['-m', 'venv', VENV], { what: 'python -m venv' })
    }
    pyVersion = venvVersion() ?? base.version
    fs.rmSync(DEPS_STAMP, { force: true }) // a half-finished install must never look finished
    fs.rmSync(BRIDGE_STAMP, { force: true })
    log('python: installing the pinned stack (torch CPU, transformers, LLaMA-Factory, ...); first time takes a few minutes')
    installStack(VENV_PY)
    pip(VENV_PY, ['-r', 'python_bridge/requirements-dev.txt'], 'pip install -r python_bridge/requirements-dev.txt')
    const check = checkModules(VENV_PY, [...REQUIRED_MODULES, 'torchaudio'])
    if (check.missing.length) fail(`after install, .venv still lacks: ${check.missing.join(', ')}`)
    fs.writeFileSync(DEPS_STAMP, depsStampValue(pyVersion) + '\n')
  }

  installBridge(VENV_PY)
  fs.writeFileSync(BRIDGE_STAMP, bridgeStampValue() + '\n')
  info(`python: .venv ready in ${secs(performance.now() - tStart)}`)
  return 'installed'
}

/** Which of `mods` the interpreter cannot find (find_spec: no heavy imports). */
function checkModules(py, mods) {
  const code =
    'import importlib.util as u, json, sys\n' +
    'def ok(m):\n' +
    '    try:\n' +
    '        return u.find_spec(m) is not None\n' +
    '    except Exception:\n' +
    '        return False\n' +
    'print(json.dumps({"missing": [m for m in sys.argv[1:] if not ok(m)], "version": sys.version.split()[0]}))'
  const env = { ...process.env, PYTHONPATH: '' } // judge the environment itself, not our checkout
  const out = probe(py, ['-c', code, ...mods], env)
  if (out === null) return null
  try {
    return JSON.parse(out.split('\n').pop())
  } catch {
    return null
  }
}

function setupExternalPython(py) {
  const r = checkModules(py, [...REQUIRED_MODULES, 'torchaudio', 'dataflex_bridge'])
  if (r === null) fail(`DATAFLEX_PYTHON=${py} does not run`)
  const missing = r.missing.filter((m) => REQUIRED_MODULES.includes(m))
  if (missing.length) {
    const msg =
      `DATAFLEX_PYTHON=${py} (Python ${r.version}) lacks: ${missing.join(', ')}.\n` +
      `  Install the stack there (see docs/setup.md), e.g.:\n` +
      `    ${py} -m pip install -r python_bridge/requirements.txt   # replace the torch pin with your CUDA build\n` +
      `    ${py} -m pip install --no-deps -r python_bridge/requirements-nodeps.txt\n` +
      `    ${py} -m pip install --no-deps -e python_bridge`
    if (CHECK) {
      outdated.push(`DATAFLEX_PYTHON lacks ${missing.join(', ')}`)
      console.error(`[setup] ${msg}`)
      return 'out of date'
    }
    fail(msg)
  }
  if (r.missing.includes('dataflex_bridge')) {
    log(`warning: DATAFLEX_PYTHON cannot import dataflex_bridge; run: ${py} -m pip install --no-deps -e python_bridge`)
    log('         (until then the sidecar is started with PYTHONPATH=python_bridge)')
  }
  if (r.missing.includes('torchaudio')) {
    log('warning: DATAFLEX_PYTHON has no torchaudio, which LLaMA-Factory 0.9.5 imports unconditionally. Either install')
    log('         the torchaudio build that matches your torch, or enable the stub:')
    log(`         echo ${STUBS_DIR} > "$(${py} -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/${STUB_PTH}"`)
  }
  return `using DATAFLEX_PYTHON (Python ${r.version})`
}

function pythonExecutable() {
  return process.env.DATAFLEX_PYTHON || VENV_PY
}

// ---------------------------------------------------------------------------------------------
// 3. Demo assets

function listDataFiles() {
  try {
    return fs
      .readdirSync(abs(DEMO_DATA))
      .filter((f) => f.endsWith('.json'))
      .sort()
  } catch {
    return []
  }
}

function modelStampValue(model) {
  const env = process.env.DATAFLEX_PYTHON
    ? `external:${process.env.DATAFLEX_PYTHON}`
    : readStamp(DEPS_STAMP) // the library versions shape the saved files
  return hash(
    fileHash(MODEL_GENERATOR),
    model.args,
    env,
    listDataFiles().map((f) => fileHash(path.posix.join(DEMO_DATA, f))),
  )
}

function setupModel(model) {
  const dir = abs(model.dir)
  const stampPath = path.join(dir, '.dataflex-stamp')
  const want = modelStampValue(model)
  if (!FORCE && fs.existsSync(path.join(dir, 'config.json')) && readStamp(stampPath) === want) return 'up to date'
  if (CHECK) {
    outdated.push(model.dir)
    return 'out of date'
  }
  if (lock()) return setupModel(model)
  const py = pythonExecutable()
  if (!fs.existsSync(abs(path.join(DEMO_DATA, 'dataset_info.json')))) {
    log(`demo data missing; generating ${DEMO_DATA}`)
    run(py, ['data/make_demo_data.py', '--out', DEMO_DATA], { what: 'data/make_demo_data.py' })
  }
  log(`demo: building ${model.dir} from ${DEMO_DATA}`)
  const pp = [abs('python_bridge'), process.env.PYTHONPATH].filter(Boolean).join(path.delimiter)
  const env = { ...process.env, PYTHONPATH: pp, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1' }
  run(
    py,
    ['-m', 'dataflex_bridge.tools.make_tiny_model', '--out', model.dir, '--data', DEMO_DATA, ...model.args],
    { env, what: 'make_tiny_model' },
  )
  fs.writeFileSync(stampPath, modelStampValue(model) + '\n')
  return 'built'
}

// ---------------------------------------------------------------------------------------------
// 4. CLI bundle

async function setupCliBundle() {
  if (CHECK && !fs.existsSync(abs('node_modules/esbuild'))) return 'waits for npm'
  const { bundleIsFresh, buildBundle } = await import('../bin/cli-bundle.mjs')
  if (!FORCE && bundleIsFresh()) return 'up to date'
  if (CHECK) {
    outdated.push('dist/cli')
    return 'out of date'
  }
  await buildBundle()
  return 'built'
}

async function setupLibrary() {
  if (CHECK && !fs.existsSync(abs('node_modules/esbuild'))) return 'waits for npm'
  const { LIB } = await import('./build-lib.mjs')
  if (!FORCE && LIB.isFresh()) return 'up to date'
  if (CHECK) {
    outdated.push('dist/lib')
    return 'out of date'
  }
  await LIB.build()
  return 'built'
}

// ---------------------------------------------------------------------------------------------
// 5. Chromium

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_STAMP = abs('.cache/chromium-stamp')
const CHROMIUM_RECIPE = 'chromium-apt-1'

function setupChromium() {
  if (process.env.DATAFLEX_SKIP_CHROMIUM === '1') return 'not needed (DATAFLEX_SKIP_CHROMIUM=1)'
  if (process.platform !== 'linux') return 'not needed (not Linux: the browser test skips)'
  const want = hash(CHROMIUM_RECIPE, CHROMIUM)
  if (!FORCE && fs.existsSync(CHROMIUM)) {
    // Installed by this step or by anyone else: the stamp only records that it was found.
    if (!CHECK && readStamp(CHROMIUM_STAMP) !== want) {
      fs.mkdirSync(path.dirname(CHROMIUM_STAMP), { recursive: true })
      fs.writeFileSync(CHROMIUM_STAMP, want + '\n')
    }
    return 'up to date'
  }
  const root = process.getuid?.() === 0
  const cannot = probe('apt-get', ['--version']) === null ? 'no apt-get' : !root && probe('sudo', ['-n', 'true']) === null ? 'not root, no passwordless sudo' : null
  if (cannot !== null) {
    // Not an error, and not "out of date" for --check: only the browser test needs it, and it says so.
    info(`note: ${CHROMIUM} is missing and cannot be installed here (${cannot}); the run report browser test`)
    info('      skips (fails under CI=true). Install it with: sudo apt-get install chromium')
    return `missing (${cannot})`
  }
  if (CHECK) {
    outdated.push(`chromium (${CHROMIUM} missing)`)
    return 'out of date'
  }
  if (lock()) return setupChromium()
  const prefix = root ? [] : ['sudo', '-n']
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  // Not fatal: without chromium everything but the browser test still runs, and that test says why it cannot.
  for (const args of [['apt-get', 'update', '-qq'], ['apt-get', 'install', '-y', '-qq', 'chromium']]) {
    const cmd = [...prefix, ...args]
    log(`$ ${cmd.join(' ')}`)
    const r = spawnSync(cmd[0], cmd.slice(1), { cwd: ROOT, stdio: 'inherit', env })
    if (r.error || r.status !== 0) {
      log(`warning: ${args.slice(0, 2).join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}); chromium not installed`)
      return 'install failed'
    }
  }
  if (!fs.existsSync(CHROMIUM)) {
    log(`warning: apt-get installed chromium but ${CHROMIUM} is missing`)
    return 'install failed'
  }
  fs.mkdirSync(path.dirname(CHROMIUM_STAMP), { recursive: true })
  fs.writeFileSync(CHROMIUM_STAMP, want + '\n')
  return 'installed'
}

// ---------------------------------------------------------------------------------------------

if (process.env.DATAFLEX_SKIP_SETUP === '1') {
  info('DATAFLEX_SKIP_SETUP=1: skipping')
  process.exit(0)
}

const results = {}
results.npm = setupNpm()
if (INSTALL_PYTHON && !CHECK) {
  lock() // waits for another setup; nothing to re-check after it, since this step keeps no stamp
  log(`python: installing the pinned stack, the bridge and the torchaudio stub into DATAFLEX_PYTHON=${process.env.DATAFLEX_PYTHON}`)
  installStack(process.env.DATAFLEX_PYTHON)
  installBridge(process.env.DATAFLEX_PYTHON)
}
results.python = process.env.DATAFLEX_PYTHON ? setupExternalPython(process.env.DATAFLEX_PYTHON) : setupVenv()
for (const model of MODELS) {
  results[model.dir] = CHECK && outdated.some((o) => o.startsWith('python')) ? 'waits for python' : setupModel(model)
}
results['dist/cli'] = await setupCliBundle()
results['dist/lib'] = await setupLibrary()
results.chromium = setupChromium()
unlock()

const summary = Object.entries(results)
  .map(([k, v]) => `${k}: ${v}`)
  .join('; ')
if (CHECK) {
  log(`${summary} (${secs(performance.now() - t0)})`)
  if (outdated.length) log(`out of date: ${outdated.join(', ')}`)
  process.exit(outdated.length ? 1 : 0)
}
const didWork = Object.values(results).some((v) => !v.startsWith('up to date') && !v.startsWith('using') && !v.startsWith('not needed') && !v.startsWith('missing'))
if (didWork || !QUIET) log(`${didWork ? 'done' : 'up to date'} — ${summary} (${secs(performance.now() - t0)})`)
