#!/usr/bin/env node
// The whole test suite: the import-cycle check (`npm run lint:cycles`), vitest (TypeScript), then pytest
// (python_bridge/tests). Streams the output, then ends with one plain line over all three:
//     N passed, N failed, N skipped
// Exits non-zero when a test failed, a cycle was found or a runner crashed (a crash counts as one failure in the
// line). The cycle check counts as one passed test when clean, else one failure per cycle.
// pytest exit 5 ("no tests collected") is not a failure.
//
//   node scripts/test.mjs [--only=cycles|vitest|pytest] [vitest args ...]
//     e.g. `npm test -- test/config.test.ts` (extra args go to vitest)
//   The Python interpreter is DATAFLEX_PYTHON, else <repo>/.venv/bin/python (scripts/setup.mjs builds it).
// Node built-ins only.

import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const IS_WIN = process.platform === 'win32'

let only = null
const vitestArgs = []
for (const a of process.argv.slice(2)) {
  const m = /^--only=(cycles|vitest|pytest)$/.exec(a)
  if (m) only = m[1]
  else if (a.startsWith('--only')) {
    console.error(`test: bad option ${a} (use --only=cycles, --only=vitest or --only=pytest)`)
    process.exit(2)
  } else vitestArgs.push(a)
}

const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]/g
const stripAnsi = (s) => s.replace(ANSI, '')

let current = null // the running child, for signal forwarding
let interrupted = null
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    interrupted = sig
    if (current && current.exitCode === null) current.kill(sig)
  })
}

/** Run a command, tee its output to ours, and keep the tail for parsing. */
function runTee(cmd, args, env) {
  return new Promise((resolve) => {
    let tail = ''
    const keep = (chunk) => {
      tail = (tail + chunk.toString('utf8')).slice(-256 * 1024)
    }
    const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['inherit', 'pipe', 'pipe'] })
    current = child
    child.stdout.on('data', (c) => {
      process.stdout.write(c)
      keep(c)
    })
    child.stderr.on('data', (c) => {
      process.stderr.write(c)
      keep(c)
    })
    child.on('error', (err) => resolve({ code: null, signal: null, error: err, text: tail }))
    child.on('close', (code, signal) => {
      current = null
      resolve({ code, signal, error: null, text: tail })
    })
  })
}

const counts = { passed: 0, failed: 0, skipped: 0 }
const problems = []

function add(c) {
  counts.passed += c.passed
  counts.failed += c.failed
  counts.skipped += c.skipped
}

function banner(title) {
  process.stdout.write(`\n===== ${title} =====\n`)
}

// ---------------------------------------------------------------------------------------------
// import cycles: dependency-cruiser, exactly as `npm run lint:cycles` runs it

