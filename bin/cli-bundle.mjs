// The CLI runs as one ES module bundled from src/ by esbuild (dist/cli/main.mjs), not through a TypeScript loader:
// tsx's loader lives on a separate thread for the life of the process (it makes the Node process of a training run
// larger and slower to start: bench/results/setup.md). The bundle is rebuilt on use whenever an input changed, so a
// checkout never runs stale code and there is no build step to forget.
//
//   node bin/cli-bundle.mjs    build now if stale (setup runs this)

import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const ENTRY = 'src/cli/main.ts'
// Two levels below the root, like src/cli/main.ts, so `new URL('../../', import.meta.url)` in the sources still
// names the repository root.
const OUT_DIR = path.join(ROOT, 'dist', 'cli')
const OUT = path.join(OUT_DIR, 'main.mjs')
const STAMP = path.join(OUT_DIR, 'inputs.json')
// Part of the stamp: a change here (or of esbuild) rebuilds.
const RECIPE = 'cli-bundle-1'

function stat(rel) {
  try {
    const s = statSync(path.join(ROOT, rel))
    return [s.mtimeMs, s.size]
  } catch {
    return null
  }
}

function esbuildVersion() {
  try {
    return JSON.parse(readFileSync(path.join(ROOT, 'node_modules', 'esbuild', 'package.json'), 'utf8')).version
  } catch {
    return null
  }
}

/** True when the bundle exists and every file it was built from is unchanged (mtime and size). */
export function bundleIsFresh() {
  let stamp
  try {
    stamp = JSON.parse(readFileSync(STAMP, 'utf8'))
  } catch {
    return false
  }
  if (stamp.recipe !== RECIPE || stamp.esbuild !== esbuildVersion() || stat(path.relative(ROOT, OUT)) === null) return false
  return stamp.inputs.every(([rel, mtime, size]) => {
    const now = stat(rel)
    return now !== null && now[0] === mtime && now[1] === size
  })
}

function writeAtomic(file, contents) {
  const tmp = `${file}.${process.pid}.tmp`
  writeFileSync(tmp, contents)
  renameSync(tmp, file) // concurrent builders write the same bytes; the last rename wins
}

/** Bundles src/cli/main.ts (npm packages stay external imports) and records its inputs. */
export async function buildBundle() {
  const esbuild = await import('esbuild')
  const started = Date.now()
  try {
    const result = await esbuild.build({
      absWorkingDir: ROOT,
      entryPoints: [ENTRY],
      outfile: OUT,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      sourcemap: 'linked', // stack traces name src/ files under `node --enable-source-maps`
      metafile: true,
      write: false,
      logLevel: 'silent',
    })
    mkdirSync(OUT_DIR, { recursive: true })
    // The map first: a bundle is never visible without its map.
    const mapFirst = (file) => (file.path.endsWith('.map') ? 0 : 1)
    for (const file of [...result.outputFiles].sort((a, b) => mapFirst(a) - mapFirst(b))) writeAtomic(file.path, file.contents)
    const inputs = Object.keys(result.metafile.inputs).map((rel) => [rel, ...(stat(rel) ?? [0, -1])])
    // A source edited while esbuild read it: leave the stamp stale so the next start rebuilds.
    if (inputs.some(([, mtime]) => mtime >= started)) return
    writeAtomic(STAMP, JSON.stringify({ recipe: RECIPE, esbuild: esbuildVersion(), inputs }) + '\n')
  } finally {
    await esbuild.stop()
  }
}

/** The bundle's file URL, built first if stale. */
export async function cliBundle() {
  if (!bundleIsFresh()) await buildBundle()
  return pathToFileURL(OUT).href
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const fresh = bundleIsFresh()
  if (!fresh) await buildBundle()
  if (!process.argv.includes('--quiet')) console.log(fresh ? 'dist/cli/main.mjs is up to date' : 'built dist/cli/main.mjs')
}
