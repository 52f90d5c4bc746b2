/**
 * A synthetic training pool of any size for the scale benchmark: alpaca rows of four short task kinds (addition,
 * reversal, upper-casing, counting), drawn from a fixed LCG so a size always gives the same rows, plus a 32-row
 * eval set of the same kinds. Writes <out>/pool.json, <out>/eval.json and <out>/dataset_info.json (datasets
 * `synthetic_pool` and `synthetic_eval`).
 *
 * usage: npx tsx bench/make-synthetic-pool.ts <rows> [out=bench/.work/scale/data-<rows>]
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { REPO_ROOT } from '../src/bridge/index.ts'

const WORDS = ['apple', 'river', 'stone', 'cloud', 'garden', 'silver', 'candle', 'orbit', 'meadow', 'lantern', 'pepper', 'harbor']
const ALPACA = { formatting: 'alpaca', columns: { prompt: 'instruction', query: 'input', response: 'output' } }

interface Row {
  instruction: string
  input: string
  output: string
}

/** Test data without the project's Rng: a plain LCG. */
function lcg(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 4294967296
  }
}

function rows(n: number, seed: number): Row[] {
  const r = lcg(seed)
  const int = (m: number): number => Math.floor(r() * m)
  const word = (): string => WORDS[int(WORDS.length)]!
  const out: Row[] = []
  for (let i = 0; i < n; i++) {
    switch (int(4)) {
      case 0: {
        const a = int(1000)
        const b = int(1000)
        out.push({ instruction: `What is ${a} + ${b}?`, input: '', output: String(a + b) })
        break
      }
      case 1: {
        const w = word()
        out.push({ instruction: 'Reverse the word.', input: w, output: [...w].reverse().join('') })
        break
      }
      case 2: {
        const ws = [word(), word(), word()].join(' ')
        out.push({ instruction: 'Write it in upper case.', input: ws, output: ws.toUpperCase() })
        break
      }
      default: {
        const w = word()
        out.push({ instruction: `How many letters does "${w}" have?`, input: '', output: String(w.length) })
      }
    }
  }
  return out
}

/** Writes the pool of `n` rows (once: an existing folder with a dataset_info.json is reused) and returns its folder. */
export function makeSyntheticPool(n: number, out = join(REPO_ROOT, 'bench', '.work', 'scale', `data-${n}`)): string {
  if (existsSync(join(out, 'dataset_info.json'))) return out
  mkdirSync(out, { recursive: true })
  // One row per line keeps a 100k-row file diffable and cheap to write.
  const lines = (rs: Row[]): string => `[\n${rs.map((x) => JSON.stringify(x)).join(',\n')}\n]\n`
  writeFileSync(join(out, 'pool.json'), lines(rows(n, 1)))
  writeFileSync(join(out, 'eval.json'), lines(rows(32, 2)))
  const info = { synthetic_pool: { file_name: 'pool.json', ...ALPACA }, synthetic_eval: { file_name: 'eval.json', ...ALPACA } }
  writeFileSync(join(out, 'dataset_info.json'), `${JSON.stringify(info, null, 1)}\n`)
  return out
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const n = Number(process.argv[2])
  if (!(Number.isInteger(n) && n > 0)) throw new Error('usage: npx tsx bench/make-synthetic-pool.ts <rows> [out]')
  console.log(makeSyntheticPool(n, process.argv[3]))
}
