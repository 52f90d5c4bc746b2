/** Ctrl-C on `dataflex train` stops the sidecar: exit 130, and no Python process is left behind. */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../src/bridge/index.ts'
import { alive, childrenOf } from './procs.ts'
import { tempDir, tinyConfig, writeConfig } from './support.ts'

describe('dataflex train and signals', () => {
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    it(`${signal} during training exits ${code} and stops the sidecar`, async () => {
      const dir = tempDir('signal')
      const cfg = writeConfig(dir, 'run.yaml', tinyConfig(join(dir, 'out'), { num_train_epochs: 200, eval_strategy: 'no' }))
      const child = spawn(process.execPath, ['bin/dataflex.mjs', 'train', cfg], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
      let stderr = ''
      const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)))
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`training never started:\n${stderr}`)), 180_000)
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString()
          if (/\[[1-9]\d*\/\d+\]/.test(stderr)) {
            clearTimeout(timer)
            resolve()
          }
        })
        child.on('exit', () => reject(new Error(`exited early:\n${stderr}`)))
      })
      const sidecars = childrenOf(child.pid!)
      expect(sidecars.length).toBeGreaterThan(0)
      const t0 = Date.now()
      child.kill(signal)
      expect(await exited).toBe(code)
      // Every sidecar is gone (not even a zombie) within a few seconds.
      while (sidecars.some(alive) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 100))
      expect(sidecars.filter(alive)).toEqual([])
      expect(Date.now() - t0).toBeLessThan(10_000)
    }, 240_000)
  }
})