async function runCycles() {
  banner('import cycles')
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
  const [tool, ...args] = String(pkg.scripts?.['lint:cycles'] ?? '').split(/\s+/)
  const entry = path.join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs')
  if (tool !== 'depcruise' || !fs.existsSync(entry)) {
    problems.push(tool !== 'depcruise' ? 'package.json has no `lint:cycles` depcruise script' : 'dependency-cruiser is not installed (run `npm run setup`)')
    return
  }
  const r = await runTee(process.execPath, [entry, ...args], { ...process.env, NO_COLOR: '1' })
  const t = stripAnsi(r.text)
  const cycles = /(\d+) dependency violations? \((\d+) errors?/.exec(t)
  if (r.code === 0 && /no dependency violations found \([1-9]\d* modules/.test(t)) add({ passed: 1, failed: 0, skipped: 0 })
  else if (cycles && Number(cycles[2]) > 0) add({ passed: 0, failed: Number(cycles[2]), skipped: 0 })
  else problems.push(`the import-cycle check failed to run (${r.error?.message ?? `exit ${r.signal ?? r.code}`}; see its output above)`)
}

// ---------------------------------------------------------------------------------------------
// vitest

function parseVitest(text) {
  const t = stripAnsi(text)
  // Our reporter (test/summary-reporter.ts): "vitest: 16 passed, 0 failed, 0 skipped"
  const ours = [...t.matchAll(/^vitest: (\d+) passed, (\d+) failed, (\d+) skipped\s*$/gm)].pop()
  if (ours) return { passed: +ours[1], failed: +ours[2], skipped: +ours[3] }
  // Fallback: vitest's default summary, "Tests  3 failed | 10 passed | 2 skipped (15)"
  const line = [...t.matchAll(/^\s*Tests\s+(.+)\(\d+\)\s*$/gm)].pop()
  if (!line) return null
  const get = (re) => Number(re.exec(line[1])?.[1] ?? 0)
  return {
    passed: get(/(\d+) passed/),
    failed: get(/(\d+) failed/),
    skipped: get(/(\d+) skipped/) + get(/(\d+) todo/),
  }
}

async function runVitest() {
  banner('vitest')
  const entry = path.join(ROOT, 'node_modules', 'vitest', 'vitest.mjs')
  const [cmd, args] = fs.existsSync(entry)
    ? [process.execPath, [entry, 'run', ...vitestArgs]]
    : [IS_WIN ? 'npx.cmd' : 'npx', ['vitest', 'run', ...vitestArgs]]
  const env = { ...process.env, NO_COLOR: '1' }
  delete env.FORCE_COLOR
  const r = await runTee(cmd, args, env)
  if (r.error) {
    problems.push(`vitest could not start: ${r.error.message}`)
    return
  }
  const c = parseVitest(r.text)
  if (!c) {
    problems.push(`vitest crashed or printed no summary (${r.signal ? `signal ${r.signal}` : `exit ${r.code}`})`)
    return
  }
  add(c)
  if (r.code !== 0 && c.failed === 0) {
    // e.g. no test files matched, an unhandled error outside a test, a teardown failure
    problems.push(`vitest exited ${r.signal ?? r.code} although no test failed (see its output above)`)
  }
}

// ---------------------------------------------------------------------------------------------
// pytest

function parsePytest(text) {
  const t = stripAnsi(text)
  // The final summary, e.g. "3 passed, 1 failed, 2 skipped, 1 error in 4.20s" (optionally inside "=====")
  const lines = t.split('\n').filter((l) => / in [\d.]+s/.test(l) && /\d+ (passed|failed|skipped|errors?|deselected|xfailed|xpassed)|no tests ran/.test(l))
  const line = lines.pop()
  if (!line) return null
  const get = (re) => [...line.matchAll(re)].reduce((s, m) => s + Number(m[1]), 0)
  return {
    passed: get(/(\d+) passed/g) + get(/(\d+) xpassed/g),
    failed: get(/(\d+) failed/g) + get(/(\d+) errors?\b/g),
    skipped: get(/(\d+) skipped/g) + get(/(\d+) xfailed/g),
  }
}

async function runPytest() {
  banner('pytest')
  const testsDir = path.join(ROOT, 'python_bridge', 'tests')
  if (!fs.existsSync(testsDir)) {
    process.stdout.write('no python_bridge/tests directory; skipping pytest\n')
    return
  }
  const venvPy = IS_WIN ? path.join(ROOT, '.venv', 'Scripts', 'python.exe') : path.join(ROOT, '.venv', 'bin', 'python')
  const py = process.env.DATAFLEX_PYTHON || venvPy
  if (!process.env.DATAFLEX_PYTHON && !fs.existsSync(venvPy)) {
    problems.push('no Python: .venv is missing (run `npm run setup`) and DATAFLEX_PYTHON is not set')
    return
  }
  const pp = [path.join(ROOT, 'python_bridge'), process.env.PYTHONPATH].filter(Boolean).join(path.delimiter)
  const env = { ...process.env, PYTHONPATH: pp, PY_COLORS: '0', NO_COLOR: '1', HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1' }
  const r = await runTee(py, ['-m', 'pytest', 'python_bridge/tests', '-q'], env)
  if (r.error) {
    problems.push(`pytest could not start (${py}): ${r.error.message}`)
    return
  }
  if (r.code === 5) {
    // no tests collected: not a failure
    add(parsePytest(r.text) ?? { passed: 0, failed: 0, skipped: 0 })
    return
  }
  const c = parsePytest(r.text)
  if (!c) {
    problems.push(`pytest crashed or printed no summary (${r.signal ? `signal ${r.signal}` : `exit ${r.code}`})`)
    return
  }
  add(c)
  if (r.code !== 0 && c.failed === 0) problems.push(`pytest exited ${r.signal ?? r.code} although no test failed`)
}

// ---------------------------------------------------------------------------------------------

const t0 = performance.now()
if (only === null || only === 'cycles') await runCycles()
if ((only === null || only === 'vitest') && !interrupted) await runVitest()
if ((only === null || only === 'pytest') && !interrupted) await runPytest()
if (interrupted) problems.push(`interrupted by ${interrupted}`)

// A crashed or misbehaving runner counts as one failure, so the summary line never reads "0 failed" on exit 1.
counts.failed += problems.length
process.stdout.write('\n')
for (const p of problems) process.stdout.write(`test: ${p}\n`)
process.stdout.write(`(${((performance.now() - t0) / 1000).toFixed(1)} s)\n`)
process.stdout.write(`${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped\n`)
process.exitCode = counts.failed > 0 || problems.length > 0 ? 1 : 0
