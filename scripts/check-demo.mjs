// CI check after `npm run demo`: the demo trained, and its loss went down (mean of the last 10 steps vs the first 10).
import { readFileSync } from 'node:fs'

const path = process.argv[2] ?? 'runs/demo/dataflex/metrics.jsonl'
const losses = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss)
if (losses.length < 20) throw new Error(`${path}: only ${losses.length} steps`)
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length
const first = mean(losses.slice(0, 10))
const last = mean(losses.slice(-10))
console.log(`demo: ${losses.length} steps, loss ${first.toFixed(4)} (first 10) -> ${last.toFixed(4)} (last 10)`)
if (!(last < first)) {
  console.error('demo: the loss did not go down')
  process.exit(1)
}
