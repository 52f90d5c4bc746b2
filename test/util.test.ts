/** The small shared helpers: atomic writes and canonical JSON. */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { writeFileAtomic, writeJsonAtomic } from '../src/util/atomic.ts'
import { canonicalJson } from '../src/util/canonical-json.ts'
import { RowFile } from '../src/util/row-file.ts'
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

describe('RowFile', () => {
  it('appends row blocks, reads any block back exactly, grows only on disk, and deletes itself', () => {
    const path = join(tempDir('rowfile'), 'sub', 'rows.f32')
    const cols = 3
    const rows = Float32Array.from({ length: 10 * cols }, (_, i) => Math.fround(i * 0.37 - 4))
    const f = RowFile.create(path, cols)
    f.append(rows.subarray(0, 4 * cols))
    f.append(rows.subarray(4 * cols))
    expect(f.rows).toBe(10)
    expect(statSync(path).size).toBe(10 * cols * 4)
    for (const [start, count] of [[0, 10], [3, 4], [9, 1], [5, 0]] as const) {
      expect(Array.from(f.block(start, count))).toEqual(Array.from(rows.subarray(start * cols, (start + count) * cols)))
    }
    expect(() => f.block(8, 3)).toThrow(RangeError)
    expect(() => f.append(new Float32Array(2))).toThrow(RangeError)
    f.dispose()
    f.dispose()
    expect(existsSync(path)).toBe(false)
    expect(() => f.block(0, 1)).toThrow(/closed/)
  })
})
