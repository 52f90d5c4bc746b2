import { describe, expect, it } from 'vitest'
import { fillFigures } from '../bench/figures.ts'

describe('generated figures', () => {
  it('every <!-- fig:KEY --> span in the README and docs matches the reference CPU JSON (npx tsx bench/figures.ts fixes stale ones)', () => {
    expect(fillFigures(false)).toEqual([])
  })
})
