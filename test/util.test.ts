/** The small shared helpers: atomic writes and canonical JSON. */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { writeFileAtomic, writeJsonAtomic } from '../src/util/atomic.ts'
import { canonicalJson } from '../src/util/canonical-json.ts'
import { tempDir } from './temp-dirs.ts'

describe('writeFileAtomic', () => {
  it('creates the folder, replaces the file whole, and leaves no temporary file', () => {
    const dir = tempDir('atomic')
    const path = join(dir, 'sub', 'out.json')
    writeJsonAtomic(path, { a: 1 })
    expect(readFileSync(path, 'utf8')).toBe('{\n  "a": 1\n}\n')
    writeFileAtomic(path, new Uint8Array([104, 105]))
    expect(readFileSync(path, 'utf8')).toBe('hi')
    expect(readdirSync(join(dir, 'sub'))).toEqual(['out.json'])
  })

  it('a failed write leaves the old file and no temporary file', () => {
    const dir = tempDir('atomic-fail')
    const path = join(dir, 'target')
    mkdirSync(path) // rename() cannot replace a folder with a file
    expect(() => writeFileAtomic(path, 'new')).toThrow()
    expect(readdirSync(dir)).toEqual(['target'])
  })
})

describe('canonicalJson', () => {
  it('sorts keys at every depth, so key order does not change the text', () => {
    const a = { b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } }
    const b = { a: { c: null, d: [3, { y: 2, z: 1 }] }, b: 1 }
    expect(canonicalJson(a)).toBe('{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}')
    expect(canonicalJson(b)).toBe(canonicalJson(a))
  })

  it('is JSON.stringify otherwise: undefined entries leave objects, become null in arrays', () => {
    expect(canonicalJson({ x: undefined, y: [undefined, 's'] })).toBe('{"y":[null,"s"]}')
    expect(canonicalJson(undefined)).toBe('null')
    expect(canonicalJson('text')).toBe('"text"')
    expect(JSON.parse(canonicalJson({ n: 1.5e-7, t: true }))).toEqual({ n: 1.5e-7, t: true })
  })
})
