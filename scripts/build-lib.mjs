#!/usr/bin/env node
// `npm run build:lib`: the library that `import ... from 'dataflex-ts'` loads (package.json `exports`):
//   dist/lib/index.mjs    esbuild's bundle of src/index.ts (npm packages stay imports; two levels below the root,
//                         like the sources, so their `new URL('../../', import.meta.url)` still names the checkout)
//   dist/lib/index.d.ts   its declarations, and those of every module they name beside it (dist/lib/<dir>/*.d.ts),
//                         emitted by tsc (tsconfig.lib.json)
// Skipped while every input is unchanged (the stamp dist/lib/inputs.json, as bin/cli-bundle.mjs keeps the CLI's);
// setup runs it too.
//
//   node scripts/build-lib.mjs [--force] [--quiet]

import { spawnSync } from 'node:child_process'
import { readdirSync, rmSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { bundleOf } from '../bin/cli-bundle.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const OUT_DIR = path.join(ROOT, 'dist', 'lib')

/** tsc's declarations of src/index.ts and what it names, after removing those of an earlier build. */
function declarations() {
  for (const entry of readdirSync(OUT_DIR, { withFileTypes: true })) {
    if (entry.isDirectory()) rmSync(path.join(OUT_DIR, entry.name), { recursive: true, force: true })
    else if (entry.name.endsWith('.d.ts')) rmSync(path.join(OUT_DIR, entry.name))
  }
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.lib.json'], { cwd: ROOT, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`tsc -p tsconfig.lib.json failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}${r.stderr}`)
}

export const LIB = bundleOf({
  entry: 'src/index.ts',
  out: 'dist/lib/index.mjs',
  recipe: 'lib-1',
  // The declarations depend on the same sources as the bundle, and on these.
  extraInputs: ['tsconfig.json', 'tsconfig.lib.json', 'node_modules/typescript/package.json'],
  after: declarations,
})

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const fresh = !process.argv.includes('--force') && LIB.isFresh()
  if (!fresh) await LIB.build()
  if (!process.argv.includes('--quiet')) console.log(fresh ? 'dist/lib is up to date' : 'built dist/lib/index.mjs and its declarations')
}
