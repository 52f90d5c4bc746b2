/**
 * The set of keys LLaMA-Factory's `get_train_args` accepts, read once from the installed Python package
 * (python_bridge/dataflex_bridge/introspect.py) and cached per (python, llamafactory version), so a typo
 * in a LLaMA-Factory key is caught before any process starts.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { REPO_ROOT, resolvePython, sidecarEnv } from '../bridge/python.ts'
import { writeFileAtomic } from '../util/atomic.ts'

const CACHE_FORMAT = 1
const INTROSPECT_TIMEOUT_MS = 60_000

const VersionSchema = z.object({
  python: z.string(),
  executable: z.string(),
  llamafactory: z.string().nullable(),
})

const ArgNamesSchema = VersionSchema.extend({
  llamafactory: z.string(),
  classes: z.record(z.string(), z.array(z.string())),
  names: z.array(z.string()).min(1),
})
export type LfArgNamesFile = z.output<typeof ArgNamesSchema>

export type LfArgNames =
  | { ok: true; names: ReadonlySet<string>; llamafactory: string; fromCache: boolean }
  | { ok: false; reason: string }

export interface LfArgNamesOptions {
  /** Python interpreter; default: env DATAFLEX_PYTHON, else <repo>/.venv/bin/python (bridge/python.ts). */
  python?: string
  /** Where the cache file lives; default <repo>/.cache. */
  cacheDir?: string
  env?: NodeJS.ProcessEnv
}

function runIntrospect(python: string, command: string, env: NodeJS.ProcessEnv): Promise<unknown> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      python,
      ['-m', 'dataflex_bridge.introspect', command],
      { timeout: INTROSPECT_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024, env: sidecarEnv(env) },
      (err, stdout, stderr) => {
        if (err) {
          const missing = (err as NodeJS.ErrnoException).code === 'ENOENT'
          const tail = stderr.trim().split('\n').slice(-3).join(' | ')
          const why = missing ? 'no such interpreter (set DATAFLEX_PYTHON or run npm run setup)' : tail || err.message
          reject(new Error(`${python} -m dataflex_bridge.introspect ${command} failed: ${why}`, { cause: err }))
          return
        }
        try {
          resolvePromise(JSON.parse(stdout))
        } catch (parseErr) {
          reject(new Error(`introspect ${command} printed invalid JSON`, { cause: parseErr }))
        }
      },
    )
  })
}

function cacheFile(cacheDir: string, python: string, lfVersion: string): string {
  const hash = createHash('sha256').update(`${CACHE_FORMAT}\0${python}\0${lfVersion}`).digest('hex').slice(0, 16)
  return join(cacheDir, `lf-arg-names-${hash}.json`)
}

async function readCache(file: string): Promise<LfArgNamesFile | undefined> {
  try {
    const parsed = ArgNamesSchema.safeParse(JSON.parse(await readFile(file, 'utf8')))
    return parsed.success ? parsed.data : undefined
  } catch {
    return undefined
  }
}

async function load(python: string, cacheDir: string, env: NodeJS.ProcessEnv): Promise<LfArgNames> {
  let version: z.output<typeof VersionSchema>
  try {
    version = VersionSchema.parse(await runIntrospect(python, 'version', env))
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : String(err) }
  }
  if (version.llamafactory === null) return { ok: false, reason: `llamafactory is not installed for ${python}` }

  const file = cacheFile(cacheDir, python, version.llamafactory)
  const cached = await readCache(file)
  if (cached) return { ok: true, names: new Set(cached.names), llamafactory: cached.llamafactory, fromCache: true }

  let fresh: LfArgNamesFile
  try {
    fresh = ArgNamesSchema.parse(await runIntrospect(python, 'arg-names', env))
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : String(err) }
  }
  try {
    writeFileAtomic(file, JSON.stringify(fresh)) // atomic: concurrent runs never read a half-written file
  } catch {
    // a read-only checkout just re-introspects next time
  }
  return { ok: true, names: new Set(fresh.names), llamafactory: fresh.llamafactory, fromCache: false }
}

// One lookup per interpreter per process: loadConfig may run many times (tests, doctor).
const memo = new Map<string, Promise<LfArgNames>>()

export function loadLfArgNames(opts: LfArgNamesOptions = {}): Promise<LfArgNames> {
  const env = opts.env ?? process.env
  const python = opts.python ?? resolvePython(undefined, env).executable
  const cacheDir = opts.cacheDir ?? join(REPO_ROOT, '.cache')
  const key = `${python}\0${cacheDir}`
  let pending = memo.get(key)
  if (pending === undefined) {
    pending = load(python, cacheDir, env)
    memo.set(key, pending)
  }
  return pending
}
