#!/usr/bin/env node
// Compares the decisions of two sets of runs: for every run folder under <before> that has
// dataflex/decisions.jsonl, the sha256 of its lines with `time` and `timings` removed and keys sorted, against the
// same run under <after>. Used to show that a change left every decision as it was.
//
//   node bench/decision-hashes.mjs <before-root> <after-root>      (exit 1 when any run differs or is missing)
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const canon = (v) =>
  Array.isArray(v) ? v.map(canon) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])])) : v

function hashOf(file) {
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => {
    const { time: _time, timings: _timings, ...rest } = JSON.parse(l)
    return JSON.stringify(canon(rest))
  })
  return { hash: createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 16), lines: lines.length }
}

const [before, after] = process.argv.slice(2)
if (!before || !after) {
  console.error('usage: node bench/decision-hashes.mjs <before-root> <after-root>')
  process.exit(2)
}
const log = (root, run) => join(root, run, 'dataflex', 'decisions.jsonl')
let same = true
console.log('| run | lines | before | after | |\n|---|---|---|---|---|')
for (const run of readdirSync(before).filter((d) => existsSync(log(before, d))).sort()) {
  const a = hashOf(log(before, run))
  const b = existsSync(log(after, run)) ? hashOf(log(after, run)) : { hash: 'missing', lines: 0 }
  const ok = a.hash === b.hash && a.lines === b.lines
  same &&= ok
  console.log(`| ${run} | ${a.lines} | ${a.hash} | ${b.hash} | ${ok ? 'identical' : 'DIFFERENT'} |`)
}
process.exit(same ? 0 : 1)
