/**
 * docs/authoring.md quotes the example strategies: every code block marked `<!-- file: <path> -->` is that file, word
 * for word, and every example strategy is quoted.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../src/bridge/index.ts'

const GUIDE = readFileSync(join(REPO_ROOT, 'docs', 'authoring.md'), 'utf8')
const QUOTE = /<!-- file: (\S+) -->\n```\w*\n([\s\S]*?)```\n/g

describe('docs/authoring.md', () => {
  const quoted = [...GUIDE.matchAll(QUOTE)].map((m) => ({ path: m[1]!, text: m[2]! }))

  it('each quoted block is its file', () => {
    expect(quoted.length).toBeGreaterThan(0)
    for (const q of quoted) expect(q.text, q.path).toBe(readFileSync(join(REPO_ROOT, q.path), 'utf8'))
    // A marker the pattern did not match (a typo, a missing fence) would leave its block unchecked.
    expect(GUIDE.split('<!-- file:').length - 1).toBe(quoted.length)
  })

  it('quotes every example strategy', () => {
    const strategies = readdirSync(join(REPO_ROOT, 'examples', 'strategies'))
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
      .map((f) => `examples/strategies/${f}`)
    expect(quoted.map((q) => q.path)).toEqual(expect.arrayContaining(strategies))
  })
})
