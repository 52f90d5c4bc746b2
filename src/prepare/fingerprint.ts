/**
 * Identity of what a prepared file was computed from: the config, the embedding model and the data. Recorded in
 * the JSON next to the .npy so a stale file (other data, other model, edited config) can be recognised.
 *
 * Files up to 64 MiB are hashed whole; larger ones (model weights) by size plus their first and last MiB, which
 * catches any re-save or different checkpoint without reading gigabytes.
 */
import { createHash, type Hash } from 'node:crypto'
import { closeSync, existsSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs'
import { isAbsolute, join, relative, resolve } from 'node:path'
import { canonicalJson } from '../util/canonical-json.ts'

const WHOLE_LIMIT = 64 << 20
const EDGE = 1 << 20

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

function hashFile(h: Hash, path: string, size: number): void {
  if (size <= WHOLE_LIMIT) {
    h.update(readFileSync(path))
    return
  }
  const fd = openSync(path, 'r')
  try {
    const buf = Buffer.alloc(EDGE)
    h.update(buf.subarray(0, readSync(fd, buf, 0, EDGE, 0)))
    h.update(buf.subarray(0, readSync(fd, buf, 0, EDGE, size - EDGE)))
  } finally {
    closeSync(fd)
  }
}

function walk(dir: string): string[] {
  const out: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue // caches, lock files, editors' droppings
    const full = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...walk(full))
    else if (entry.isFile()) out.push(full)
  }
  return out.sort()
}

/** sha256 over (relative name, size, content or edges) of a file or every file under a folder. */
export function pathFingerprint(path: string): string {
  const h = createHash('sha256')
  const st = statSync(path)
  const files = st.isDirectory() ? walk(path) : [path]
  for (const f of files) {
    const size = statSync(f).size
    h.update(`${st.isDirectory() ? relative(path, f) : ''}\0${size}\0`)
    hashFile(h, f, size)
  }
  return h.digest('hex')
}

/** A local model folder's fingerprint, or the hash of a hub id (which LLaMA-Factory resolves itself). */
export function modelFingerprint(model: string, cwd: string): { path: string; sha256: string; local: boolean } {
  const local = resolve(cwd, model)
  if (existsSync(local)) return { path: local, sha256: pathFingerprint(local), local: true }
  return { path: model, sha256: sha256(`hub:${model}`), local: false }
}

function names(value: unknown): string[] {
  if (typeof value !== 'string') return []
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
}

/**
 * The dataset_info.json entries of the named datasets plus the files they point to. Remote entries (hub ids,
 * scripts) contribute their entry only.
 */
export function datasetFingerprint(lf: Record<string, unknown>, datasets: string[], cwd: string): string {
  const h = createHash('sha256')
  const dirRaw = typeof lf['dataset_dir'] === 'string' ? (lf['dataset_dir'] as string) : 'data'
  const dir = resolve(cwd, dirRaw)
  const infoPath = join(dir, 'dataset_info.json')
  let info: Record<string, Record<string, unknown>> = {}
  if (existsSync(infoPath)) info = JSON.parse(readFileSync(infoPath, 'utf8')) as Record<string, Record<string, unknown>>
  for (const name of datasets) {
    const entry = info[name]
    h.update(`${name}\0${canonicalJson(entry ?? null)}\0`)
    const file = entry?.['file_name']
    if (typeof file === 'string') {
      const full = isAbsolute(file) ? file : join(dir, file)
      if (existsSync(full)) h.update(pathFingerprint(full))
    }
  }
  return h.digest('hex')
}

export function trainDatasets(lf: Record<string, unknown>): string[] {
  return names(lf['dataset'])
}

export function queryDatasets(lf: Record<string, unknown>, queries: string): string[] {
  return queries === 'eval' ? names(lf['eval_dataset']) : names(queries)
}
