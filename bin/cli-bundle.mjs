// The CLI runs as one ES module bundled from src/ by esbuild (dist/cli/main.mjs), not through a TypeScript loader:
// tsx's loader lives on a separate thread for the life of the process (it makes the Node process of a training run
// larger and slower to start: bench/results/setup.md). The bundle is rebuilt on use whenever an input changed, so a
// checkout never runs stale code and there is no build step to forget. The library build (scripts/build-lib.mjs:
// dist/lib, what `import 'dataflex-ts'` loads) is made the same way, by `bundleOf` below.
//
//   node bin/cli-bundle.mjs    build now if stale (setup runs this)

import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

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

function writeAtomic(file, contents) {
  const tmp = `${file}.${process.pid}.tmp`
  writeFileSync(tmp, contents)
  renameSync(tmp, file) // concurrent builders write the same bytes; the last rename wins
}

/**
 * An esbuild bundle of `entry` (relative to the root) at `out`, with npm packages left as imports and a stamp of
 * its inputs beside it. `recipe` is part of the stamp (change it to rebuild); `extraInputs` are files the build
 * reads besides the bundle's sources; `after` runs once the bundle is written, before the stamp (a failure leaves
 * the stamp stale).
 */
export function bundleOf({ entry, out, recipe, extraInputs = [], after }) {
  const outFile = path.join(ROOT, out)
  const outDir = path.dirname(outFile)
  const stampFile = path.join(outDir, 'inputs.json')

  /** True when the bundle exists and every file it was built from is unchanged (mtime and size). */
  function isFresh() {
    let stamp
    try {
      stamp = JSON.parse(readFileSync(stampFile, 'utf8'))
    } catch {
      return false
    }
    if (stamp.recipe !== recipe || stamp.esbuild !== esbuildVersion() || stat(out) === null) return false
    return stamp.inputs.every(([rel, mtime, size]) => {
      const now = stat(rel)
      return now !== null && now[0] === mtime && now[1] === size
    })
  }

  /** Bundles `entry` and records its inputs. */
  async function build() {
    const esbuild = await import('esbuild')
    const started = Date.now()
    try {
      const result = await esbuild.build({
        absWorkingDir: ROOT,
        entryPoints: [entry],
        outfile: outFile,
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
      mkdirSync(outDir, { recursive: true })
      // The map first: a bundle is never visible without its map.
      const mapFirst = (file) => (file.path.endsWith('.map') ? 0 : 1)
      for (const file of [...result.outputFiles].sort((a, b) => mapFirst(a) - mapFirst(b))) writeAtomic(file.path, file.contents)
      await after?.()
      const inputs = [...Object.keys(result.metafile.inputs), ...extraInputs].map((rel) => [rel, ...(stat(rel) ?? [0, -1])])
      // A source edited while esbuild read it: leave the stamp stale so the next start rebuilds.
      if (inputs.some(([, mtime]) => mtime >= started)) return
      writeAtomic(stampFile, JSON.stringify({ recipe, esbuild: esbuildVersion(), inputs }) + '\n')
    } finally {
      await esbuild.stop()
    }
  }

  return { isFresh, build, url: pathToFileURL(outFile).href }
}

// Two levels below the root, like src/cli/main.ts, so `new URL('../../', import.meta.url)` in the sources still
// names the repository root.
const CLI = bundleOf({ entry: 'src/cli/main.ts', out: 'dist/cli/main.mjs', recipe: 'cli-bundle-1' })

/** True when dist/cli/main.mjs exists and every file it was built from is unchanged. */
export const bundleIsFresh = CLI.isFresh
/** Bundles src/cli/main.ts into dist/cli/main.mjs and records its inputs. */
export const buildBundle = CLI.build

/** The bundle's file URL, built first if stale. */
export async function cliBundle() {
  if (!bundleIsFresh()) await buildBundle()
  return CLI.url
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const fresh = bundleIsFresh()
  if (!fresh) await buildBundle()
  if (!process.argv.includes('--quiet')) console.log(fresh ? 'dist/cli/main.mjs is up to date' : 'built dist/cli/main.mjs')
}
